"""`tune`: the search space's checks, the budget, and short searches on a tiny corpus (seconds each)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError, TrainingInterrupted
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.stages import tune_search
from nlp_lstm.stages.pipeline import load_pipeline
from nlp_lstm.stages.search_space import build_space, classes_for
from nlp_lstm.stages.tune import parse_budget
from nlp_lstm.stages.tune_kinds import TUNE_KINDS
from nlp_lstm.stages.tune_search import default_params
from tests.helpers import sentiment_rows, write_csv

CLASSIFIER = TUNE_KINDS["classifier"]
BASE = {"model": ClassifierConfig(), "train": TrainConfig(**CLASSIFIER.training_defaults)}
# Tiny models and one or two epochs: a trial takes about a second.
SMALL = {"model": {"embedding_dim": {"low": 8, "high": 16}, "hidden_size": [8, 16], "char_ngrams": [0, 3],
                   "word_ngrams": [1, 2], "num_layers": 1},
         "train": {"epochs": {"low": 1, "high": 2}, "batch_size": [32, 64]},
         "search": {"replace": True}}
TOKENIZER = {"kind": "spacy", "vocab_size": 300, "min_freq": 1}


def space(user, *, default=CLASSIFIER.space):
    return build_space(default, user, kind="classifier", classes=classes_for(ClassifierConfig), base=BASE,
                       other_kinds={"summarizer": TUNE_KINDS["summarizer"].model_class})


def error_of(user) -> str:
    with pytest.raises(NlpLstmError) as caught:
        space(user)
    return str(caught.value)


def test_bad_search_spaces_are_one_line_each_naming_the_fix():
    assert "did you mean 'hidden_size'" in error_of({"model": {"hiden_size": [8, 16]}})
    assert "did you mean 'learning_rate'" in error_of({"train": {"learning_rat": {"low": 1e-3, "high": 1e-2}}})
    assert "does not apply to a classifier" in error_of({"model": {"attention": ["additive"]}})
    message = error_of({"model": {"dropout": {"low": 0.5, "high": 0.1}}})
    assert "low 0.5 is above high 0.1" in message
    assert "did you mean [model]" in error_of({"modle": {"dropout": [0.1]}})
    assert "not searched" in error_of({"model": {"vocab_size": [100, 200]}})
    assert "needs low > 0" in error_of({"train": {"learning_rate": {"low": 0, "high": 0.1, "log": True}}})
    assert "pooling must be one of" in error_of({"model": {"pooling": ["mean", "maxx"]}})  # the config's own check
    assert "dropout must be in [0, 1)" in error_of({"model": {"dropout": {"low": 0.1, "high": 1.5}}})
    assert "integer setting" in error_of({"model": {"hidden_size": {"low": 8.5, "high": 16}}})
    for message in (error_of({"model": {"hiden_size": [8]}}), error_of({"model": {"dropout": {"low": 0.5, "high": 0.1}}})):
        assert "\n" not in message


def test_a_user_file_changes_the_default_space_or_replaces_it():
    changed = space({"model": {"hidden_size": {"low": 16, "high": 64, "log": True}, "num_layers": 1}})
    assert set(changed.params) == {f"{s}.{k}" for s, t in CLASSIFIER.space.items() for k in t} - {"model.num_layers"}
    assert (changed.params["model.hidden_size"].low, changed.params["model.hidden_size"].high) == (16, 64)
    assert changed.fixed["model"] == {"num_layers": 1}
    replaced = space({"search": {"replace": True}, "train": {"batch_size": [16, 32]}})
    assert list(replaced.params) == ["train.batch_size"]
    trial = FixedTrial({"train.batch_size": 32})
    assert replaced.suggest(trial) == {"model": {}, "train": {"batch_size": 32}}


def test_the_first_trial_is_the_defaults_wherever_the_space_holds_them():
    searched = space({"model": {"hidden_size": {"low": 8, "high": 64}}})  # the default 256 lies outside
    params = default_params(searched, {"model": vars(BASE["model"]), "train": vars(BASE["train"])})
    assert "model.hidden_size" not in params
    # The classifier's `train` defaults (stages/classification.py DEFAULT_TRAINING, ClassifierConfig).
    assert params["train.learning_rate"] == 3e-3 and params["train.batch_size"] == 64
    assert params["model.pooling"] == "mean" and params["model.dropout"] == 0.5


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("90s", 90), ("45", 45), ("1h30m", 5400), (" 2.5m ", 150)])
def test_budget_durations(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "0", "-5", "m", ""])
def test_bad_budgets(text):
    with pytest.raises(NlpLstmError, match="--budget"):
        parse_budget(text)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune-data")
    return DataSource(train_file=str(write_csv(folder / "train.csv", sentiment_rows(300, seed=1))))


def run_tune(output, source, budget, **options):
    return nlp_lstm.tune("classifier", output_dir=output, source=source, budget=budget, space=SMALL,
                         tokenizer_settings=TOKENIZER, progress=False, threads=1, **options)


def test_a_search_keeps_the_best_model_tests_it_once_and_reports(corpus, tmp_path):
    output = tmp_path / "search"
    summary = run_tune(output, corpus, 30)
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{output / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and summary["best"]["value"] == max(t.value for t in complete)
    # Trial 0 ran the classifier's defaults wherever the space holds them (batch 64: DEFAULT_TRAINING).
    assert study.trials[0].params["train.batch_size"] == 64
    # The best trial's own metrics were computed without the test split; the test score is the saved
    # model's, as `evaluate` gives it.
    best = summary["best"]["number"]
    trial_metrics = json.loads((output / "trials" / f"{best:04d}" / "metrics.json").read_text())
    assert "test" not in trial_metrics and "validation" in trial_metrics
    evaluated = nlp_lstm.evaluate(output / "best", corpus, split="test", device="cpu")
    assert summary["test"]["accuracy"] == pytest.approx(evaluated["accuracy"])
    assert nlp_lstm.load(output / "best").predict(["a great film"])  # a normal model directory
    # Only the best trial's model is kept among the finished ones.
    assert [p.name for p in (output / "trials").iterdir()] == [f"{best:04d}"]
    # The report: one row per finished trial; the settings as a pipeline file that loads back equal.
    table = [line for line in (output / "report.md").read_text().splitlines() if line.startswith("| ") and "trial" not in line]
    assert len(table) == len(summary["trials"]) == len([t for t in study.trials if t.state != TrialState.RUNNING])
    pipe = load_pipeline(output / "best.toml")
    params = study.trials[best].params
    assert pipe.model.hidden_size == params["model.hidden_size"] and pipe.train.epochs == params["train.epochs"]
    assert pipe.tokenizer.kind == "spacy" and pipe.data.train_file == corpus.train_file
    assert (output / "plots" / "search.png").read_bytes()[:4] == b"\x89PNG"


def test_an_interrupt_keeps_finished_trials_and_resume_goes_on(corpus, tmp_path, monkeypatch):
    output = tmp_path / "search"
    real_train = tune_search.TrialRunner.train

    def train(self, trial, *args):
        if trial.number == 2:
            raise KeyboardInterrupt
        return real_train(self, trial, *args)

    monkeypatch.setattr(tune_search.TrialRunner, "train", train)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        run_tune(output, corpus, 60, pruner="none")
    storage = f"sqlite:///{output / 'study.db'}"
    before = optuna.load_study(study_name="tune", storage=storage).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert before[2].user_attrs["stopped"] == "interrupt"
    monkeypatch.setattr(tune_search.TrialRunner, "train", real_train)
    with pytest.raises(NlpLstmError, match="--resume to continue"):
        run_tune(output, corpus, 10)
    run_tune(output, corpus, 12, resume=True, pruner="none")
    after = optuna.load_study(study_name="tune", storage=storage).trials
    assert len(after) > len(before)
    assert [(t.params, t.value) for t in after[:2]] == [(t.params, t.value) for t in before[:2]]


def test_a_study_of_another_kind_or_corpus_is_refused(corpus, tmp_path):
    output = tmp_path / "search"
    run_tune(output, corpus, 8)
    other = DataSource(train_file=str(write_csv(tmp_path / "other.csv", sentiment_rows(300, seed=2))))
    with pytest.raises(NlpLstmError, match="searched on other data"):
        run_tune(output, other, 8, resume=True)
    with pytest.raises(NlpLstmError, match="is a study of a classifier, not a summarizer"):
        nlp_lstm.tune("summarizer", output_dir=output, source=DataSource(train_file=corpus.train_file, summary_column="label"),
                      budget=8, resume=True, progress=False)


def test_a_budget_too_small_for_one_trial_says_the_minimum(corpus, tmp_path):
    with pytest.raises(NlpLstmError, match="too small for one trial") as caught:
        run_tune(tmp_path / "search", corpus, 0.5)
    assert "\n" not in str(caught.value)


def test_summarizer_search_runs(tmp_path):
    from tests.helpers import credit_rows

    source = DataSource(train_file=str(write_csv(tmp_path / "docs.csv", credit_rows(120, seed=3))),
                        text_column="document", summary_column="summary", label_column=None)
    summary = nlp_lstm.tune("summarizer", output_dir=tmp_path / "search", source=source, budget=25, progress=False,
                            threads=1, tokenizer_settings=TOKENIZER,
                            space={"search": {"replace": True}, "model": {"hidden_size": [16, 24], "embedding_dim": 16},
                                   "train": {"epochs": 1, "batch_size": 16}})
    assert summary["best"]["params"]["model.hidden_size"] in (16, 24)
    assert "rougeL" in summary["test"] and Path(summary["best"]["model_dir"]).joinpath("config.json").is_file()
    assert load_pipeline(tmp_path / "search" / "best.toml").model.embedding_dim == 16



def test_tagger_search_scores_spans_and_keeps_a_tagger(tmp_path):
    from tests.tagging_data import write_bio

    paths = write_bio(tmp_path)
    source = DataSource(train_file=str(paths["train"]), validation_file=str(paths["validation"]),
                        test_file=str(paths["test"]))
    summary = nlp_lstm.tune("tagger", output_dir=tmp_path / "search", source=source, budget=15, progress=False,
                            threads=1, space={"search": {"replace": True},
                                              "model": {"hidden_size": [16, 32], "embedding_dim": 16, "char_filters": 16},
                                              "train": {"epochs": {"low": 3, "high": 6}, "batch_size": 16,
                                                        "learning_rate": 1e-2}})
    # BIO tags: trials are scored by strict span F1, as `train tagger` picks its epoch; the names are
    # only taggable from their context, and the search learns them.
    assert summary["metric"] == "span_f1" and summary["best"]["value"] > 0.8
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}")
    assert study.trials[0].user_attrs["validation_rows"] == 60  # span F1: over the validation sentences
    best = Path(summary["best"]["model_dir"])
    assert not (tmp_path / "search" / "trials" / f"{summary['best']['number']:04d}" / "plots").exists()
    evaluated = nlp_lstm.evaluate(best, source, split="test", device="cpu")
    assert summary["test"]["span_f1"] == pytest.approx(evaluated["span_f1"])
    assert nlp_lstm.load(best).tag(["Mary works for Google in Berlin"])[0]["tags"][0] == "B-PER"
    pipe = load_pipeline(tmp_path / "search" / "best.toml")
    assert pipe.pipeline.task == "tagger" and pipe.model.hidden_size == summary["best"]["params"]["model.hidden_size"]
    # The tags come from the data, and a tagger has no subword tokenizer.
    assert pipe.model.tags == [] and "[tokenizer]" not in (tmp_path / "search" / "best.toml").read_text()


def test_tagger_metric_follows_the_tag_scheme(tmp_path):
    from tests.tagging_data import turkish_slice, write_bio

    tagger = TUNE_KINDS["tagger"]
    (tmp_path / "bio").mkdir()
    bio = DataSource(train_file=str(write_bio(tmp_path / "bio")["train"]))
    pos = DataSource(train_file=str(turkish_slice(tmp_path, train=20, validation=5, test=5)["train"]))
    assert tagger.pick_metric(bio, None) == "span_f1"
    assert tagger.pick_metric(pos, None) == "token_accuracy"  # parts of speech have no spans
    assert tagger.pick_metric(bio, "token_accuracy") == "token_accuracy"
    with pytest.raises(NlpLstmError, match="--metric span_f1 needs span tags.*use --metric token_accuracy"):
        tagger.pick_metric(pos, "span_f1")
    with pytest.raises(NlpLstmError, match="--metric for a tagger is one of span_f1, token_accuracy"):
        tagger.pick_metric(pos, "macro_f1")


def test_settings_of_another_kind_or_from_the_data_are_named():
    from nlp_lstm.models.tagger import TaggerConfig

    with pytest.raises(NlpLstmError, match=r"'char_filters' does not apply to a classifier \(it is a tagger setting\)"):
        build_space(CLASSIFIER.space, {"model": {"char_filters": [8, 16]}}, kind="classifier",
                    classes=classes_for(ClassifierConfig), base=BASE, other_kinds={"tagger": TaggerConfig})
    tagger = TUNE_KINDS["tagger"]
    base = {"model": TaggerConfig(), "train": TrainConfig(**tagger.training_defaults)}
    with pytest.raises(NlpLstmError, match="'tags' is not searched"):
        build_space(tagger.space, {"model": {"tags": ["O"]}}, kind="tagger", classes=classes_for(TaggerConfig),
                    base=base, other_kinds={})
    build_space(tagger.space, None, kind="tagger", classes=classes_for(TaggerConfig), base=base, other_kinds={})


@pytest.mark.parametrize("defaults, best, rows, scale, exact, kept", [
    (0.80, 0.809, 1600, 1.0, True, 0),   # one standard error: sqrt(0.8 * 0.2 / 1600) = 0.010
    (0.80, 0.811, 1600, 1.0, True, 7),
    (0.80, 0.809, 1600, 1.0, False, 7),  # trial 0 was not exactly the defaults: no rule
    (0.80, 0.835, 100, 1.0, True, 0),    # 100 rows: 0.040
    (40.0, 44.0, 100, 100.0, True, 0),   # ROUGE x 100: 100 * sqrt(0.4 * 0.6 / 100) = 4.90
    (40.0, 45.0, 100, 100.0, True, 7),
])
def test_the_defaults_are_kept_unless_beaten_by_more_than_one_standard_error(defaults, best, rows, scale, exact, kept):
    from optuna.distributions import IntDistribution

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("defaults_exact", exact)
    for number, value in ((0, defaults), *((n, defaults - 0.001 * scale) for n in range(1, 7)), (7, best)):
        study.add_trial(optuna.trial.create_trial(value=value, params={"model.hidden_size": 8 + number},
                                                  distributions={"model.hidden_size": IntDistribution(1, 64)},
                                                  user_attrs={"validation_rows": rows}))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    trial, note = tune_search.kept_trial(study, complete, scale=scale)
    assert trial.number == kept
    assert ("kept the defaults" in note) == (kept == 0)


@pytest.mark.parametrize("step, epoch, seconds, reference, known", [
    (5, 0, 0.5, False, False),   # too few steps and too little time to judge
    (11, 0, 0.5, False, True),   # SPEED_PROBE_STEPS steps
    (3, 0, 2.5, False, True),    # 2 steps after the first, and SPEED_PROBE_SECONDS
    (500, 0, 300.0, True, False),  # the defaults' trial: never within its first epoch
    (501, 1, 301.0, True, True),
])
def test_when_a_trials_speed_may_prune_it(step, epoch, seconds, reference, known):
    assert tune_search.speed_known(step=step, epoch=epoch, seconds=seconds, reference=reference) is known


@pytest.mark.parametrize("epoch, bad_epochs, reference, expected", [
    (34, 5, False, 50),  # any trial but the defaults: all its epochs
    (34, 5, True, 39),   # the defaults, 5 epochs past their best with patience 10: epoch 39 at the earliest
    (3, 0, True, 13),
    (45, 0, True, 50),   # never past the epochs it was given
])
def test_the_defaults_are_projected_to_their_earliest_end(epoch, bad_epochs, reference, expected):
    assert tune_search.epochs_to_end(epoch=epoch, bad_epochs=bad_epochs, epochs=50, patience=10,
                                     reference=reference) == expected

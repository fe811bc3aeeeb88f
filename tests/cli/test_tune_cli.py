"""`nlp-lstm tune`: bad input is one line and exit code 2; a short search prints its result."""

from __future__ import annotations

import optuna
import pytest

from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv

QUICK = ["--quiet", "--threads", "1", "--tokenizer-kind", "spacy", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("tune-cli") / "train.csv", sentiment_rows(300, seed=4))


def tune(train_file, output, *args):
    return invoke("tune", "classifier", "--train-file", train_file, "-o", output, *QUICK, *args)


@pytest.mark.parametrize("space, fragments", [
    ("[model]\nhiden_size = [8, 16]\n", ["unknown setting 'hiden_size'", "did you mean 'hidden_size'?"]),
    ("[model]\ndropout = { low = 0.5, high = 0.2 }\n", ["model.dropout", "low 0.5 is above high 0.2", "swap"]),
    ("[model]\ncoverage = [true, false]\n", ["'coverage' does not apply to a classifier", "summarizer setting"]),
    ("[train]\nlearning_rate = { low = 1e-3, hihg = 1e-2 }\n", ["unknown range key 'hihg'", "did you mean 'high'?"]),
    ("[model\n", ["is not valid TOML"]),
])
def test_bad_search_space_files(train_file, tmp_path, space, fragments):
    path = tmp_path / "space.toml"
    path.write_text(space)
    assert_usage_error(tune(train_file, tmp_path / "out", "--space", path), *fragments)


def test_bad_options(train_file, tmp_path):
    assert_usage_error(tune(train_file, tmp_path / "out", "--budget", "ten"), "--budget 'ten' is not a duration")
    assert_usage_error(tune(train_file, tmp_path / "out", "--resume"), "--resume: no study")
    assert_usage_error(tune(train_file, tmp_path / "out", "--metric", "rougeL"), "--metric for a classifier")
    assert_usage_error(tune(train_file, tmp_path / "out", "--set", "model.hiden_size=8"), "did you mean 'hidden_size'")
    result = invoke("tune", "tagging", "--train-file", train_file, "-o", tmp_path / "out", *QUICK)
    assert_usage_error(result, "unknown model kind 'tagging'", "classifier, summarizer, tagger")
    assert_usage_error(tune(train_file, tmp_path / "out", "--tag-column", "ner"), "--tag-column: a tagger's option")


def test_tagger_options(tmp_path):
    from tests.tagging_data import turkish_slice

    paths = turkish_slice(tmp_path, train=40, validation=10, test=10)
    args = ["tune", "tagger", "--train-file", paths["train"], "--validation-file", paths["validation"],
            "-o", tmp_path / "out", "--quiet", "--threads", "1"]
    assert_usage_error(invoke(*args, "--metric", "span_f1"), "--metric span_f1 needs span tags", "token_accuracy")
    assert_usage_error(invoke(*args, "--tokenizer-kind", "spacy"), "a tagger has no subword tokenizer")


def test_a_study_from_another_kind_or_corpus(train_file, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    study = optuna.create_study(study_name="tune", storage=f"sqlite:///{output / 'study.db'}")
    study.set_user_attr("kind", "summarizer")
    assert_usage_error(tune(train_file, output, "--resume"), "is a study of a summarizer, not a classifier")
    study.set_user_attr("kind", "classifier")
    study.set_user_attr("corpus", "0123456789abcdef")
    study.set_user_attr("metric", "macro_f1")
    assert_usage_error(tune(train_file, output, "--resume"), "searched on other data")
    assert_usage_error(tune(train_file, output), "holds a search already", "--resume")


def test_a_short_search(train_file, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("[search]\nreplace = true\n[model]\nhidden_size = [8, 16]\nembedding_dim = 8\n"
                     "[train]\nepochs = { low = 1, high = 2 }\n")
    result = tune(train_file, tmp_path / "out", "--space", space, "--budget", "20s", "--set", "model.char_ngrams=0")
    assert result.exit_code == 0, result.output
    assert "best: trial" in result.stdout and "test: accuracy" in result.stdout
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert {t.params.get("model.hidden_size") for t in study.trials} <= {8, 16}
    assert all("model.char_ngrams" not in t.params for t in study.trials)  # pinned by --set
    assert (tmp_path / "out" / "best" / "config.json").is_file()


def test_a_short_tagger_search(tmp_path):
    from tests.tagging_data import read_conll_sentences, turkish_slice

    paths = turkish_slice(tmp_path, train=60, validation=20, test=20)
    space = tmp_path / "space.toml"
    space.write_text("[search]\nreplace = true\n[model]\nhidden_size = [8, 16]\nembedding_dim = 16\nchar_filters = 8\n"
                     "[train]\nepochs = { low = 1, high = 2 }\n")
    result = invoke("tune", "tagger", "--train-file", paths["train"], "--validation-file", paths["validation"],
                    "--test-file", paths["test"], "-o", tmp_path / "out", "--quiet", "--threads", "1", "--space", space,
                    "--budget", "15s", "--language", "tr")
    assert result.exit_code == 0, result.output
    # Parts of speech: plain tags, scored by token accuracy; --language is the tagger's word splitter.
    assert "validation token_accuracy" in result.stdout and "test: token_accuracy" in result.stdout
    assert 'language = "tr"' in (tmp_path / "out" / "best.toml").read_text()
    # Token accuracy is a mean over tokens: the standard error that may keep the defaults counts them.
    tokens = sum(len(sentence) for sentence in read_conll_sentences(paths["validation"]))
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert {t.user_attrs["validation_rows"] for t in study.trials if t.state.name == "COMPLETE"} == {tokens}

"""The edges users hit: labels in odd shapes, unlabelled hub splits, languages, inputs, modes, lengths."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource, load_splits
from nlp_lstm.errors import NlpLstmError
from tests.helpers import ROOT, invoke, sentiment_rows, write_csv, write_jsonl

TINY = {"embedding_dim": 8, "hidden_size": 8}
FAST = TrainConfig(epochs=2, batch_size=16, learning_rate=0.02, seed=3)
WORDS = {"kind": "spacy", "vocab_size": 80, "min_freq": 1}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    train = write_csv(root / "train.csv", sentiment_rows(120, seed=1))
    nlp_lstm.train(output_dir=root / "model", source=DataSource(train_file=str(train)), tokenizer_settings=WORDS,
                   model={**TINY, "max_length": 6}, training=FAST, progress=False, device="cpu")
    return root / "model"


def test_a_class_only_in_the_test_file_is_left_out_with_one_warning(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(80, seed=1))
    test = write_csv(tmp_path / "test.csv", sentiment_rows(10, seed=2) + [{"text": "so so", "label": "neutral"}] * 3)
    with pytest.warns(UserWarning, match=r"3 row\(s\) of the test split have a label the training split does not"):
        metrics = nlp_lstm.train(output_dir=tmp_path / "m", source=DataSource(train_file=str(train), test_file=str(test)),
                                 tokenizer_settings=WORDS, model=TINY, training=FAST, progress=False, device="cpu")
    assert metrics["test"]["count"] == 10 if "count" in metrics["test"] else sum(
        row["support"] for row in metrics["test"]["per_class"].values()) == 10


def test_integral_float_labels_match_integer_labels_and_a_blank_label_names_its_row(tmp_path):
    # One blank cell makes pandas/arrow read the column as float: 1.0 must still be the class "1".
    rows = [{"text": row["text"], "label": 1.0 if row["label"] == "pos" else 0.0} for row in sentiment_rows(40)]
    ds = datasets.Dataset.from_list(rows)
    from nlp_lstm.data.columns import label_names

    assert label_names(ds, "label") == ["0", "1"]
    path = tmp_path / "blank.csv"
    path.write_text("text,label\ngood film,1\nbad film,0\nno label here,\n", encoding="utf-8")
    with pytest.raises(NlpLstmError, match=r"blank label in column 'label' \(the first is row 3\)"):
        nlp_lstm.train(output_dir=tmp_path / "m", source=DataSource(train_file=str(path), validation_fraction=0,
                                                                    test_fraction=0),
                       tokenizer_settings=WORDS, model=TINY, training=FAST, progress=False, device="cpu")


def test_joined_labels_with_a_separator_train_a_multilabel_model(tmp_path):
    rows = [{"text": f"{a} {b} news", "label": f"{a}|{b}"} for a, b in
            [("sports", "politics"), ("sports", "music"), ("music", "politics")] * 20]
    train = write_csv(tmp_path / "train.csv", rows)
    source = DataSource(train_file=str(train), label_separator="|")
    splits = load_splits(source)
    assert splits["train"][0]["label"] in (["sports", "politics"], ["sports", "music"], ["music", "politics"])
    nlp_lstm.train(output_dir=tmp_path / "m", source=source, tokenizer_settings=WORDS, model=TINY,
                   training=TrainConfig(epochs=8, batch_size=8, learning_rate=0.05), progress=False, device="cpu")
    model = nlp_lstm.load(tmp_path / "m", device="cpu")
    assert model.model.config.task == "multilabel" and model.labels == ["music", "politics", "sports"]
    # Without the separator the same file is three combined classes (the old silent behaviour).
    assert len(load_splits(DataSource(train_file=str(train)))["train"].unique("label")) == 3


def test_an_unlabelled_hub_test_split_is_left_out_and_named_splits_are_used(monkeypatch):
    labelled = datasets.Dataset.from_dict({"text": ["a b", "c d"] * 10, "label": [0, 1] * 10},
                                          features=datasets.Features({"text": datasets.Value("string"),
                                                                      "label": datasets.ClassLabel(names=["n", "p"])}))
    unlabelled = labelled.cast_column("label", datasets.Value("int64")).map(lambda row: {"label": -1}).cast(
        labelled.features)
    hub = datasets.DatasetDict({"train": labelled, "validation_matched": labelled, "test": unlabelled})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    with pytest.warns(UserWarning, match="has no labels: it is left out"):
        splits = load_splits(DataSource(dataset="glue-like", validation_split="validation_matched"))
    assert set(splits) == {"train", "validation"} and len(splits["validation"]) == 20
    with pytest.raises(NlpLstmError, match="no split 'nope'"):
        load_splits(DataSource(dataset="glue-like", validation_split="nope"))
    none = load_splits(DataSource(dataset="glue-like", validation_split="none", test_split="none"))
    assert set(none) == {"train"} and len(none["train"]) == 20  # nothing was cut from train either


def test_language_picks_the_spacy_rules():
    from nlp_lstm.data.tokenizers import fit_tokenizer

    german = fit_tokenizer(["Das ist's, z.B. gut."], kind="spacy", vocab_size=50, min_freq=1, lang="de")
    english = fit_tokenizer(["Das ist's, z.B. gut."], kind="spacy", vocab_size=50, min_freq=1, lang="en")
    assert german.tokenize("z.B.") == ["z.b."] and english.tokenize("z.B.") != ["z.b."]
    chinese = fit_tokenizer(["我爱北京"], kind="spacy", vocab_size=50, min_freq=1, lang="zh")
    assert chinese.tokenize("我爱北京") == ["我", "爱", "北", "京"]


def test_piped_stdin_keeps_blank_lines_so_outputs_line_up(tiny_model):
    result = invoke("classify", "--model", tiny_model, "--format", "jsonl", "--quiet", input="good film\n\nbad\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["good film", "", "bad"]


def test_truncation_is_reported_once_with_the_count(tiny_model):
    model = nlp_lstm.load(tiny_model, device="cpu")
    with pytest.warns(UserWarning, match=r"^2 text\(s\) longer than the model's limit of 6 tokens were truncated$"):
        model.predict(["good " * 10, "bad", "awful " * 7])


def test_predict_takes_any_iterable_of_strings_and_names_a_bad_item(tiny_model):
    model = nlp_lstm.load(tiny_model, device="cpu")
    texts = ["good film", "bad film"]
    assert model.predict(text for text in texts) == model.predict(texts)
    with pytest.raises(NlpLstmError, match="text 1 is NoneType, not a string"):
        model.predict(["good", None])


def test_evaluating_restores_the_mode_the_model_had(tiny_model, tmp_path):
    from nlp_lstm.stages.classification import score_encoded
    from nlp_lstm.data.encode import encode_classification
    from nlp_lstm.training.tasks import ClassificationTask

    model = nlp_lstm.load(tiny_model, device="cpu")
    ds = datasets.Dataset.from_list(sentiment_rows(20, seed=5))
    encoded = encode_classification(ds, model.tokenizer, text_column="text", label_column="label",
                                    label_names=model.labels, max_length=6, ngrams=model.ngrams)
    assert not model.model.training
    score_encoded(model, ClassificationTask(model.labels), encoded)
    assert not model.model.training  # was: left in training mode, so dropout changed later predictions
    model.model.train()
    score_encoded(model, ClassificationTask(model.labels), encoded)
    assert model.model.training


def test_training_from_an_encode_output_saves_the_length_it_was_encoded_with(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(60, seed=1))
    source = DataSource(train_file=str(train))
    nlp_lstm.vocab(source, tmp_path / "vocab", kind="spacy", vocab_size=60, min_freq=1)
    nlp_lstm.encode(source, tmp_path / "vocab", tmp_path / "ids", max_length=5)
    nlp_lstm.train(output_dir=tmp_path / "m", encoded_dir=tmp_path / "ids", model=TINY, training=FAST,
                   progress=False, device="cpu")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["model"]["max_length"] == 5


def test_a_pipeline_model_typo_names_the_nearest_key(tmp_path):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[pipeline]\nname = "x"\ntask = "summarizer"\n\n[data]\ntrain_file = "d.jsonl"\n'
                        'summary_column = "s"\n\n[tokenizer]\nname = "x"\n\n[model]\nmax_target_lenght = 8\n',
                        encoding="utf-8")
    from nlp_lstm.stages.pipeline import load_pipeline

    with pytest.raises(NlpLstmError, match="unknown key 'max_target_lenght'; did you mean 'max_target_length'"):
        load_pipeline(pipeline)
    pipeline.write_text(pipeline.read_text().replace("[model]\nmax_target_lenght = 8\n", "[summarizer]\nx = 1\n"))
    with pytest.raises(NlpLstmError, match=r"unknown table \[summarizer\]"):
        load_pipeline(pipeline)


def test_set_overrides_any_setting_and_rejects_typos():
    from nlp_lstm.config import apply_overrides
    from nlp_lstm.models.classifier import ClassifierConfig

    sections = {"model": ClassifierConfig(), "train": TrainConfig()}
    changed = apply_overrides(sections, ["train.learning_rate=1e-3", "model.pooling=mean", "train.epochs=2",
                                         'model.peephole="diagonal"'])
    assert changed["train"].learning_rate == 0.001 and changed["train"].epochs == 2
    assert changed["model"].pooling == "mean" and changed["model"].peephole == "diagonal"
    assert sections["train"].learning_rate == TrainConfig().learning_rate  # the input is not changed
    with pytest.raises(NlpLstmError, match="did you mean 'learning_rate'"):
        apply_overrides(sections, ["train.learning_rat=1"])
    with pytest.raises(NlpLstmError, match="pooling must be one of"):
        apply_overrides(sections, ["model.pooling=median"])
    with pytest.raises(NlpLstmError, match="SECTION.KEY=VALUE"):
        apply_overrides(sections, ["learning_rate"])


def test_cli_set_reaches_the_saved_config(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(60, seed=1))
    result = invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "m", "--quiet",
                    "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--set", "train.weight_decay=0.25",
                    "--set", "model.pooling=last", "--set", "model.max_length=7")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["training"]["weight_decay"] == 0.25 and saved["training"]["epochs"] == 1
    assert saved["model"]["pooling"] == "last" and saved["model"]["max_length"] == 7


def test_summarize_uses_the_decoding_settings_saved_with_the_model(tmp_path):
    from nlp_lstm.inference.summarizer import SummarizerPredictor
    from nlp_lstm.decoding.beam_search import DecodeConfig
    from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
    from nlp_lstm.data.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer(["a b c d e f g"] * 3, kind="spacy", vocab_size=20, min_freq=1)
    torch.manual_seed(0)
    model = Summarizer(SummarizerConfig(vocab_size=tokenizer.vocab_size, embedding_dim=4, hidden_size=4))
    predictor = SummarizerPredictor(model, tokenizer, decoding=DecodeConfig(beam_size=2, max_length=3, min_length=3,
                                                                            no_repeat_ngram_size=0))
    assert predictor.decode_config().max_length == 3
    [summary] = predictor.summarize(["a b c d"])
    assert len(summary.split()) == 3  # min = max = 3 tokens, as saved
    assert predictor.decode_config(max_length=5, beam_size=None).max_length == 5


def test_the_committed_tokenizer_markers_match_the_shipped_pipelines():
    """A fresh clone's `make demo` skips the vocab stages (and leaves `git status` clean): the
    committed markers hash content and settings only, never a file's path on disk or its time."""
    from pathlib import Path

    from nlp_lstm.stages.pipeline import MARKER, load_pipeline, stage_hashes

    root = ROOT
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        for name in ("sentiment", "descriptions", "descriptions_demo"):
            pipe = load_pipeline(f"pipelines/{name}.toml")
            marker = json.loads((Path("vocab") / pipe.tokenizer.name / MARKER).read_text())
            assert marker["inputs"] == stage_hashes(pipe)["vocab"], name
    finally:
        os.chdir(cwd)

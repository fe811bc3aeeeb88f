"""The tagger as a model kind: `train_tagger` learns (beats a most-frequent-tag baseline computed
here), resumes to identical weights, writes the model directory the predictor reads, and
`evaluate_tagger`'s span scores equal seqeval's strict mode on the model's own predictions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

import nlp_lstm
from nlp_lstm.artifacts import load_tensors
from nlp_lstm.data.conll import read_tagged_file
from nlp_lstm.data.sources import DataSource
from nlp_lstm.data.tagged_sources import tag_columns, with_saved_columns
from nlp_lstm.data.tagging import VOCAB_FILE, TaggingVocab, load_vocab
from nlp_lstm.errors import NlpLstmError, TrainingInterrupted
from nlp_lstm.stages import run as run_module
from nlp_lstm.stages.pipeline import load_pipeline, run_pipeline
from nlp_lstm.stages.tagging import evaluate_tagger, load_tagger, train_tagger
from nlp_lstm.training.loop import fit
from tests.tagging_data import most_frequent_tag, turkish_slice, write_bio

TURKISH_PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "turkish_pos.toml"
SMALL = {"embedding_dim": 32, "hidden_size": 32, "char_filters": 16, "char_embedding_dim": 16}


def predict(model_dir, tokens: list[list[str]]) -> list[list[str]]:
    """The saved model's tags, decoded here from its weights and vocabulary (not by evaluate)."""
    network, vocab, _ = load_tagger(model_dir, device=torch.device("cpu"))
    paths = []
    for start in range(0, len(tokens), 32):
        paths += network.decode(vocab.encode(tokens[start : start + 32]))
    return [[vocab.tags[index] for index in path] for path in paths]


def token_accuracy(gold: list[list[str]], predicted: list[list[str]]) -> float:
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    return sum(g == p for g, p in pairs) / len(pairs)


@pytest.fixture(scope="module")
def bio_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bio")
    files = write_bio(directory)
    source = DataSource(train_file=str(files["train"]), validation_file=str(files["validation"]),
                        test_file=str(files["test"]))
    metrics = train_tagger(output_dir=directory / "model", source=source, model=SMALL,
                           training={"epochs": 12, "seed": 3}, progress=False, device="cpu")
    return directory, files, metrics


def test_the_bio_tagger_learns_context_and_evaluate_matches_seqeval(bio_model):
    directory, files, metrics = bio_model
    train = read_tagged_file(files["train"])
    test = read_tagged_file(files["test"])
    predicted = predict(directory / "model", test.tokens)
    baseline = most_frequent_tag(list(zip(train.tokens, train.tags)), test.tokens)
    reference = f1_score(test.tags, predicted, mode="strict", scheme=IOB2)
    assert reference > f1_score(test.tags, baseline, mode="strict", scheme=IOB2) + 0.05
    assert reference > 0.9
    scores = evaluate_tagger(directory / "model", DataSource(test_file=str(files["test"])), device="cpu",
                             plots_dir=directory / "plots")
    assert scores["span_f1"] == pytest.approx(reference, abs=1e-12)
    report = classification_report(test.tags, predicted, mode="strict", scheme=IOB2, output_dict=True)
    for label, values in scores["spans"]["per_type"].items():
        assert values["f1"] == pytest.approx(report[label]["f1-score"], abs=1e-12)
        assert values["support"] == report[label]["support"]
    assert scores["spans"]["macro"]["f1"] == pytest.approx(report["macro avg"]["f1-score"], abs=1e-12)
    assert scores["token_accuracy"] == pytest.approx(token_accuracy(test.tags, predicted), abs=1e-12)
    assert 0.0 <= scores["ece"] <= 1.0
    assert (directory / "plots" / "span_confusion.png").is_file()
    # The training run scored the same test split the same way.
    assert metrics["test"]["span_f1"] == pytest.approx(reference, abs=1e-12)
    assert metrics["scheme"] == "bio" and "ece" in metrics["validation"]


def test_the_model_directory_is_what_the_predictor_reads(bio_model):
    directory, files, _ = bio_model
    model_dir = directory / "model"
    config = json.loads((model_dir / "config.json").read_text())
    vocab = load_vocab(model_dir)
    assert config["kind"] == "tagger"
    assert config["labels"] == vocab.tags == config["model"]["tags"] == sorted({"O", "B-PER", "I-PER", "B-LOC",
                                                                                "I-LOC", "B-ORG", "I-ORG"})
    assert config["columns"] == {"tokens": "tokens", "tags": "tags"}
    assert config["model"]["language"] == "xx" and config["model"]["vocab_size"] == len(vocab.words)
    assert json.loads((model_dir / VOCAB_FILE).read_text()) == vocab.to_dict()
    assert TaggingVocab.from_dict(vocab.to_dict()) == vocab
    for name in ("model.safetensors", "metrics.json", "README.md", "plots/training_curves.png"):
        assert (model_dir / name).is_file(), name
    assert not (directory / "model.partial").exists()
    card = (model_dir / "README.md").read_text()
    assert "token-classification" in card and "span F1 micro (strict)" in card
    assert "`tagging_vocab.json` holds" in card and "tokenizer/" not in card


@pytest.mark.slow
def test_the_turkish_tagger_beats_the_most_frequent_tag(tmp_path):
    files = turkish_slice(tmp_path, train=800, validation=100, test=300)
    source = DataSource(train_file=str(files["train"]), validation_file=str(files["validation"]),
                        test_file=str(files["test"]))
    metrics = train_tagger(output_dir=tmp_path / "model", source=source, model={"language": "tr"},
                           training={"epochs": 8}, progress=False, device="cpu")
    train, test = read_tagged_file(files["train"]), read_tagged_file(files["test"])
    predicted = predict(tmp_path / "model", test.tokens)
    accuracy = token_accuracy(test.tags, predicted)
    baseline = token_accuracy(test.tags, most_frequent_tag(list(zip(train.tokens, train.tags)), test.tokens))
    assert accuracy > baseline, (accuracy, baseline)
    assert metrics["scheme"] == "plain" and "span_f1" not in metrics["test"]
    assert metrics["test"]["token_accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_resume_after_an_interruption_gives_identical_weights(tmp_path, monkeypatch):
    files = write_bio(tmp_path, train=80, validation=20, test=20)
    source = DataSource(train_file=str(files["train"]), validation_file=str(files["validation"]),
                        test_file=str(files["test"]))
    settings = dict(source=source, model=SMALL, training={"epochs": 3, "batch_size": 8}, progress=False, device="cpu")
    train_tagger(output_dir=tmp_path / "whole", **settings)

    def interrupted_fit(*args, **kwargs):  # a Ctrl-C mid-epoch 2: checkpoint, then stop as the loop does
        fit(*args, stop_after_steps=13, **kwargs)
        raise TrainingInterrupted("interrupted at step 13")

    monkeypatch.setattr(run_module, "fit", interrupted_fit)
    with pytest.raises(TrainingInterrupted):
        train_tagger(output_dir=tmp_path / "resumed", **settings)
    assert (tmp_path / "resumed.partial" / "checkpoints" / VOCAB_FILE).is_file()
    monkeypatch.setattr(run_module, "fit", fit)
    train_tagger(output_dir=tmp_path / "resumed", resume=True, **settings)
    whole = load_tensors(tmp_path / "whole" / "model.safetensors")
    resumed = load_tensors(tmp_path / "resumed" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_a_feature_column_is_read_and_saved(tmp_path):
    rows = [{"tokens": row["tokens"], "tags": row["tags"], "predicate": [int(i == 0) for i in range(len(row["tokens"]))]}
            for row in json.loads("[" + ",".join(write_bio(tmp_path, train=40)["train"].read_text().splitlines()) + "]")]
    path = tmp_path / "features.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    model = tmp_path / "model"
    metrics = train_tagger(output_dir=model, source=DataSource(train_file=str(path), feature_column="predicate"),
                           model=SMALL, training={"epochs": 1}, progress=False, device="cpu")
    config = json.loads((model / "config.json").read_text())
    assert config["columns"]["features"] == "predicate" and config["model"]["feature_embedding_dim"] == 16
    assert "feature_embedding.weight" in load_tensors(model / "model.safetensors")
    # evaluate reads the model's feature column unasked
    scores = evaluate_tagger(model, DataSource(train_file=str(path)), split="test", device="cpu")
    assert scores["count"] == round(0.1 * len(rows)) and metrics["test"]["tokens"] == scores["tokens"]


def test_settings_are_checked_before_training(tmp_path):
    files = write_bio(tmp_path, train=20, validation=5, test=5)
    source = DataSource(train_file=str(files["train"]))
    with pytest.raises(NlpLstmError, match="unknown spaCy language"):
        train_tagger(output_dir=tmp_path / "m", source=source, model={"language": "no-such"}, progress=False)
    with pytest.raises(NlpLstmError, match="feature-column"):
        train_tagger(output_dir=tmp_path / "m", source=source, model={"feature_embedding_dim": 8}, progress=False)
    with pytest.raises(NlpLstmError, match="drop --streaming"):
        train_tagger(output_dir=tmp_path / "m", source=replace(source, streaming=True), progress=False)
    conll = turkish_slice(tmp_path, train=5, validation=2, test=2)["train"]
    with pytest.raises(NlpLstmError, match="is a CoNLL file"):
        train_tagger(output_dir=tmp_path / "m", source=DataSource(train_file=str(conll), feature_column="p"),
                     progress=False)
    assert not (tmp_path / "m").exists()
    assert nlp_lstm.train_tagger is train_tagger


def test_the_turkish_pipeline_runs_a_short_version(tmp_path, monkeypatch):
    """pipelines/turkish_pos.toml as shipped, on a slice of its data and for one epoch."""
    pipe = load_pipeline(TURKISH_PIPELINE)
    assert pipe.pipeline.task == "tagger" and pipe.model.language == "tr" and pipe.data.label_column is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "turkish_pos").mkdir(parents=True)
    turkish_slice(tmp_path / "data" / "turkish_pos", train=60, validation=20, test=20, suffix=".conll.gz")
    text = TURKISH_PIPELINE.read_text().replace("epochs = 30", "epochs = 1")
    path = tmp_path / "short.toml"
    path.write_text(text + "\n", encoding="utf-8")
    lines: list[str] = []
    metrics = run_pipeline(path, progress=False, echo=lines.append, device="cpu")
    assert lines == ["[train] running -> runs/turkish-pos/model", "[evaluate] running -> runs/turkish-pos/evaluation"]
    assert metrics["split"] == "test" and metrics["count"] == 20 and 0.0 < metrics["token_accuracy"] <= 1.0
    assert json.loads((tmp_path / "runs/turkish-pos/model/config.json").read_text())["model"]["language"] == "tr"
    again: list[str] = []
    run_pipeline(path, progress=False, echo=again.append, device="cpu")
    assert all("skipped" in line for line in again)



def test_word_vectors_start_the_embedding_and_set_its_size(tmp_path):
    files = write_bio(tmp_path, train=40, validation=10, test=10)
    words = ["said", "hello", "to", "paris", "berlin", "ankara", "mary", "anna", "google", "the", "in"]
    generator = torch.Generator().manual_seed(1)
    vectors = {word: torch.randn(8, generator=generator) for word in words}
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{w} {' '.join(f'{v:.6f}' for v in vec.tolist())}\n" for w, vec in vectors.items()),
                    encoding="utf-8")
    model = tmp_path / "model"
    metrics = train_tagger(output_dir=model, source=DataSource(train_file=str(files["train"])),
                           model={**SMALL, "embeddings": str(path), "freeze_embeddings": True},
                           training={"epochs": 1}, progress=False, device="cpu")
    config = json.loads((model / "config.json").read_text())
    assert config["model"]["embedding_dim"] == 8 and config["model"]["embeddings"] == str(path)
    assert "coverage" in metrics["embeddings"]
    vocab = load_vocab(model)
    weight = load_tensors(model / "model.safetensors")["embedding.weight"]
    for word in ("said", "berlin", "mary"):  # frozen: each row is still the file's vector (rounded as written)
        assert torch.allclose(weight[vocab.word_id(word)], vectors[word], atol=1e-6), word


def test_evaluate_reads_the_models_tag_column_only_where_it_fits_the_file():
    conllu, table = DataSource(test_file="x.conllu.gz"), DataSource(test_file="x.jsonl")
    assert with_saved_columns(conllu, {"tags": "misc:NER"}).tag_column == "misc:NER"
    assert with_saved_columns(table, {"tags": "misc:NER"}).tag_column is None  # then "tags"
    assert with_saved_columns(conllu, {"tags": "ner_tags"}).tag_column is None  # then upos
    assert with_saved_columns(table, {"tags": "ner_tags", "tokens": "words"}).tokens_column == "words"
    assert with_saved_columns(replace(table, tag_column="labels"), {"tags": "ner_tags"}).tag_column == "labels"
    assert tag_columns(DataSource(train_file="t.conllu")) == {"tokens": "tokens", "tags": "upos"}

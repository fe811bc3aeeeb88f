import json
from pathlib import Path

import pytest

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.stages.pipeline import load_pipeline, run_pipeline
from tests.helpers import invoke, sentiment_rows, write_csv

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"

PIPELINE = """
[pipeline]
name = "tiny"
task = "classifier"
run_dir = "{run_dir}"

[data]
train_file = "{train_file}"

[tokenizer]
name = "tiny"
kind = "spacy"
min_freq = 1

[model]
embedding_dim = 16
hidden_size = 16
dropout = 0.0

[train]
epochs = {epochs}
batch_size = 16
learning_rate = 0.01
"""


def write_pipeline(tmp_path, epochs: int):
    train_file = write_csv(tmp_path / "train.csv", sentiment_rows(400, seed=1))
    path = tmp_path / "tiny.toml"
    path.write_text(PIPELINE.format(run_dir=tmp_path / "runs", train_file=train_file, epochs=epochs))
    return path


def test_stages_rerun_only_when_their_inputs_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # vocab/<name>/ is written relative to the working directory
    path = write_pipeline(tmp_path, epochs=6)
    lines: list[str] = []
    metrics = run_pipeline(path, progress=False, echo=lines.append)
    assert [line.split("]")[0] for line in lines] == ["[vocab", "[encode", "[train", "[evaluate"]
    assert all("running" in line for line in lines)
    assert metrics["accuracy"] > 0.8 and metrics["split"] == "test"
    assert (tmp_path / "vocab/tiny/tokenizer.json").is_file()
    assert (tmp_path / "runs/model/model.safetensors").is_file()

    lines.clear()
    again = run_pipeline(path, progress=False, echo=lines.append)
    assert all("skipped" in line for line in lines) and len(lines) == 4
    assert again == metrics

    assert epochs_logged(tmp_path) == [1, 2, 3, 4, 5, 6]

    write_pipeline(tmp_path, epochs=5)  # a [train] change: tokenizer and encoding stay
    lines.clear()
    third = run_pipeline(path, progress=False, echo=lines.append)
    assert ["skipped" in line for line in lines] == [True, True, False, False]
    # The model really was retrained with the new setting (not the old one kept), and the fresh
    # evaluation is what the run returns and records.
    config = json.loads((tmp_path / "runs/model/config.json").read_text())
    assert config["training"]["epochs"] == 5
    assert epochs_logged(tmp_path) == [1, 2, 3, 4, 5]
    model_metrics = json.loads((tmp_path / "runs/model/metrics.json").read_text())
    assert 1 <= model_metrics["best_epoch"] <= 5 and model_metrics["validation"]["count"] > 0
    assert third == json.loads((tmp_path / "runs/evaluation/metrics.json").read_text())
    assert third["split"] == "test" and third["count"] == model_metrics["test"]["count"]


def epochs_logged(tmp_path) -> list[int]:
    rows = [json.loads(line) for line in (tmp_path / "runs/model/train_log.jsonl").read_text().splitlines()]
    return [row["epoch"] for row in rows if "epoch" in row]


def test_cli_run_prints_the_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_pipeline(tmp_path, epochs=1)
    result = invoke("run", path, "--quiet")
    assert result.exit_code == 0, result.output
    assert "accuracy" in json.loads(result.stdout)
    assert "[train] running" in result.stderr


def test_summarizer_pipeline_reads_no_label_column():
    pipe = load_pipeline(PIPELINES / "descriptions.toml")
    assert pipe.pipeline.task == "summarizer" and pipe.data.label_column is None
    assert load_pipeline(PIPELINES / "sentiment.toml").data.binarize.margin == 0.5


def test_peer_comparison_pipeline_keeps_the_peers_sizes():
    # BENCHMARKS.md compares this file's model with OpenNMT-py's figures at the sizes;
    # an edit that drifts from them would make the comparison unequal.
    pipe = load_pipeline(PIPELINES.parent / "benchmarks" / "wiki_split_summarizer.toml")
    model, train = pipe.model, pipe.train
    assert (model.embedding_dim, model.hidden_size, model.max_source_length) == (128, 128, 100)
    assert (pipe.tokenizer.kind, pipe.tokenizer.vocab_size) == ("sentencepiece", 8000)
    assert (train.epochs, train.batch_size, train.learning_rate) == (6, 64, 2e-3)
    assert model.copy and model.coverage and pipe.decoding.beam_size == 4
    assert pipe.data.train_file.endswith("splits/wiki/train.jsonl.gz")


VECTORS_PIPELINE = """
[pipeline]
name = "tiny-vectors"
run_dir = "{run_dir}"

[data]
train_file = "{train_file}"

[model]
embeddings = "vectors.txt"
hidden_size = 8
dropout = 0.0

[train]
epochs = 8
batch_size = 16
learning_rate = 0.02
"""


def test_a_pipeline_with_word_vectors_trains_from_the_data_and_reruns_when_the_vectors_change(tmp_path, monkeypatch):
    from tests.cli.test_vectors_cli import vectors_file

    monkeypatch.chdir(tmp_path)  # the vectors path is relative to the working directory, as data paths are
    vectors = vectors_file(tmp_path / "vectors.txt")
    train_file = write_csv(tmp_path / "train.csv", sentiment_rows(300, seed=1))
    path = tmp_path / "vectors.toml"
    path.write_text(VECTORS_PIPELINE.format(run_dir=tmp_path / "runs", train_file=train_file))
    lines: list[str] = []
    metrics = run_pipeline(path, progress=False, echo=lines.append)
    assert [line.split("]")[0] for line in lines] == ["[train", "[evaluate"]  # no [vocab]/[encode]: the vectors' words
    assert metrics["accuracy"] > 0.8
    config = json.loads((tmp_path / "runs/model/config.json").read_text())
    assert config["model"]["embedding_dim"] == 8  # the vectors' size, not the default
    vectors.write_text(vectors.read_text().replace("0.0", "0.5", 1))  # other vectors: the model must retrain
    lines.clear()
    run_pipeline(path, progress=False, echo=lines.append)
    assert ["running" in line for line in lines] == [True, True]


def test_the_tokenizer_table_is_required_only_where_a_vocab_stage_runs(tmp_path):
    """A tagger reads its corpus's own words, so its pipeline needs no [tokenizer]; a classifier
    pipeline without one is told the table is missing. The shipped tagger pipeline states only a
    seed under [train]: the tagger's own training defaults fill the rest."""
    classifier = tmp_path / "clf.toml"
    classifier.write_text('[pipeline]\nname = "c"\n[data]\ntrain_file = "x.csv"\n')
    with pytest.raises(NlpLstmError, match=r"missing table \[tokenizer\]"):
        load_pipeline(classifier)
    pipe = load_pipeline(PIPELINES / "turkish_pos.toml")
    assert (pipe.train.epochs, pipe.train.batch_size, pipe.train.learning_rate, pipe.train.clip_norm) == (50, 16, 2e-3, 5.0)
    assert pipe.train.patience == 10
    assert pipe.train.seed == 13 and pipe.tokenizer.name == "turkish-pos"

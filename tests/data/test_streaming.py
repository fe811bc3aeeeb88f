"""Corpora larger than memory: streamed sources and save_to_disk directories give the same data."""

import json

import datasets
import numpy as np
import pytest

from nlp_lstm.data.columns import Binarize, label_names
from nlp_lstm.data.sources import DataSource, load_splits
from nlp_lstm.data.splits import _row_hashes, split_bounds, split_order
from nlp_lstm.data.encode import encode_classification, encode_summarization
from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.errors import NlpLstmError
from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl

datasets.disable_progress_bars()
SMALL = ["--embedding-dim", "16", "--hidden-size", "16", "--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.mark.parametrize("num_rows,seed", [(1, 1), (2, 3), (10, 13), (997, 7), (50_001, 13)])
def test_split_bounds_select_the_first_rows_of_split_order(num_rows, seed):
    order = split_order(num_rows, seed)
    hashes = _row_hashes(np.arange(num_rows), seed)
    ranks = sorted({0, 1, num_rows // 10, num_rows // 5, num_rows - 1, num_rows})
    for rank, bound in zip(ranks, split_bounds(num_rows, seed=seed, ranks=ranks)):
        chosen = np.flatnonzero(hashes < np.uint64(bound)) if bound < 1 << 64 else np.arange(num_rows)
        assert set(chosen.tolist()) == set(order[:rank].tolist())


def _scored_rows(count):
    rows = sentiment_rows(count, seed=3)
    for i, row in enumerate(rows):
        row["score"] = float((i % 9) - 4) if i % 17 else None  # some missing: binarize drops them
        row["text"] = None if i % 23 == 0 else row["text"]
    return rows


@pytest.mark.parametrize("binarize", [False, True])
def test_streamed_splits_hold_the_same_rows_as_arrow_splits(tmp_path, binarize):
    path = write_jsonl(tmp_path / "d.jsonl", _scored_rows(300))
    settings = dict(train_file=str(path), binarize=Binarize(column="score", margin=1.5) if binarize else None)
    arrow = load_splits(DataSource(**settings))
    stream = load_splits(DataSource(**settings, streaming=True))
    assert isinstance(stream["train"], datasets.IterableDataset)
    assert set(stream) == set(arrow) == {"train", "validation", "test"}
    for split in arrow:
        streamed = list(stream[split])
        assert [(r["text"], r["label"]) for r in streamed] == list(zip(arrow[split]["text"], arrow[split]["label"]))
    assert label_names(stream["train"], "label") == label_names(arrow["train"], "label")


def test_streamed_encoding_equals_arrow_encoding(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", _scored_rows(200))
    tokenizer = fit_tokenizer((r["text"] or "" for r in _scored_rows(200)), kind="spacy", min_freq=1)
    for streaming in (False, True):
        splits = load_splits(DataSource(train_file=str(path), streaming=streaming))
        encoded = encode_classification(splits["test"], tokenizer, text_column="text", label_column="label",
                                        label_names=["neg", "pos"], max_length=8)
        assert isinstance(encoded, datasets.Dataset)  # a stream is written to Arrow once, for random access
        if streaming:
            assert encoded.to_dict() == expected
        expected = encoded.to_dict()
    summary = encode_summarization(splits["test"], tokenizer, text_column="text", summary_column=None)
    assert len(summary) == len(expected["length"])


def test_a_stream_with_no_rows_left_is_a_clear_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", _scored_rows(60))
    splits = load_splits(DataSource(train_file=str(path), streaming=True, test_fraction=0.0,
                                    binarize=Binarize(column="score", margin=100.0)))
    tokenizer = fit_tokenizer(["a b c"], kind="spacy", min_freq=1)
    with pytest.raises(NlpLstmError, match="no rows to encode"):
        encode_classification(splits["train"], tokenizer, text_column="text", label_column="label",
                              label_names=["negative", "positive"])


def test_save_to_disk_directory_is_read_memory_mapped(tmp_path):
    rows = sentiment_rows(50, seed=4)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dict"))
    for directory in ("single", "dict"):
        for streaming in (False, True):
            splits = load_splits(DataSource(train_file=str(tmp_path / directory), streaming=streaming))
            assert sum(1 for split in splits.values() for _ in split) == 50
    with pytest.raises(NlpLstmError, match="holds splits train, not 'test'"):
        load_splits(DataSource(test_file=str(tmp_path / "dict")), splits=("test",))


def test_train_with_streaming_gives_the_same_model(tmp_path):
    data = write_csv(tmp_path / "train.csv", sentiment_rows(200, seed=1))
    metrics = {}
    for flag in ([], ["--streaming"]):
        output = tmp_path / f"model{len(flag)}"
        result = invoke("train", "classifier", "--train-file", data, "--output-dir", output, *SMALL, *flag)
        assert result.exit_code == 0, result.output
        metrics[len(flag)] = json.loads((output / "metrics.json").read_text())
        metrics[len(flag)].pop("train_seconds")
    assert metrics[0] == metrics[1]  # same rows, same order, same seed: the same weights and scores
    assert (tmp_path / "model0" / "model.safetensors").read_bytes() == (tmp_path / "model1" / "model.safetensors").read_bytes()
    evaluated = invoke("evaluate", "--model", tmp_path / "model1", "--train-file", data, "--split", "test",
                       "--streaming", "--format", "json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == metrics[1]["test"]["accuracy"]


def test_vocab_and_encode_stream(tmp_path):
    data = write_csv(tmp_path / "train.csv", sentiment_rows(120, seed=2))
    vocab = invoke("vocab", "--name", "s", "--train-file", data, "--output-dir", tmp_path / "vocab", "--streaming", "--min-freq", "1")
    assert vocab.exit_code == 0, vocab.output
    encoded = invoke("encode", "--train-file", data, "--tokenizer", tmp_path / "vocab", "--output-dir",
                     tmp_path / "encoded", "--streaming")
    assert encoded.exit_code == 0, encoded.output
    assert "train 96, validation 12, test 12" in encoded.stdout
    refused = invoke("encode", "--train-file", data, "--tokenizer", tmp_path / "vocab", "--output-dir",
                     tmp_path / "again", "--streaming", "--num-proc", "2")
    assert_usage_error(refused, "num_proc works on Arrow data", "--streaming")


def test_train_summarizer_with_streaming_gives_the_same_model(tmp_path):
    from tests.helpers import credit_rows

    data = write_jsonl(tmp_path / "train.jsonl", credit_rows(40, seed=1))
    for flag in ([], ["--streaming"]):
        result = invoke(
            "train", "summarizer", "--train-file", data, "--text-column", "document", "--summary-column", "summary",
            "--output-dir", tmp_path / f"m{len(flag)}", "--tokenizer-kind", "spacy", "--vocab-size", "100",
            "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--batch-size", "4", "--quiet",
            "--max-source-length", "20", "--max-target-length", "4", *flag,
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "m0" / "model.safetensors").read_bytes() == (tmp_path / "m1" / "model.safetensors").read_bytes()

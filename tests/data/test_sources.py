import gzip
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT

from nlp_lstm.data.columns import Binarize, check_labels, label_names
from nlp_lstm.data.files import read_texts
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.splits import split_indices
from nlp_lstm.errors import NlpLstmError

datasets.disable_progress_bars()
VADER = ROOT / "data" / "vader_sentiment.jsonl.gz"


def rows(n=50):
    return [{"text": f"text number {i}", "label": ["neg", "pos"][i % 2], "score": (i % 9) - 4.0} for i in range(n)]


def write(path: Path, records: list[dict]) -> Path:
    """Write records in the format named by the file extension."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(records), path)
        return path
    if name.endswith((".jsonl", ".json")):
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    elif name.endswith(".txt"):
        content = "".join(r["text"] + "\n" for r in records)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        keys = list(records[0])
        content = sep.join(keys) + "\n" + "".join(sep.join(str(r[k]) for k in keys) + "\n" for r in records)
    data = content.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.jsonl.gz", "d.json", "d.parquet", "d.txt", "d.csv.gz", "d.txt.gz"])
def test_load_splits_each_format(tmp_path, name):
    path = write(tmp_path / name, rows(50))
    label_column = None if ".txt" in name else "label"
    splits = load_splits(DataSource(train_file=str(path), label_column=label_column))
    assert {s: len(d) for s, d in splits.items()} == {"train": 40, "validation": 5, "test": 5}
    texts = sorted(t for d in splits.values() for t in d["text"])
    assert texts == sorted(r["text"] for r in rows(50))
    if label_column:
        assert set(splits["train"]["label"]) == {"neg", "pos"}


def test_split_rule_80_10_10_is_fixed_and_disjoint(tmp_path):
    path = write(tmp_path / "d.jsonl", rows(1000))
    source = DataSource(train_file=str(path))
    splits = load_splits(source)
    assert {s: len(d) for s, d in splits.items()} == {"train": 800, "validation": 100, "test": 100}
    sets = {s: set(d["text"]) for s, d in splits.items()}
    assert not sets["train"] & sets["test"] and not sets["train"] & sets["validation"] and not sets["test"] & sets["validation"]
    assert load_splits(source)["test"]["text"] == splits["test"]["text"]  # deterministic
    assert load_split(source, "test")["text"] == splits["test"]["text"]  # same rows alone
    other_seed = load_splits(DataSource(train_file=str(path), split_seed=14))
    assert set(other_seed["test"]["text"]) != sets["test"]
    # A validation file does not move the test rows.
    validation = write(tmp_path / "v.jsonl", rows(7))
    with_validation = load_splits(DataSource(train_file=str(path), validation_file=str(validation)))
    assert with_validation["test"]["text"] == splits["test"]["text"]
    assert len(with_validation["validation"]) == 7 and len(with_validation["train"]) == 900


def test_split_indices_rule():
    parts = split_indices(23703, seed=13, test_fraction=0.1, validation_fraction=0.1)
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [18963, 2370, 2370]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(23703))
    assert len(split_indices(5, seed=0, test_fraction=0.1, validation_fraction=0.1)["test"]) == 1  # at least one row
    assert "test" not in split_indices(10, seed=0, test_fraction=0.0, validation_fraction=0.1)


def test_test_fraction_zero_disables_test(tmp_path):
    path = write(tmp_path / "d.csv", rows(20))
    splits = load_splits(DataSource(train_file=str(path), test_fraction=0.0))
    assert set(splits) == {"train", "validation"} and len(splits["train"]) == 18
    with pytest.raises(NlpLstmError, match="test_fraction is 0"):
        load_split(DataSource(train_file=str(path), test_fraction=0.0), "test")


def test_explicit_files_are_used_as_given(tmp_path):
    train, validation, test = (write(tmp_path / f"{s}.jsonl", rows(n)) for s, n in [("tr", 30), ("va", 4), ("te", 6)])
    source = DataSource(train_file=str(train), validation_file=str(validation), test_file=str(test))
    assert {s: len(d) for s, d in load_splits(source).items()} == {"train": 30, "validation": 4, "test": 6}
    only_test = DataSource(test_file=str(test))
    assert len(load_split(only_test, "test")) == 6  # evaluating needs no train file


def test_texts_none_becomes_empty_and_whitespace_kept(tmp_path):
    records = [{"text": None, "label": "a"}, {"text": "   ", "label": "b"}, {"text": "a\x00b", "label": "a"}] * 10
    path = write(tmp_path / "d.jsonl", records)
    train = load_split(DataSource(train_file=str(path), test_fraction=0, validation_fraction=0), "train")
    assert set(train["text"]) == {"", "   ", "a\x00b"}  # NUL bytes are kept as text


def test_numeric_text_column_becomes_strings(tmp_path):
    path = write(tmp_path / "d.csv", [{"text": i, "label": i % 2} for i in range(20)])
    train = load_split(DataSource(train_file=str(path), test_fraction=0, validation_fraction=0), "train")
    assert train["text"][:3] == ["0", "1", "2"]


def test_binarize_labels_and_margin(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"text": str(s), "score": s} for s in [-2.0, -0.4, -0.1, 0.0, 0.3, 0.6, 3.0, None]])
    source = DataSource(
        train_file=str(path), label_column="label", binarize=Binarize(column="score", margin=0.5), test_fraction=0, validation_fraction=0
    )
    train = load_split(source, "train")
    assert dict(zip(train["text"], train["label"])) == {"-2.0": "negative", "0.6": "positive", "3.0": "positive"}
    all_dropped = DataSource(train_file=str(path), binarize=Binarize(column="score", margin=10), test_fraction=0, validation_fraction=0)
    with pytest.raises(NlpLstmError, match="margin"):
        load_splits(all_dropped)


def test_vader_pipeline_split(tmp_path):
    source = DataSource(train_file=str(VADER), label_column="label", binarize=Binarize(column="score", margin=0.5))
    splits = load_splits(source)
    # The cut comes first (23,703 rows -> 2,370 test / 2,370 validation), then near-neutral rows drop.
    total = sum(len(d) for d in splits.values())
    assert 19000 < total < 20000
    assert 1800 < len(splits["test"]) < 2100 and 1800 < len(splits["validation"]) < 2100
    assert label_names(splits["train"], "label") == ["negative", "positive"]
    assert load_split(source, "test")["id"] == splits["test"]["id"]


def test_label_names():
    assert label_names(datasets.Dataset.from_dict({"y": [10, 2, 2, 1]}), "y") == ["1", "2", "10"]
    assert label_names(datasets.Dataset.from_dict({"y": ["b", "a", "b"]}), "y") == ["a", "b"]
    assert label_names(datasets.Dataset.from_dict({"y": [["x"], [], ["y", "z"]]}), "y") == ["x", "y", "z"]
    assert label_names(datasets.Dataset.from_dict({"y": ["b", "a", "a"]}).select([1, 0]), "y") == ["a", "b"]
    with pytest.raises(NlpLstmError, match="only 'a'"):
        check_labels(datasets.Dataset.from_dict({"y": ["a", "a"]}), "y")
    with pytest.raises(NlpLstmError, match="only 'a'"):  # the other class exists, but not in the selected rows
        label_names(datasets.Dataset.from_dict({"y": ["b", "a", "a"]}).select([1, 2]), "y")
    with pytest.raises(NlpLstmError, match=r"1 row\(s\) have a blank label in column .y. \(the first is row 2\)"):
        label_names(datasets.Dataset.from_dict({"y": ["a", None, "b"]}), "y")
    with pytest.raises(NlpLstmError, match="available columns: y"):
        label_names(datasets.Dataset.from_dict({"y": ["a", "b"]}), "label")


def test_class_label_ids_become_names(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    datasets.Dataset.from_dict({"text": ["a", "b"] * 10, "label": [0, 1] * 10}, features=features).to_parquet(tmp_path / "d.parquet")
    # parquet keeps the ClassLabel in its schema metadata
    train = load_split(DataSource(train_file=str(tmp_path / "d.parquet"), test_fraction=0, validation_fraction=0), "train")
    assert set(train["label"]) == {"neg", "pos"}


def test_read_texts(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_bytes("first text\n\n  \nlast one\r\n".encode())
    assert read_texts(txt) == ["first text", "", "  ", "last one"]
    gz = tmp_path / "in.txt.gz"
    gz.write_bytes(gzip.compress(b"a\nb"))
    assert read_texts(gz) == ["a", "b"]
    assert read_texts(write(tmp_path / "in.csv", rows(3))) == ["text number 0", "text number 1", "text number 2"]
    assert read_texts(write(tmp_path / "in.jsonl.gz", rows(2))) == ["text number 0", "text number 1"]
    with pytest.raises(NlpLstmError, match="available columns: body"):
        read_texts(write(tmp_path / "other.jsonl", [{"body": "x"}]))


# --- errors ------------------------------------------------------------------------------------
def raises(source, fact):
    with pytest.raises(NlpLstmError, match=fact) as info:
        load_splits(source)
    assert "\n" not in str(info.value)  # one line
    return str(info.value)


def test_file_errors(tmp_path):
    raises(DataSource(train_file=str(tmp_path / "nope.csv")), "nope.csv does not exist")
    raises(DataSource(train_file=str(tmp_path)), "is a directory")
    (tmp_path / "d.xlsx").write_text("x")
    raises(DataSource(train_file=str(tmp_path / "d.xlsx")), r"d.xlsx.*\.csv")
    (tmp_path / "d.parquet.gz").write_bytes(gzip.compress(b"x"))
    raises(DataSource(train_file=str(tmp_path / "d.parquet.gz")), "decompress")
    (tmp_path / "empty.csv").write_text("")
    raises(DataSource(train_file=str(tmp_path / "empty.csv")), "empty.csv is empty")
    (tmp_path / "header.csv").write_text("text,label\n")
    raises(DataSource(train_file=str(tmp_path / "header.csv")), "empty")
    raises(DataSource(), "--train-file")
    raises(DataSource(dataset="imdb", train_file="x.csv"), "not both")
    raises(DataSource(train_file="x.csv", validation_fraction=0.6, test_fraction=0.5), "below 1")


@pytest.mark.parametrize("name", ["bad.csv", "bad.jsonl", "bad.txt", "bad.jsonl.gz", "bad.tsv"])
def test_invalid_utf8_names_file_and_line(tmp_path, name):
    data = "text\tlabel\n" if name.endswith("tsv") else ("text,label\n" if name.endswith("csv") else "")
    line = '{"text": "ok"}\n' if "jsonl" in name else "ok,a\n"
    content = (data + line * 3).encode() + b'{"text": "caf\xe9"}\n' if "jsonl" in name else (data + line * 3).encode() + b"caf\xe9,b\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    expected_line = 5 if data else 4
    message = raises(DataSource(train_file=str(path), label_column=None), f"{name} is not valid UTF-8")
    assert f"line {expected_line}" in message and "UTF-8" in message
    if name.endswith(".txt"):
        with pytest.raises(NlpLstmError, match="line 4"):
            read_texts(path)


def test_unknown_columns_list_the_available_ones(tmp_path):
    path = write(tmp_path / "d.csv", rows(20))
    message = raises(DataSource(train_file=str(path), text_column="review"), "'review' not found")
    assert "available columns: text, label, score" in message
    raises(DataSource(train_file=str(path), label_column="stars"), "available columns: text, label, score")
    raises(DataSource(train_file=str(path), summary_column="abstract"), "available columns")
    raises(DataSource(train_file=str(path), binarize=Binarize(column="rating")), "'rating' not found")
    raises(DataSource(train_file=str(path), binarize=Binarize(column="text")), "not numeric")


def test_hub_failure_is_one_clear_error():
    message = raises(DataSource(dataset="surely/not-a-dataset", dataset_config="x"), "surely/not-a-dataset")
    assert "--train-file" in message


def test_too_few_rows_to_split(tmp_path):
    path = write(tmp_path / "d.csv", rows(2))
    raises(DataSource(train_file=str(path)), "cannot cut")

"""`nlp-lstm tag`: texts as arguments, a file or stdin; raw or pre-tokenized; table, JSON and JSONL."""

from __future__ import annotations

import json

import pytest

import nlp_lstm
from nlp_lstm.metrics.spans import spans as strict_spans
from tests.helpers import assert_usage_error, invoke
from tests.tagger_helpers import train_tagger_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tagger_dir(tmp_path_factory.mktemp("tag_cli") / "model", steps=60)


def test_json_holds_tokens_tags_offsets_confidences_and_spans(model_dir):
    texts = ["Anna went to  Paris", "Bob met Carl"]
    result = invoke("tag", "--model", model_dir, *texts, "--format", "json", "--device", "cpu", "--threads", "1")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["text"] for row in rows] == texts
    assert rows[0]["tokens"] == ["Anna", "went", "to", "Paris"] and rows[0]["offsets"][3] == [14, 19]  # two spaces before "Paris"
    library = nlp_lstm.load(model_dir, device="cpu").tag(texts)
    assert rows == library  # the command prints what the library returns
    for row in rows:
        assert len(row["tags"]) == len(row["tokens"]) == len(row["confidences"])
        assert all(0.0 <= c <= 1.0 for c in row["confidences"])
        assert [(s["type"], s["start"], s["end"]) for s in row["spans"]] == [tuple(s) for s in strict_spans(row["tags"])]
        for span in row["spans"]:
            assert span["text"] == row["text"][span["start_char"] : span["end_char"]] and 0 <= span["confidence"] <= 1


def test_jsonl_from_stdin_pretokenized_one_line_per_text(model_dir):
    result = invoke("tag", "--model", model_dir, "--pretokenized", "--format", "jsonl", "--no-confidences",
                    "--device", "cpu", input="Anna  went\nBob,met Carl\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["tokens"] for row in rows] == [["Anna", "went"], ["Bob,met", "Carl"]]  # split on whitespace only
    assert all("confidences" not in row and "offsets" not in row for row in rows)


def test_table_shows_tagged_tokens_and_spans(model_dir, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("Anna went to Paris\n", encoding="utf-8")
    result = invoke("tag", "--model", model_dir, "--input-file", source, "--device", "cpu")
    assert result.exit_code == 0, result.output
    [row] = nlp_lstm.load(model_dir, device="cpu").tag(["Anna went to Paris"])
    for token, tag in zip(row["tokens"], row["tags"]):
        assert f"{token}/{tag}" in result.stdout
    for span in row["spans"]:
        assert f"{span['type']}: {span['text']} ({span['confidence']:.2f})" in result.stdout


def test_a_model_of_another_kind_or_no_input_is_one_line(model_dir, tmp_path):
    assert_usage_error(invoke("tag", "--model", tmp_path, "x"), "not a model directory")
    assert_usage_error(invoke("tag", "--model", model_dir, "--runtime", "onnx", "x"), "nlp-lstm export")

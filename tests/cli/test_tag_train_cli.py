"""`nlp-lstm train tagger` and `nlp-lstm evaluate` of a tagger: a run end to end, and every bad input
of issue 24 answered in one line with exit 2 (a tag repaired as conlleval reads it: said once)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import assert_usage_error, invoke, write_jsonl
from tests.tagging_data import write_bio

TINY = ["--epochs", "1", "--set", "model.hidden_size=16", "--set", "model.embedding_dim=16",
        "--set", "model.char_filters=8", "--quiet", "--threads", "1"]
CONLLU_LINE = "{i}\t{word}\t{word}\tNOUN\t_\t_\t0\troot\t_\t{misc}"


def train(*args):
    return invoke("train", "tagger", *args, *TINY)


def test_train_then_evaluate(tmp_path):
    files = write_bio(tmp_path, train=60, validation=15, test=15)
    result = train("--train-file", files["train"], "--validation-file", files["validation"], "--test-file",
                   files["test"], "--output-dir", tmp_path / "model", "--language", "en")
    assert result.exit_code == 0, result.output
    assert "saved model to" in result.stdout and "span F1" in result.stdout
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["kind"] == "tagger" and config["model"]["language"] == "en" and config["model"]["hidden_size"] == 16
    assert config["training"]["batch_size"] == 16 and config["training"]["epochs"] == 1  # the tagger's defaults
    result = invoke("evaluate", "--model", tmp_path / "model", "--test-file", files["test"], "--format", "json",
                    "--threads", "1")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    stored = json.loads((tmp_path / "model" / "metrics.json").read_text())["test"]
    assert metrics["count"] == 15 and metrics["span_f1"] == pytest.approx(stored["span_f1"])
    table = invoke("evaluate", "--model", tmp_path / "model", "--test-file", files["test"], "--threads", "1")
    assert table.exit_code == 0 and "token_accuracy" in table.stdout


def conllu(path, rows: list[list[str]]):
    """Sentences of (word, misc) pairs as a CoNLL-U file (XPOS empty)."""
    blocks = ["\n".join(CONLLU_LINE.format(i=i, word=word, misc=misc) for i, (word, misc) in enumerate(rows, 1))
              for rows in rows]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("case", ["lengths", "empty", "mixed", "columns", "conllu_column", "misc_key", "text"])
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    out = ["--output-dir", tmp_path / "model"]
    good = {"tokens": ["a", "b"], "tags": ["O", "B-X"]}
    if case == "lengths":
        path = write_jsonl(tmp_path / "d.jsonl", [good, {"tokens": ["a", "b", "c"], "tags": ["O", "O"]}] * 5)
        assert_usage_error(train("--train-file", path, *out), "row 1", "3 tokens but 2 tags")
    elif case == "empty":
        path = write_jsonl(tmp_path / "d.jsonl", [good, {"tokens": [], "tags": []}] * 5)
        assert_usage_error(train("--train-file", path, *out), "row 1", "no tokens")
    elif case == "mixed":
        rows = [good, {"tokens": ["a", "b", "c"], "tags": ["B-X", "E-X", "S-Y"]}] * 5
        path = write_jsonl(tmp_path / "d.jsonl", rows)
        assert_usage_error(train("--train-file", path, *out), "BIO")
    elif case == "columns":
        path = tmp_path / "d.conll"
        path.write_text("a\tO\nb\tB-X\n\nc\tO\td\n", encoding="utf-8")
        assert_usage_error(train("--train-file", path, *out), "line 4")
    elif case == "conllu_column":
        path = conllu(tmp_path / "d.conllu", [[("a", "_"), ("b", "_")]] * 10)
        assert_usage_error(train("--train-file", path, "--tag-column", "xpos", *out), "line 1", "XPOS")
    elif case == "misc_key":
        path = conllu(tmp_path / "d.conllu", [[("a", "NER=O"), ("b", "SpaceAfter=No")]] * 10)
        assert_usage_error(train("--train-file", path, "--tag-column", "misc:NER", *out), "line 2", "NER=")
    elif case == "text":
        path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a b", "tags": ["O", "O"]}] * 10)
        assert_usage_error(train("--train-file", path, "--tokens-column", "text", *out), "'text'", "token lists")
        assert_usage_error(train("--train-file", path, *out), "no tokens column 'tokens'", "columns are text, tags",
                           "--tokens-column")
    assert not (tmp_path / "model").exists()


def test_i_tags_without_b_are_repaired_and_said_once(tmp_path):
    rows = [{"tokens": ["the", "big", "dog"], "tags": ["O", "I-X", "I-X"]},
            {"tokens": ["a", "cat"], "tags": ["B-X", "I-X"]}] * 10
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    result = train("--train-file", path, "--output-dir", tmp_path / "model")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    train_warnings = [line for line in warnings if "(train)" in line]
    assert len(train_warnings) == 1 and "I-X -> B-X" in train_warnings[0]
    # each "the big dog" row has one unopened I-X (the second continues the repaired B-X); at most 10 reach train
    counted = re.search(r"(\d+) tags in (\d+) sentences", train_warnings[0])
    assert counted and counted.group(1) == counted.group(2) and 1 <= int(counted.group(1)) <= 10
    assert "B-X" in json.loads((tmp_path / "model" / "config.json").read_text())["labels"]


@pytest.mark.slow
def test_torchrun_validation_sums_counts_over_ranks(tmp_path):
    """Two DDP ranks each score half of validation; the logged score of the best epoch must be the
    whole split's, which rank 0 scores again alone on the kept best weights (metrics.json)."""
    files = write_bio(tmp_path, train=120, validation=31, test=10)
    result = invoke("train", "tagger", "--train-file", files["train"], "--validation-file", files["validation"],
                    "--test-file", files["test"], "--output-dir", tmp_path / "model", "--epochs", "3", "--quiet",
                    "--threads", "1", "--device", "cpu", "--nproc-per-node", "2")
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    best = [row for row in log if row.get("best")][-1]
    alone = json.loads((tmp_path / "model" / "metrics.json").read_text())["validation"]
    assert best["val_metric_name"] == "span_f1"
    assert best["val_metric"] == pytest.approx(alone["span_f1"], abs=1e-12)
    assert best["val_loss"] == pytest.approx(alone["loss"], rel=1e-5)

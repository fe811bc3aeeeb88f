"""`nlp-lstm train summarizer`, `summarize` and `evaluate` end to end through the command line."""

import json
import shutil

import pytest

from tests.helpers import ROOT, assert_usage_error, invoke, write_jsonl
from tests.helpers import credit_rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_jsonl(root / "train.jsonl", credit_rows(48, seed=1)),
        "test": write_jsonl(root / "test.jsonl", credit_rows(10, seed=2)),
        "root": root,
    }


@pytest.fixture(scope="module")
def model_dir(data):
    output = data["root"] / "model"
    result = invoke(
        "train", "summarizer", "--train-file", data["train"], "--test-file", data["test"],
        "--text-column", "document", "--summary-column", "summary", "--output-dir", output,
        "--tokenizer-kind", "spacy", "--vocab-size", "100", "--embedding-dim", "16", "--hidden-size", "32",
        "--epochs", "12", "--batch-size", "4", "--learning-rate", "0.01", "--patience", "12", "--seed", "3",
        "--max-source-length", "40", "--max-target-length", "6", "--quiet", "--threads", "1", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "ROUGE-1/2/L" in result.stdout and "best epoch" in result.stdout
    return output


def test_summarize_json_and_jsonl(model_dir):
    texts = ["the movie by carl was long", "a story by kim"]
    result = invoke("summarize", "--model", model_dir, *texts, "--format", "json", "--beam-size", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"text": texts[0], "summary": "film by carl"},
                                         {"text": texts[1], "summary": "film by kim"}]
    result = invoke("summarize", "--model", model_dir, "--format", "jsonl", "--beam-size", "1", "--device", "cpu",
                    input="old movie by anna\nby lou it is new\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["summary"] for row in rows] == ["film by anna", "film by lou"]


def test_empty_text_is_one_warning_line_and_an_empty_summary(model_dir):
    result = invoke("summarize", "--model", model_dir, "  ", "a story by bob", "--format", "json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["summary"] == "" and rows[1]["summary"] == "film by bob"
    warning_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: ") and "empty" in warning_lines[0]


def test_evaluate_json_has_rouge_and_the_lead_baseline(model_dir, data):
    result = invoke("evaluate", "--model", model_dir, "--test-file", data["test"], "--format", "json",
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"rouge1", "rouge2", "rougeL", "count", "split", "lead_baseline"} <= set(metrics)
    assert metrics["count"] == 10 and metrics["split"] == "test"
    assert metrics["lead_baseline"]["k"] == 3
    assert metrics["rougeL"] > metrics["lead_baseline"]["rougeL"]
    table = invoke("evaluate", "--model", model_dir, "--test-file", data["test"], "--device", "cpu")
    assert table.exit_code == 0 and "rougeL" in table.stdout and "lead_baseline" in table.stdout


def test_attention_plot_writes_a_png(model_dir, tmp_path):
    plot = tmp_path / "attention.png"
    result = invoke("summarize", "--model", model_dir, "the old movie was made by hana in year", "--attention-plot",
                    plot, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_classifier_is_refused_by_summarize(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "classifier", "model": {}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    result = invoke("summarize", "--model", tmp_path, "some text")
    assert_usage_error(result, "holds a classifier model", "nlp-lstm classify")


def test_a_summarizer_is_refused_by_classify(model_dir):
    result = invoke("classify", "--model", model_dir, "some text")
    assert_usage_error(result, "holds a summarizer model", "nlp-lstm summarize")


def test_missing_summary_column_lists_the_available_columns(data, tmp_path):
    result = invoke("train", "summarizer", "--train-file", data["train"], "--text-column", "document",
                    "--summary-column", "abstract", "--output-dir", tmp_path / "m", "--quiet")
    assert_usage_error(result, "'abstract'", "available columns: document, summary")


def test_bf16_output_summarizes_and_evaluates_like_the_float_model(model_dir, data):
    texts = ["the movie by carl was long", "a story by kim"]
    result = invoke("summarize", "--model", model_dir, *texts, "--format", "json", "--beam-size", "2",
                    "--device", "cpu", "--bf16-output")
    assert result.exit_code == 0, result.output
    assert [row["summary"] for row in json.loads(result.stdout)] == ["film by carl", "film by kim"]
    scores = []
    for flags in ([], ["--bf16-output"]):
        result = invoke("evaluate", "--model", model_dir, "--test-file", data["test"], "--format", "json",
                        "--device", "cpu", *flags)
        assert result.exit_code == 0, result.output
        scores.append(json.loads(result.stdout)["rougeL"])
    assert scores[0] > 50 and abs(scores[0] - scores[1]) <= 2.0, scores


def test_bf16_output_is_refused_with_onnx_and_for_classifiers(model_dir, data, tmp_path):
    result = invoke("summarize", "--model", model_dir, "x", "--runtime", "onnx", "--bf16-output")
    assert_usage_error(result, "--bf16-output", "--runtime onnx")
    classifier = shutil.copytree(ROOT / "tests" / "fixtures" / "format1" / "classifier", tmp_path / "classifier")
    result = invoke("evaluate", "--model", classifier, "--test-file", data["test"], "--bf16-output")
    assert_usage_error(result, "--bf16-output is for summarizers", "drop the option")


def test_shortlist_summarizes_and_evaluates_and_is_reported(model_dir, data):
    texts = ["the movie by carl was long", "a story by kim"]
    result = invoke("summarize", "--model", model_dir, *texts, "--format", "json", "--beam-size", "2",
                    "--device", "cpu", "--shortlist", "3")
    assert result.exit_code == 0, result.output
    # The names are the texts' own pieces, which every example may still produce.
    assert [row["summary"] for row in json.loads(result.stdout)] == ["film by carl", "film by kim"]
    result = invoke("evaluate", "--model", model_dir, "--test-file", data["test"], "--format", "json",
                    "--device", "cpu", "--shortlist", "3")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["decoding"]["shortlist"] == 3 and metrics["rougeL"] > 50, metrics


def test_a_negative_shortlist_is_a_usage_error(model_dir):
    result = invoke("summarize", "--model", model_dir, "x", "--shortlist", "-1")
    assert result.exit_code == 2 and "--shortlist" in result.output

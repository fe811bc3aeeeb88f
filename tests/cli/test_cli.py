import json

import pytest

from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl

# Tiny-data settings (not the defaults, which are measured on real corpora): spaCy words, max pooling.
SMALL = ["--embedding-dim", "16", "--hidden-size", "16", "--epochs", "6", "--batch-size", "16", "--tokenizer-kind",
         "spacy", "--pooling", "max", "--dropout", "0.3", "--set", "train.weight_decay=0.01",
         "--learning-rate", "0.01", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_csv(root / "train.csv", sentiment_rows(400, seed=1)),
        "test": write_csv(root / "test.csv", sentiment_rows(60, seed=2)),
        "root": root,
    }


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "model"
    result = invoke("train", "classifier", "--train-file", data["train"], "--test-file", data["test"],
                    "--output-dir", output, *SMALL)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout
    return output


def test_help_lists_every_stage():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("vocab", "encode", "train", "evaluate", "classify", "summarize", "run"):
        assert command in result.stdout


def test_classify_json_and_jsonl_and_stdin(model_dir):
    result = invoke("classify", "--model", model_dir, "a great film", "an awful plot", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [set(row) for row in rows] == [{"text", "label", "score"}] * 2
    assert [row["label"] for row in rows] == ["pos", "neg"]
    result = invoke("classify", "--model", model_dir, "--format", "jsonl", input="lovely story\nboring film\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["lovely story", "boring film"]
    table = invoke("classify", "--model", model_dir, "superb")
    assert table.exit_code == 0 and "superb" in table.stdout and "pos" in table.stdout


def test_evaluate_json_reports_accuracy_and_macro_f1(model_dir, data):
    result = invoke("evaluate", "--model", model_dir, "--test-file", data["test"], "--format", "json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["accuracy"] > 0.8 and 0 < metrics["macro_f1"] <= 1
    assert set(metrics["per_class"]) == {"neg", "pos"}


def test_empty_and_whitespace_text_is_predicted_with_a_warning(model_dir):
    result = invoke("classify", "--model", model_dir, "", "   ", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    assert "warning:" in result.stderr


def test_missing_train_file(tmp_path):
    result = invoke("train", "classifier", "--train-file", tmp_path / "nope.csv", "--output-dir", tmp_path / "m")
    assert_usage_error(result, "nope.csv")


def test_unknown_column_lists_available(data, tmp_path):
    result = invoke("train", "classifier", "--train-file", data["train"], "--text-column", "body",
                    "--output-dir", tmp_path / "m", *SMALL)
    assert_usage_error(result, "body", "text", "label")


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    result = invoke("train", "classifier", "--train-file", empty, "--output-dir", tmp_path / "m", *SMALL)
    assert_usage_error(result, "empty")


def test_single_class_label_column(tmp_path):
    rows = [{"text": f"text number {i}", "label": "pos"} for i in range(50)]
    result = invoke("train", "classifier", "--train-file", write_csv(tmp_path / "one.csv", rows),
                    "--output-dir", tmp_path / "m", *SMALL)
    assert_usage_error(result, "pos")


def test_invalid_utf8_input_file(model_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    assert_usage_error(invoke("classify", "--model", model_dir, "--input-file", bad), "bad.txt", "UTF-8")


def test_model_dir_problems(model_dir, tmp_path):
    assert_usage_error(invoke("classify", "--model", tmp_path / "missing", "x"), "does not exist")
    not_model = tmp_path / "folder"
    not_model.mkdir()
    assert_usage_error(invoke("classify", "--model", not_model, "x"), "not a model directory")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json",):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    assert_usage_error(invoke("classify", "--model", broken, "x"), "model.safetensors")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    (corrupt / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes()[:100])
    assert_usage_error(invoke("classify", "--model", corrupt, "x"), "model.safetensors")


def test_train_refuses_non_empty_output_dir_without_overwrite(model_dir, data):
    before = (model_dir / "model.safetensors").read_bytes()
    result = invoke("train", "classifier", "--train-file", data["train"], "--output-dir", model_dir, *SMALL)
    assert_usage_error(result, "--overwrite")
    assert (model_dir / "model.safetensors").read_bytes() == before


def test_failed_training_leaves_earlier_model_untouched(model_dir, data, monkeypatch):
    import torch

    from nlp_lstm.models.classifier import TextClassifier

    before = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    monkeypatch.setattr(TextClassifier, "loss", lambda self, logits, labels: logits.sum() * torch.tensor(float("nan")))
    result = invoke("train", "classifier", "--train-file", data["train"], "--output-dir", model_dir, "--overwrite", *SMALL)
    assert_usage_error(result, "nan", "step 1")
    after = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    assert after == before


def test_bad_option_value_is_a_usage_error(model_dir):
    result = invoke("classify", "--model", model_dir, "x", "--batch-size", "0")
    assert result.exit_code == 2
    result = invoke("train", "classifier", "--train-file", "x.csv", "--output-dir", "m", "--epochs", "-1")
    assert result.exit_code == 2


def test_jsonl_training_data_with_int_labels(tmp_path):
    rows = [{"text": row["text"], "label": int(row["label"] == "pos")} for row in sentiment_rows(120, seed=5)]
    output = tmp_path / "m"
    result = invoke("train", "classifier", "--train-file", write_jsonl(tmp_path / "d.jsonl", rows),
                    "--output-dir", output, *SMALL)
    assert result.exit_code == 0, result.output
    assert json.loads((output / "config.json").read_text())["labels"] == ["0", "1"]


def test_classify_int8_agrees_with_float(model_dir):
    texts = ["a great film", "an awful plot", "lovely story", "boring product"]
    plain = invoke("classify", "--model", model_dir, *texts, "--format", "json")
    quantized = invoke("classify", "--model", model_dir, *texts, "--format", "json", "--int8")
    assert quantized.exit_code == 0, quantized.output
    assert [r["label"] for r in json.loads(quantized.stdout)] == [r["label"] for r in json.loads(plain.stdout)]


def test_evaluate_on_the_held_out_split_of_the_training_file(data, tmp_path):
    output = tmp_path / "m"
    assert invoke("train", "classifier", "--train-file", data["train"], "--output-dir", output, *SMALL).exit_code == 0
    trained = json.loads((output / "metrics.json").read_text())["test"]
    result = invoke("evaluate", "--model", output, "--train-file", data["train"], "--split", "test", "--format", "json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["count"] == trained["count"] == 40  # 10% of 400 rows, the rows training set aside
    assert evaluated["accuracy"] == trained["accuracy"]


def test_the_command_line_chooses_how_openmp_waits_before_torch_loads():
    """OMP_WAIT_POLICY is read once, when torch loads libgomp: the entry point decides it first, from
    how busy the cores are (here a stand-in for the /proc/stat sample): busy -> PASSIVE, idle -> unset."""
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for busy, policy in ((2.0, "PASSIVE"), (0.0, "None")):
        code = (f"import nlp_lstm.threads as t; t.busy_cores = lambda **kwargs: {busy}; import nlp_lstm.cli.main, os, sys; "
                "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == [policy, "False"], (busy, out.stdout)  # decided, and torch not yet loaded

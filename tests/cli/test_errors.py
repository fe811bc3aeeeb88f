"""Bad input across subcommands: one line on stderr naming the value and the fix, exit code 2 for what the
user can fix, 1 (and a traceback under --debug) for internal errors. docs/errors.md lists every case
with its message and the test that covers it; cases tested elsewhere are not repeated here."""

from __future__ import annotations

import errno
import json
import os
import pickle

import pytest

import nlp_lstm
import nlp_lstm.artifacts
from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl

TINY = ["--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--batch-size", "32", "--quiet", "--threads", "1"]


def assert_option_error(result, *fragments):
    """Click's own usage errors (bad option values): exit 2, no traceback, the option named."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    return {"train": write_csv(root / "train.csv", sentiment_rows(120, seed=1)), "root": root}


@pytest.fixture(scope="module")
def model_dir(data):
    output = data["root"] / "model"
    result = invoke("train", "classifier", "--train-file", data["train"], "--output-dir", output, *TINY)
    assert result.exit_code == 0, result.output
    return output


def train(data, output, *extra):
    return invoke("train", "classifier", "--train-file", data, "--output-dir", output, *TINY, *extra)


# --- files ----------------------------------------------------------------------------------------------------------

def test_directory_given_as_train_file(tmp_path):
    (tmp_path / "folder").mkdir()
    assert_usage_error(train(tmp_path / "folder", tmp_path / "out"), "folder")


def test_unreadable_train_file(data, tmp_path, monkeypatch):
    from pathlib import Path

    locked = write_csv(tmp_path / "locked.csv", sentiment_rows(20))
    real_open = Path.open

    def denied(self, *args, **kwargs):  # chmod 0 does not stop root, who runs CI: deny the open itself
        if self.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    assert_usage_error(train(locked, tmp_path / "out"), "locked.csv", "Permission denied", "permissions")


def test_nul_bytes_in_input_file_are_classified(model_dir, tmp_path):
    texts = tmp_path / "nul.txt"
    texts.write_bytes(b"a great\x00film\nan awful plot\n")
    result = invoke("classify", "--model", model_dir, "--input-file", texts, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


# --- columns, types, splits, labels --------------------------------------------------------------------------------

def test_wrong_column_type_for_text(tmp_path):
    rows = [{"text": {"nested": i}, "label": ["a", "b"][i % 2]} for i in range(40)]
    result = train(write_jsonl(tmp_path / "d.jsonl", rows), tmp_path / "out")
    assert_usage_error(result, "text")


def test_empty_validation_split(data, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n", encoding="utf-8")
    assert_usage_error(train(data["train"], tmp_path / "out", "--validation-file", empty), "empty.csv")


def test_unseen_label_at_evaluation(model_dir, tmp_path):
    rows = sentiment_rows(10, seed=3) + [{"text": "so so", "label": "meh"}]
    result = invoke("evaluate", "--model", model_dir, "--test-file", write_csv(tmp_path / "t.csv", rows))
    assert_usage_error(result, "meh", "neg", "pos")


def test_missing_label_column_at_evaluation(model_dir, tmp_path):
    rows = [{"text": row["text"]} for row in sentiment_rows(10)]
    result = invoke("evaluate", "--model", model_dir, "--test-file", write_csv(tmp_path / "t.csv", rows))
    assert_usage_error(result, "label", "available columns")


# --- texts that must work -------------------------------------------------------------------------------------------

def test_huge_right_to_left_and_emoji_texts_are_classified(model_dir):
    huge = "great film " * 100_000  # ~1 MB, truncated to max_length tokens
    result = invoke("classify", "--model", model_dir, huge, "مرحبا بالعالم", "שלום", "🎉🔥 great 👍🏽", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [len(row["text"]) for row in json.loads(result.stdout)][0] == len(huge)


# --- option values --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--epochs", "-1"), ("--batch-size", "0"), ("--hidden-size", "0"),
                                           ("--dropout", "1.5")])
def test_out_of_range_training_options(data, tmp_path, option, value):
    result = invoke("train", "classifier", "--train-file", data["train"], "--output-dir", tmp_path / "o", option, value)
    assert_option_error(result, option)


def test_beam_size_zero(model_dir):
    assert_option_error(invoke("summarize", "--model", model_dir, "--beam-size", "0", "text"), "--beam-size")


def test_unknown_tokenizer_kind(data, tmp_path):
    assert_usage_error(train(data["train"], tmp_path / "out", "--tokenizer-kind", "wordpiece"), "wordpiece", "spacy")


def test_classifier_model_given_to_summarize(model_dir):
    assert_usage_error(invoke("summarize", "--model", model_dir, "some text"), "classifier")


# --- pipelines --------------------------------------------------------------------------------------------------------

def test_pipeline_key_typo_names_the_nearest_valid_key(tmp_path):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[pipeline]\nname = "x"\ntask = "classifier"\n\n[data]\ntrain_flie = "d.csv"\n', encoding="utf-8")
    assert_usage_error(invoke("run", pipeline), "train_flie", "train_file")


def test_missing_pipeline_file(tmp_path):
    assert_usage_error(invoke("run", tmp_path / "nope.toml"), "nope.toml")


# --- training runs ------------------------------------------------------------------------------------------------------

def test_resume_without_checkpoints(data, tmp_path):
    assert_usage_error(train(data["train"], tmp_path / "out", "--resume"), "--resume", "no checkpoint")


def test_disk_full_while_saving_keeps_the_earlier_model(model_dir, data, monkeypatch):
    before = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    real = nlp_lstm.artifacts.atomic_write_bytes

    def full(path, payload):
        if "checkpoints" not in str(path) and str(path).endswith("model.safetensors"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, payload)

    monkeypatch.setattr(nlp_lstm.artifacts, "atomic_write_bytes", full)
    result = train(data["train"], model_dir, "--overwrite")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "--output-dir" in lines[0], result.stderr
    print(lines[0])
    assert {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()} == before
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(f".{model_dir.name}")]


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_as_model_safetensors_is_refused_and_never_run(model_dir, tmp_path, monkeypatch):
    fake = tmp_path / "fake"
    fake.mkdir()
    for item in model_dir.iterdir():
        if item.is_file() and item.name != "model.safetensors":
            (fake / item.name).write_bytes(item.read_bytes())
    (fake / "tokenizer").mkdir()
    for item in (model_dir / "tokenizer").iterdir():
        (fake / "tokenizer" / item.name).write_bytes(item.read_bytes())
    (fake / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    monkeypatch.chdir(tmp_path)
    assert_usage_error(invoke("classify", "--model", fake, "x"), "model.safetensors")
    assert not (tmp_path / "PWNED").exists()


def test_interrupted_hub_download(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Connection reset by peer")

    monkeypatch.setattr(datasets, "load_dataset", offline)  # nlp_lstm.data.sources imports it lazily
    result = invoke("train", "classifier", "--dataset", "imdb", "--output-dir", tmp_path / "out", *TINY)
    assert_usage_error(result, "imdb", "--train-file")


def test_internal_error_is_exit_1_and_debug_shows_the_traceback(data, tmp_path, monkeypatch):
    def bug(**kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(nlp_lstm, "train", bug)
    result = train(data["train"], tmp_path / "out")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["internal error: RuntimeError: boom (rerun with --debug for the traceback)"], result.stderr
    debug = train(data["train"], tmp_path / "out", "--debug")
    assert isinstance(debug.exception, RuntimeError)

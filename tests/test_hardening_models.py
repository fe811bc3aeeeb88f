"""Probes of issue 23 against model directories, ONNX exports, training runs and pipelines: every file
is checked before it is trusted, and `run` never deletes what it did not make.

Model directories are the tiny format-1 fixtures (tests/fixtures/format1) copied and then edited the
way a careless user or an attacker would; big inputs are sparse files made in the test.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import ROOT, assert_usage_error, invoke

import nlp_lstm
import nlp_lstm.inference.classifier
from nlp_lstm.data.tokenizers import load_tokenizer
from nlp_lstm.errors import NlpLstmError

FIXTURES = ROOT / "tests" / "fixtures" / "format1"


def model_copy(tmp_path, kind="classifier", **changes):
    """A copy of the fixture model of `kind` with top-level `changes` in config.json ("model.x": model keys)."""
    directory = tmp_path / kind
    shutil.copytree(FIXTURES / kind, directory)
    edit_config(directory, **changes)
    return directory


def edit_config(directory, **changes):
    config = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (config[section] if section else config)[name] = value
    (directory / "config.json").write_text(json.dumps(config))


def refused_at_load(directory, *fragments):
    assert_usage_error(invoke("classify", "--model", directory, "--device", "cpu", "a fine text"), *fragments)


# --- item 4: sizes are checked against the weights' header and caps before anything is built ---------------------

def test_a_size_the_weights_do_not_hold_is_refused_before_the_model_is_built(tmp_path, monkeypatch):
    directory = model_copy(tmp_path, **{"model.hidden_size": 6000})

    def never(*args, **kwargs):
        raise AssertionError("the model was built before its sizes were checked")

    monkeypatch.setattr(nlp_lstm.inference.classifier, "TextClassifier", never)
    with pytest.raises(NlpLstmError, match=r"does not match .*config.json: 'encoder.weight_ih_l0' is \[32, 8\] .* makes it \[24000, 8\]"):
        nlp_lstm.load(directory, device="cpu")


@pytest.mark.parametrize("key, value", [("model.num_layers", 10**6), ("model.hidden_size", 10**9),
                                        ("model.vocab_size", 2**40), ("model.ngram_features", 2**30)])
def test_sizes_past_their_cap_are_one_line_errors(tmp_path, key, value):
    refused_at_load(model_copy(tmp_path, **{key: value}), "config.json [model]", f"'{key.split('.')[1]}' is {value}")


def test_a_saved_beam_of_a_million_is_refused_when_the_summarizer_is_loaded(tmp_path):
    directory = model_copy(tmp_path, "summarizer", decoding={"beam_size": 10**6})
    assert_usage_error(invoke("summarize", "--model", directory, "--device", "cpu", "a text"),
                       "config.json [decoding]", "beam_size=1000000", "use 1 to 256")


@pytest.mark.parametrize("name", ["config.json", "tokenizer/vocab.txt", "tokenizer/tokenizer.json"])
def test_a_3_gb_sparse_file_is_refused_without_reading_it(tmp_path, name):
    directory = model_copy(tmp_path)
    with open(directory / name, "r+b") as handle:
        handle.truncate(3 * 2**30)  # sparse: costs no disk and, read whole, 3 GB of memory
    refused_at_load(directory, name.split("/")[-1], "larger than")


# --- item 7: config.json and tokenizer values are typed, one line naming the file and key, exit 2 ------------------

@pytest.mark.parametrize("changes, fragments", [
    ({"model.hidden_size": "8"}, ["[model] 'hidden_size'", "expected int"]),
    ({"model.dropout": float("nan")}, ["[model] 'dropout'", "finite"]),
    ({"labels": "neg,pos"}, ["'labels'", "list of label names"]),
    ({"labels": ["neg"]}, ["'labels'", "names 1 labels but the model has num_labels=2"]),
    ({"labels": ["neg", 7]}, ["'labels'"]),
    ({"temperature": 0}, ["'temperature'", "must be > 0"]),
    ({"temperature": float("nan")}, ["'temperature'", "finite number"]),
    ({"temperature": "1.0"}, ["'temperature'", "finite number"]),
    ({"threshold": 2}, ["'threshold'", "[0, 1]"]),
    ({"thresholds": [0.5]}, ["'thresholds'", "1 values for 2 labels"]),
    ({"columns": ["text"]}, ["'columns'"]),
])
def test_bad_config_values_are_one_line_errors_at_load(tmp_path, changes, fragments):
    refused_at_load(model_copy(tmp_path, **changes), "config.json", *fragments)


def test_deeply_nested_config_is_a_one_line_error(tmp_path):
    directory = model_copy(tmp_path)
    (directory / "config.json").write_text('{"kind": "classifier", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused_at_load(directory, "config.json", "nests deeper than")


def test_nan_weights_are_refused_at_load(tmp_path):
    directory = model_copy(tmp_path)
    state = load_file(directory / "model.safetensors")
    state["encoder.weight_hh_l0"][0, 0] = math.nan
    save_file(state, directory / "model.safetensors")
    refused_at_load(directory, "model.safetensors", "'encoder.weight_hh_l0'", "NaN")


def test_a_string_where_the_tokenizer_wants_a_boolean_is_refused(tmp_path):
    directory = model_copy(tmp_path)
    config = json.loads((directory / "tokenizer/tokenizer.json").read_text())
    config["settings"]["lowercase"] = "no"  # a non-empty string: bool("no") is True
    (directory / "tokenizer/tokenizer.json").write_text(json.dumps(config))
    refused_at_load(directory, "tokenizer.json", "settings.lowercase must be a bool")


def test_an_empty_spm_model_is_a_one_line_error(tmp_path):
    directory = tmp_path / "tokenizer"
    shutil.copytree(FIXTURES / "classifier" / "tokenizer", directory)
    config = json.loads((directory / "tokenizer.json").read_text())
    config["kind"] = "sentencepiece"
    (directory / "tokenizer.json").write_text(json.dumps(config))
    (directory / "spm.model").write_bytes(b"")
    with pytest.raises(NlpLstmError, match="spm.model is empty"):
        load_tokenizer(directory)
    (directory / "spm.model").write_bytes(b"\x00garbage")
    with pytest.raises(NlpLstmError, match="spm.model is corrupt"):
        load_tokenizer(directory)


def test_the_untouched_fixtures_still_load(tmp_path):
    assert nlp_lstm.load(model_copy(tmp_path), device="cpu").predict(["a fine text"])


# --- item 8: ONNX export folders: bare graph names with their own sha256 -------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    directory = model_copy(tmp_path_factory.mktemp("onnx"))
    nlp_lstm.export_onnx(directory)
    return directory


def onnx_copy(exported, tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    return directory


def edit_manifest(directory, **graph_changes):
    manifest = json.loads((directory / "onnx" / "onnx.json").read_text())
    manifest["graphs"]["classifier"].update(graph_changes)
    (directory / "onnx" / "onnx.json").write_text(json.dumps(manifest))


def test_each_graph_has_its_sha256_in_onnx_json(exported):
    entry = json.loads((exported / "onnx" / "onnx.json").read_text())["graphs"]["classifier"]
    import hashlib

    assert entry["sha256"] == hashlib.sha256((exported / "onnx" / entry["file"]).read_bytes()).hexdigest()
    assert nlp_lstm.load_onnx(exported).predict(["a fine text"]) == nlp_lstm.load(exported, device="cpu").predict(["a fine text"])


@pytest.mark.parametrize("file", ["../classifier.onnx", "/tmp/classifier.onnx", "sub/classifier.onnx", "..", ""])
def test_a_graph_outside_the_export_folder_is_refused(exported, tmp_path, file):
    directory = onnx_copy(exported, tmp_path)
    shutil.copy(directory / "onnx" / "classifier.onnx", directory / "classifier.onnx")  # a graph it could reach
    edit_manifest(directory, file=file)
    with pytest.raises(NlpLstmError, match="'file' must be a plain file name"):
        nlp_lstm.load_onnx(directory)


def test_a_replaced_graph_is_refused_by_its_checksum(exported, tmp_path):
    directory = onnx_copy(exported, tmp_path)
    other = onnx_copy(exported, tmp_path / "other")
    state = load_file(other / "model.safetensors")
    state["encoder.weight_hh_l0"] += 1.0
    save_file(state, other / "model.safetensors")
    nlp_lstm.export_onnx(other, overwrite=True)
    shutil.copy(other / "onnx" / "classifier.onnx", directory / "onnx" / "classifier.onnx")  # runs, gives other scores
    assert_usage_error(invoke("classify", "--model", directory, "--runtime", "onnx", "a text"),
                       "classifier.onnx does not match its sha256")


def test_a_manifest_without_checksums_is_refused(exported, tmp_path):
    directory = onnx_copy(exported, tmp_path)
    edit_manifest(directory, sha256=None)
    with pytest.raises(NlpLstmError, match="has no sha256"):
        nlp_lstm.load_onnx(directory)


def test_a_corrupt_graph_is_a_one_line_error(exported, tmp_path):
    import hashlib

    directory = onnx_copy(exported, tmp_path)
    garbage = b"not an onnx graph" * 10
    (directory / "onnx" / "classifier.onnx").write_bytes(garbage)
    edit_manifest(directory, sha256=hashlib.sha256(garbage).hexdigest())  # even when the checksum is made to fit
    assert_usage_error(invoke("classify", "--model", directory, "--runtime", "onnx", "a text"),
                       "ONNX Runtime cannot load", "classifier.onnx")


# --- items 13 and 14: a failed retrain leaves the old model as it was; what to run after a kill ---------------------

TINY = ["--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--batch-size", "32", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    from tests.helpers import sentiment_rows, write_csv

    return write_csv(tmp_path_factory.mktemp("train") / "train.csv", sentiment_rows(120, seed=1))


def train(train_file, output, *extra):
    return invoke("train", "classifier", "--train-file", train_file, "--output-dir", output, *TINY, *extra)


def tree(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", ["disk full", "ctrl-c"])
def test_a_failed_overwrite_retrain_leaves_the_old_model_exactly_as_it_was(train_file, tmp_path, monkeypatch, failure):
    import errno
    import os

    import nlp_lstm.artifacts

    output = tmp_path / "model"
    assert train(train_file, output).exit_code == 0
    before = tree(output)
    assert any(name.startswith("checkpoints/step-") for name in before)
    real = nlp_lstm.artifacts.atomic_write_bytes
    real_fsync = os.fsync

    def disk_full(fd):  # what a full disk does: the write fails inside, naming no file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fail_at_the_final_save(path, payload):
        if path.name == "model.safetensors" and path.parent.name.startswith(f".{output.name}.staging"):
            if failure == "ctrl-c":
                raise KeyboardInterrupt
            monkeypatch.setattr(nlp_lstm.artifacts.os, "fsync", disk_full)
            try:
                return real(path, payload)
            finally:
                monkeypatch.setattr(nlp_lstm.artifacts.os, "fsync", real_fsync)
        return real(path, payload)

    monkeypatch.setattr(nlp_lstm.artifacts, "atomic_write_bytes", fail_at_the_final_save)
    result = train(train_file, output, "--overwrite", "--seed", "7")  # other checkpoints than the old run's
    if failure == "disk full":
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert f"No space left on device: {output.parent}/.model.staging-" in lines[0], lines[0]
        assert "model.safetensors" in lines[0], lines[0]
    else:
        assert result.exit_code == 130, result.output
    assert tree(output) == before  # weights, config and the old run's checkpoints, byte for byte


def test_killed_before_the_first_checkpoint_a_plain_rerun_just_starts(train_file, tmp_path):
    from nlp_lstm.stages.run import run_work_dir

    output = tmp_path / "model"
    kept = run_work_dir(output) / "checkpoints" / "tokenizer"  # what a run killed that early leaves behind
    kept.mkdir(parents=True)
    assert_usage_error(train(train_file, output, "--resume"), "no checkpoint yet", "without --resume")
    result = train(train_file, output)
    assert result.exit_code == 0, result.output
    assert (output / "model.safetensors").is_file() and not run_work_dir(output).exists()


def test_killed_before_the_first_checkpoint_of_a_retrain_both_messages_say_overwrite(train_file, tmp_path):
    from nlp_lstm.stages.run import run_work_dir

    output = tmp_path / "model"
    assert train(train_file, output).exit_code == 0
    (run_work_dir(output) / "checkpoints" / "tokenizer").mkdir(parents=True)
    assert_usage_error(train(train_file, output), "pass --overwrite")
    assert_usage_error(train(train_file, output, "--resume"), "no checkpoint yet", "again with --overwrite")
    assert train(train_file, output, "--overwrite").exit_code == 0


def test_an_unfinished_runs_checkpoints_are_not_dropped_by_a_plain_rerun(train_file, tmp_path):
    from nlp_lstm.stages.run import run_work_dir

    output = tmp_path / "model"
    assert train(train_file, output).exit_code == 0
    shutil.move(output / "checkpoints", run_work_dir(output) / "checkpoints")  # as a run killed after one
    shutil.rmtree(output)
    assert_usage_error(train(train_file, output), "unfinished run", "--resume", "--overwrite")
    assert train(train_file, output, "--resume").exit_code == 0


# --- item 3: `nlp-lstm run` replaces only what it made; names are plain names -----------------------------------------

PIPELINE = """
[pipeline]
name = {name}
task = "classifier"
{run_dir}

[data]
train_file = "{train_file}"

[tokenizer]
name = {tokenizer}
kind = "spacy"
min_freq = 1

[model]
embedding_dim = 8
hidden_size = 8
dropout = 0.0
word_ngrams = 0

[train]
epochs = 1
batch_size = 32
"""


def pipeline_file(tmp_path, *, name='"tiny"', tokenizer='"tiny"', run_dir=None, train_file=None):
    from tests.helpers import sentiment_rows, write_csv

    train_file = train_file or write_csv(tmp_path / "train.csv", sentiment_rows(200, seed=1))
    path = tmp_path / "tiny.toml"
    path.write_text(PIPELINE.format(name=name, tokenizer=tokenizer, train_file=train_file,
                                    run_dir=f"run_dir = {json.dumps(str(run_dir))}" if run_dir else ""))
    return path


@pytest.mark.parametrize("key, value", [("name", '"../../x"'), ("name", '""'), ("name", '"."'), ("name", '".."'),
                                        ("name", '"a/b"'), ("name", '"a\\u0000b"'), ("tokenizer", '"../../x"'),
                                        ("tokenizer", '"/tmp/x"'), ("tokenizer", '""'), ("tokenizer", '"a\\u0000"')])
def test_names_in_a_pipeline_must_be_plain_names(tmp_path, monkeypatch, key, value):
    monkeypatch.chdir(tmp_path)
    path = pipeline_file(tmp_path, **{key: value})
    section = "[pipeline]" if key == "name" else "[tokenizer]"
    assert_usage_error(invoke("run", path), f"{section} name", "is not a plain name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml", "train.csv"]  # nothing written anywhere


@pytest.mark.parametrize("subfolder", ["model", "encoded", "evaluation"])
def test_run_never_replaces_a_directory_it_did_not_make(tmp_path, monkeypatch, subfolder):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    (mine / subfolder).mkdir(parents=True)
    (mine / subfolder / "notes.txt").write_text("the user's")
    assert_usage_error(invoke("run", pipeline_file(tmp_path, run_dir=mine)), f"{mine / subfolder}",
                       "not made by `nlp-lstm run`", "--overwrite")
    assert [p.name for p in mine.rglob("*")] == [subfolder, "notes.txt"]
    assert not (tmp_path / "vocab").exists()  # refused before the first stage wrote anything


def test_run_dir_dot_never_deletes_the_working_directorys_model_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"precious")
    assert_usage_error(invoke("run", pipeline_file(tmp_path, run_dir=".")), "not made by `nlp-lstm run`")
    assert (tmp_path / "model" / "weights.bin").read_bytes() == b"precious"


def test_a_foreign_tokenizer_directory_is_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    foreign = tmp_path / "vocab" / "tiny"
    shutil.copytree(FIXTURES / "classifier" / "tokenizer", foreign)
    before = tree(foreign)
    assert_usage_error(invoke("run", pipeline_file(tmp_path)), str(Path("vocab") / "tiny"), "--overwrite")
    assert tree(foreign) == before


def test_run_replaces_its_own_directories_and_others_only_with_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs" / "tiny"
    (runs / "model").mkdir(parents=True)
    (runs / "model" / "old.txt").write_text("the user's")
    path = pipeline_file(tmp_path)
    assert invoke("run", path).exit_code == 2
    result = invoke("run", path, "--overwrite", "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert (runs / "model" / "model.safetensors").is_file() and not (runs / "model" / "old.txt").exists()
    for stage in ("model", "encoded", "evaluation"):
        assert json.loads((runs / stage / ".stage.json").read_text())["inputs"]
    result = invoke("run", path, "--force", "--quiet", "--threads", "1")  # its own directories: no --overwrite
    assert result.exit_code == 0, result.output


# --- pipeline data paths: relative to the working directory (the project root) ----------------------------------------

def test_pipeline_data_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    from nlp_lstm.stages.pipeline import load_pipeline
    from tests.helpers import sentiment_rows, write_csv

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "train.csv", sentiment_rows(20, seed=1))
    path = pipeline_file(tmp_path / "pipelines", train_file="data/train.csv")
    monkeypatch.chdir(tmp_path)  # the project root, as `make demo` runs pipelines/sentiment.toml
    assert load_pipeline("pipelines/tiny.toml").data.train_file == "data/train.csv"
    assert Path(load_pipeline(path).data.train_file).resolve() == tmp_path / "data" / "train.csv"
    shutil.move(tmp_path / "data", tmp_path / "pipelines" / "data")  # now only beside the pipeline file
    with pytest.raises(NlpLstmError, match="relative to the directory `nlp-lstm run` is run from"):
        load_pipeline(path)


def test_shipped_pipelines_name_data_that_exists_from_the_repository_root(monkeypatch):
    from nlp_lstm.stages.pipeline import load_pipeline

    monkeypatch.chdir(ROOT)
    for path in sorted((ROOT / "pipelines").glob("*.toml")):
        assert "relative to the working directory" in path.read_text()  # the header says so
        pipe = load_pipeline(path.relative_to(ROOT))
        assert (ROOT / pipe.data.train_file).is_file(), path

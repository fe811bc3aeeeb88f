import json
import os
import pickle
import struct

import pytest
import torch

from nlp_lstm import artifacts
from nlp_lstm.artifacts import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    load_tensors,
    read_json,
    save_tensors,
    staged_directory,
)
from nlp_lstm.errors import NlpLstmError


def _entries(directory):
    return sorted(path.name for path in directory.iterdir())


# ---- atomic writes ------------------------------------------------------------------------------


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert _entries(target.parent) == ["file.bin"]
    atomic_write_text(tmp_path / "note.txt", "héllo\n")
    assert (tmp_path / "note.txt").read_text(encoding="utf-8") == "héllo\n"


def test_atomic_write_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    atomic_write_json(target, {"old": True})

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert _entries(tmp_path) == ["config.json"]


def test_atomic_write_json_unserialisable_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "bad.json", {"value": object()})
    assert _entries(tmp_path) == []


def test_atomic_write_json_format(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"z": 1, "a": [1, 2]})
    text = (tmp_path / "a.json").read_text()
    assert text == '{\n  "z": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'  # insertion order kept


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(NlpLstmError, match=r"model config file .*missing\.json does not exist"):
        read_json(tmp_path / "missing.json", what="model config")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(NlpLstmError, match=r"broken\.json is not valid JSON \(line 1"):
        read_json(tmp_path / "broken.json", what="model config")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(NlpLstmError, match=r"list\.json must hold a JSON object.*list"):
        read_json(tmp_path / "list.json", what="model config")
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json", what="model config") == {"a": 1}


# ---- tensors ------------------------------------------------------------------------------------


def test_save_load_round_trip_with_shared_and_strided_tensors(tmp_path):
    embedding = torch.randn(5, 3)
    tensors = {
        "embedding.weight": embedding,
        "head.weight": embedding,  # tied weights share storage
        "transposed": torch.randn(3, 4).t(),  # not contiguous
        "row": embedding[1],  # a view of part of a storage
        "step": torch.tensor(7, dtype=torch.int64),
        "half": torch.randn(2, 2).to(torch.bfloat16),
    }
    path = tmp_path / "model.safetensors"
    save_tensors(tensors, path, metadata={"format": "pt"})
    loaded = load_tensors(path)
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor), name
    assert _entries(tmp_path) == ["model.safetensors"]
    # The caller's tensors are not modified or detached from each other.
    assert tensors["embedding.weight"] is tensors["head.weight"]


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        # Unpickling calls open(marker, "w"): creating the file proves the code ran.
        return (open, (str(self.marker), "w"))


def test_load_refuses_pickle_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker), protocol=2))
    assert path.read_bytes()[:1] == b"\x80"
    with pytest.raises(NlpLstmError) as error:
        load_tensors(path)
    assert not marker.exists()
    message = str(error.value)
    assert str(path) in message and "pickle" in message and "safetensors" in message


def test_load_refuses_torch_save_file(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"weight": torch.randn(2, 2)}, path)
    with pytest.raises(NlpLstmError, match=r"pytorch_model\.bin is a zip archive.*safetensors"):
        load_tensors(path)


def test_load_truncated_safetensors_names_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_tensors({"weight": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    for cut in (4, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(NlpLstmError) as error:
            load_tensors(path)
        message = str(error.value)
        assert "model.safetensors is corrupt or truncated" in message
        assert "re-save or re-train the model" in message


def test_load_corrupt_header_and_missing_file(tmp_path):
    path = tmp_path / "model.safetensors"
    header = b"{this is not json}"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(NlpLstmError, match="corrupt or truncated"):
        load_tensors(path)
    with pytest.raises(NlpLstmError, match=r"nothing\.safetensors does not exist"):
        load_tensors(tmp_path / "nothing.safetensors")


# ---- directories --------------------------------------------------------------------------------


def test_staged_directory_swaps_in_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_directory(target) as staging:
        assert staging.parent == tmp_path and staging != target
        assert _entries(staging) == []
        atomic_write_text(staging / "new.txt", "new")
        assert (target / "old.txt").exists()  # untouched until the body finishes
    assert _entries(target) == ["new.txt"]
    assert _entries(tmp_path) == ["model"]  # no staging or backup left


def test_staged_directory_creates_missing_target(tmp_path):
    target = tmp_path / "runs" / "model"
    with staged_directory(target) as staging:
        (staging / "config.json").write_text("{}")
    assert _entries(target) == ["config.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # not left private like mkdtemp's


def test_staged_directory_keeps_old_content_when_body_raises(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with staged_directory(target) as staging:
            (staging / "half-written.txt").write_text("partial")
            raise RuntimeError("boom")
    assert _entries(target) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert _entries(tmp_path) == ["model"]


def test_check_output_dir(tmp_path, monkeypatch):
    check_output_dir(tmp_path / "new", overwrite=False)  # missing: fine
    empty = tmp_path / "empty"
    empty.mkdir()
    check_output_dir(empty, overwrite=False)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(NlpLstmError, match="exists and is not empty; pass --overwrite"):
        check_output_dir(full, overwrite=False)
    check_output_dir(full, overwrite=True)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NlpLstmError, match="is a file"):
        check_output_dir(a_file, overwrite=True)
    monkeypatch.chdir(full)
    with pytest.raises(NlpLstmError, match="refusing to --overwrite"):
        check_output_dir(os.curdir, overwrite=True)


def test_a_safetensors_file_whose_header_length_starts_like_a_pickle_loads(tmp_path):
    # Header lengths are 8-byte aligned: one size in 32 has 0x80 as its low byte, the pickle PROTO opcode.
    from safetensors.torch import save_file

    for padding in range(64):
        path = tmp_path / "w.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * padding})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length with a 0x80 low byte was produced")
    assert torch.equal(load_tensors(path)["w"], torch.zeros(2))

"""Model and tokenizer directories on disk: save atomically, load without pickle.

Every file is written to a temporary file in the same directory and moved into place with
`os.replace`, so a crash or a full disk leaves either the old file or the new one, never half of
one. A whole directory (a model: `config.json`, `model.safetensors`, tokenizer files) is built in a
staging directory next to its target and swapped in at the end (`staged_directory`).

Weights are stored as safetensors only. `load_tensors` refuses pickle-based files (`torch.save`
`.pt`/`.bin`/`.pth`) by their first bytes *before* any parser sees them: unpickling an untrusted
file runs arbitrary code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nlp_lstm.errors import NlpLstmError

# safetensors layout: 8-byte little-endian header length N, then N bytes of JSON header, then data.
_SAFETENSORS_LENGTH_BYTES = 8
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit
# JSON settings files (config.json, tokenizer.json, onnx.json, checkpoint state) are a few KB; a
# checkpoint's trainer_state.json holds the RNG states (~40 KB). Anything past this is not ours.
MAX_JSON_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64  # nesting; deeper documents would reach Python's recursion limit

# Read once: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

_NOT_SAFETENSORS_FIX = (
    "nlp-lstm loads weights only from safetensors files and never unpickles (unpickling can run "
    "arbitrary code); re-save the model with nlp-lstm, or convert a trusted checkpoint with "
    "safetensors.torch.save_file"
)


# --------------------------------------------------------------------------------------------
# Atomic single-file writes
# --------------------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, `os.replace`).

    Creates missing parent directories. On any failure the temporary file is removed and an
    existing file at `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, hence same filesystem: os.replace is then an atomic rename (POSIX).
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if error.filename is None and error.errno is not None:  # write/fsync name no file ("No space left on device: ;"): name it
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON (indent=2, keys in insertion order, trailing newline) atomically.

    The object is serialised before any file is created, so an un-serialisable object leaves
    nothing behind.
    """
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    atomic_write_text(path, text)


def read_json(path: str | os.PathLike, *, what: str) -> dict:
    """Read a JSON object from `path`; `what` names the file for the user ("model config", ...).

    Raises:
        NlpLstmError: the file is missing, is not valid UTF-8 JSON, or does not hold an object.
    """
    path = Path(path)
    if not path.exists():
        raise NlpLstmError(f"{what} file {path} does not exist; check the path")
    if not path.is_file():
        raise NlpLstmError(f"{what} file {path} is not a file; pass the path of a JSON file")
    raw = read_capped_bytes(path, limit=MAX_JSON_BYTES, what=f"{what} file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NlpLstmError(
            f"{what} file {path} is not valid UTF-8 text ({error}); re-create the file"
        ) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise NlpLstmError(
            f"{what} file {path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); fix or re-create the file"
        ) from None
    except RecursionError:
        obj = None  # reported below with the depth
    if obj is None or json_depth(obj) > MAX_JSON_DEPTH:
        raise NlpLstmError(
            f"{what} file {path} nests deeper than {MAX_JSON_DEPTH} levels; fix or re-create the file"
        )
    if not isinstance(obj, dict):
        raise NlpLstmError(
            f"{what} file {path} must hold a JSON object ({{...}}), found {type(obj).__name__}; "
            "fix or re-create the file"
        )
    return obj


def read_capped_bytes(path: str | os.PathLike, *, limit: int, what: str) -> bytes:
    """The bytes of `path`, refusing a file larger than `limit` before reading it (a sparse 3 GB
    file costs nothing to create and would otherwise be read whole)."""
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise NlpLstmError(
            f"{what} {path} is larger than {limit // 2**20} MiB, far more than any such file nlp-lstm "
            "writes; re-create it"
        )
    return data


def json_depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (a scalar: 0), iteratively, so no depth reaches the recursion limit."""
    depth, level = 0, [obj]
    while level:
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        depth += 1
    return depth - 1


# --------------------------------------------------------------------------------------------
# Tensors: safetensors only
# --------------------------------------------------------------------------------------------


def save_tensors(
    tensors: dict[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    metadata: dict[str, str] | None = None,
) -> None:
    """Save named tensors to a safetensors file atomically.

    Tensors are detached, moved to CPU and made contiguous; a tensor whose storage is shared with
    an earlier one (tied embeddings, views) is cloned, because safetensors refuses shared storage.
    """
    from safetensors.torch import save

    prepared: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name!r} is a {type(tensor).__name__}, not a torch.Tensor")
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        storage_key = storage.data_ptr()
        # Clone when the storage is shared with another entry, or when the tensor covers only
        # part of it (saving a slice must not write, or keep alive, the whole parent tensor).
        covers_storage = tensor.numel() * tensor.element_size() == storage.nbytes()
        if storage_key in seen_storages or not covers_storage or not tensor.is_contiguous():
            tensor = tensor.contiguous().clone()
        if tensor.numel() > 0:
            seen_storages.add(tensor.untyped_storage().data_ptr())
        prepared[name] = tensor
    if metadata is not None:
        bad = {key: value for key, value in metadata.items() if not isinstance(value, str)}
        if bad or not all(isinstance(key, str) for key in metadata):
            raise TypeError(f"safetensors metadata must map str to str; bad entries: {bad!r}")
    atomic_write_bytes(path, save(prepared, metadata=metadata))


def _check_safetensors(path: Path) -> int:
    """Refuse a missing, pickled or truncated weights file before any parser sees it; return the
    length of its JSON header."""
    if not path.exists():
        raise NlpLstmError(f"weights file {path} does not exist; check the model directory")
    if not path.is_file():
        raise NlpLstmError(f"weights file {path} is not a file; pass a .safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_SAFETENSORS_LENGTH_BYTES)
        first_header_byte = handle.read(1)

    # Refuse pickle-based formats by their magic bytes, before anything parses the file.
    if head.startswith(b"PK"):
        raise NlpLstmError(
            f"{path} is a zip archive (a torch.save .pt/.bin checkpoint holding a pickle), not a "
            f"safetensors file; {_NOT_SAFETENSORS_FIX}"
        )
    # A pickle starts with \x80 (PROTO); so does a safetensors file whose header length is 128 mod
    # 256, but its JSON header then opens with "{" at byte 8, which no pickle of a state dict has.
    if head[:1] == b"\x80" and first_header_byte != b"{":
        raise NlpLstmError(
            f"{path} is a Python pickle (e.g. a legacy torch.save file), not a safetensors "
            f"file; {_NOT_SAFETENSORS_FIX}"
        )
    if len(head) < _SAFETENSORS_LENGTH_BYTES:
        raise _corrupt(path, f"{size} bytes, shorter than the 8-byte safetensors header length")
    (header_length,) = struct.unpack("<Q", head)
    if header_length > min(size - _SAFETENSORS_LENGTH_BYTES, _MAX_SAFETENSORS_HEADER):
        raise _corrupt(
            path,
            f"header claims {header_length} bytes but the file has only {size}; "
            "this is not a safetensors file or it was cut short",
        )
    return header_length


def _corrupt(path: Path, detail: str) -> NlpLstmError:
    return NlpLstmError(f"{path} is corrupt or truncated ({detail}); re-save or re-train the model")


def read_tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors file's header, without reading any tensor data.

    Lets a loader compare the sizes a config asks for with what the weights hold before it
    allocates anything.
    """
    path = Path(path)
    header_length = _check_safetensors(path)
    with open(path, "rb") as handle:
        handle.seek(_SAFETENSORS_LENGTH_BYTES)
        raw = handle.read(header_length)
    try:
        header = json.loads(raw)
        return {name: tuple(int(size) for size in entry["shape"])
                for name, entry in header.items() if name != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise _corrupt(path, f"unreadable header: {type(error).__name__}") from None


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load named tensors (on CPU) from a safetensors file. Never unpickles.

    Raises:
        NlpLstmError: the file is missing, is a pickle / `torch.save` file, or is not a complete
            safetensors file.
    """
    path = Path(path)
    _check_safetensors(path)
    from safetensors import SafetensorError, safe_open

    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as reader:
            for name in reader.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[name] = reader.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _corrupt(path, str(error).strip() or type(error).__name__) from None
    return tensors


# --------------------------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a staging place and swap it into `target` only if the body succeeds.

    Yields a fresh, empty directory next to `target` (same filesystem, so renames are atomic).
    On clean exit: an existing `target` is renamed to a backup, the staging directory is renamed
    to `target`, and the backup is removed. If the body raises, the staging directory is removed
    and `target` is left untouched.

    Example:
        with staged_directory(output_dir) as staging:
            atomic_write_json(staging / "config.json", config)
            save_tensors(state_dict, staging / "model.safetensors")
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NlpLstmError(f"{target} is a file, not a directory; choose another --output-dir")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes it 0700; the result is shared
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    try:
        if target.exists():
            # A fresh unused name for the backup: mkdtemp reserves it, rmdir frees it for rename.
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            backup.rmdir()
            os.rename(target, backup)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(backup, target)  # put the old directory back
                raise
            if backup.is_symlink():  # the target was a link to a directory: drop only the link
                backup.unlink()
            else:
                shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(target.parent)


def check_output_dir(path: str | os.PathLike, *, overwrite: bool) -> None:
    """Refuse to write into an existing non-empty directory unless `overwrite` is set.

    Call this before long work (training) so the user learns at once, not after an hour.

    Raises:
        NlpLstmError: `path` is a file; or it is a non-empty directory and `overwrite` is False;
            or `overwrite` would replace a directory holding the current directory or home.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise NlpLstmError(
            f"output directory {path} is a file, not a directory; choose another --output-dir"
        )
    if not any(path.iterdir()):
        return
    if not overwrite:
        raise NlpLstmError(
            f"output directory {path} exists and is not empty; pass --overwrite to replace it "
            "or choose another --output-dir"
        )
    # --overwrite replaces the whole directory; never let a slip (`--output-dir .`) do that to
    # the working directory, one of its parents, or the home directory.
    resolved = path.resolve()
    protected = [Path.cwd().resolve(), Path.home().resolve()]
    if any(resolved == place or resolved in place.parents for place in protected):
        raise NlpLstmError(
            f"refusing to --overwrite {path}: it is the current directory, the home directory, "
            "or one of their parents; choose a dedicated --output-dir"
        )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

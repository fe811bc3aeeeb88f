"""Reading local data files: the format from the extension, gzip, UTF-8 checks, `save_to_disk` dirs.

`load_file` gives one file as a `datasets.Dataset` (or a stream); `read_texts` gives the texts that
`classify --input-file` reads. Every failure becomes one NlpLstmError naming the file and the fix.
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import zlib
from contextlib import contextmanager
from pathlib import Path

from nlp_lstm.data.columns import as_text_column, require_columns
from nlp_lstm.data.mapped_pages import MappedPages
from nlp_lstm.errors import NlpLstmError

BOM = "\ufeff"  # the UTF-8 byte-order mark some editors write at the start of a file

# Extension -> (datasets builder, builder keyword arguments). Each may also end in ".gz".
FILE_FORMATS = {
    "csv": ("csv", {}),
    "tsv": ("csv", {"delimiter": "\t"}),
    # datasets' JSON reader parses 10 MB blocks by default; its buffers for one block cost about 80 MB of
    # heap that stays allocated (measured). 1 MB blocks cut that tenfold at no measurable speed cost.
    "json": ("json", {"chunksize": 1 << 20}),
    "jsonl": ("json", {"chunksize": 1 << 20}),
    "parquet": ("parquet", {}),
    "txt": ("text", {}),
}


def file_format(path: Path) -> tuple[str, str, dict]:
    """(extension, builder, builder kwargs) from the file name; `.gz` is read directly."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    extension = (suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes and not compressed else ""))
    extension = extension.lstrip(".")
    if extension not in FILE_FORMATS:
        known = ", ".join(f".{e}" for e in FILE_FORMATS)
        raise NlpLstmError(f"cannot tell the format of {path} from its extension; rename it to one of {known} (optionally + .gz)")
    if compressed and extension == "parquet":
        raise NlpLstmError(f"{path}: gzipped parquet is not supported; decompress it (parquet compresses its own columns)")
    builder, kwargs = FILE_FORMATS[extension]
    return extension, builder, kwargs


def is_arrow_dir(path: Path) -> bool:
    """A directory written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def check_file(path, *, allow_arrow_dir: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise NlpLstmError(f"file {path} does not exist; check the path")
    if path.is_dir() and not (allow_arrow_dir and is_arrow_dir(path)):
        raise NlpLstmError(
            f"{path} is a directory, not a data file; give a .csv/.tsv/.json/.jsonl/.parquet/.txt file inside it "
            "(or a directory written by datasets' save_to_disk)"
        )
    probe = path
    if path.is_dir():
        probe = path / ("state.json" if (path / "state.json").is_file() else "dataset_dict.json")
    try:
        probe.open("rb").close()
    except OSError as error:
        raise NlpLstmError(f"cannot read {path} ({error.strerror}); check the file's permissions") from None
    return path


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def find_invalid_utf8(path) -> tuple[int, int] | None:
    """(byte offset, 1-based line) of the first invalid UTF-8 byte in `path` (decompressed), or None."""
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, line = 0, 1
    with _open_binary(path) as file:
        while True:
            chunk = file.read(1 << 20)
            pending = decoder.getstate()[0]  # bytes of an unfinished character from the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                data = pending + chunk
                return offset - len(pending) + error.start, line + data[: error.start].count(b"\n")
            line += chunk.count(b"\n")
            offset += len(chunk)
            if not chunk:
                return None


def find_bad_json(path) -> tuple[int, str] | None:
    """(1-based line, parser message) of the first line of a JSON Lines file that is not one JSON value,
    or None. Only the diagnosis of a file the reader refused: the reader's own "row N" counts rows
    within a block of the file, not lines."""
    with _open_binary(Path(path)) as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue  # blank lines are skipped by the reader too
            try:
                json.loads(line)
            except ValueError as error:
                return number, getattr(error, "msg", str(error))
    return None


def _unreadable(path: Path, builder: str, error: Exception) -> NlpLstmError:
    """The most useful message for a file `datasets` could not read."""
    if builder == "parquet":  # a binary format: a damaged file is no text-encoding problem
        cause = error.__cause__ or error
        message = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return NlpLstmError(
            f"cannot read {path} as parquet ({type(cause).__name__}: {message[:200]}); the file is damaged or not "
            "parquet: write it again (or give it the extension of its real format)"
        )
    try:
        invalid = find_invalid_utf8(path)
    except (OSError, EOFError, zlib.error) as read_error:
        return NlpLstmError(f"cannot read {path} ({type(read_error).__name__}: {read_error}); check that the file is intact")
    if invalid is not None:
        offset, line = invalid
        return NlpLstmError(
            f"{path} is not valid UTF-8 (line {line}, byte offset {offset}); re-encode it as UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{''.join(path.suffixes)}`"
        )
    with _open_binary(path) as file:
        if not file.read(1 << 16).strip():
            return NlpLstmError(f"{path} is empty; give a file with data rows")
    if "corresponds to no data" in str(error):  # datasets' words for a file with a header and no rows
        return NlpLstmError(f"{path} is empty (no data rows); give a file with data rows")
    if builder == "json" and _first_byte(path) == b"{":  # JSON Lines (a whole document starts with "[")
        bad = find_bad_json(path)
        if bad is not None:
            line, message = bad
            return NlpLstmError(f"{path} line {line} is not valid JSON ({message}); fix or remove that line")
    cause = error.__cause__ or error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return NlpLstmError(f"cannot read {path} as {builder} ({type(cause).__name__}: {message}); check the file's format and extension")


def _first_byte(path: Path) -> bytes:
    with _open_binary(path) as file:
        return file.read(4096).lstrip()[:1]


@contextmanager
def _datasets_errors_unlogged():
    """datasets logs a reader's error before raising it; we raise one line of our own instead."""
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_file(path, *, split: str = "train", streaming: bool = False):
    """One local file as a `datasets.Dataset` (format from the extension; Arrow-cached by datasets).

    A directory written by `save_to_disk` is memory-mapped as it is (a `DatasetDict` directory gives
    its `split`). With `streaming`, an `IterableDataset` that reads the file as it is iterated.
    """
    import datasets

    path = check_file(path, allow_arrow_dir=True)
    if path.is_dir():
        return _load_arrow_dir(path, split, streaming=streaming)
    _, builder, kwargs = file_format(path)
    with _datasets_errors_unlogged():
        try:
            loaded = datasets.load_dataset(builder, data_files={split: str(path)}, split=split, streaming=streaming, **kwargs)
            if streaming:  # the reader only opens the file when iterated: read the first rows now, so a bad
                next(iter(loaded.take(1)), None)  # file fails here with the same message as without streaming
        except NlpLstmError:
            raise
        except Exception as error:  # datasets wraps reader errors in several types; diagnose from the file
            raise _unreadable(path, builder, error) from None
    if not streaming:
        _check_utf8(loaded, path, builder)
        MappedPages(loaded).release()  # the check read every string: drop those pages from RSS
    return loaded


def _load_arrow_dir(path: Path, split: str, *, streaming: bool):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - a damaged directory: say which
        raise NlpLstmError(f"cannot load {path} with load_from_disk ({type(error).__name__}); check that it is intact") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise NlpLstmError(f"{path} holds splits {', '.join(loaded)}, not {split!r}; give the split's own directory")
        loaded = loaded[split]
    return loaded.to_iterable_dataset() if streaming else loaded


def _check_utf8(ds, path: Path, builder: str) -> None:
    """pyarrow's JSON and parquet readers let invalid UTF-8 into string columns; it would only fail
    later, when a row is read. A full Arrow validation is one fast C++ pass."""
    import pyarrow as pa

    table = ds.data.table
    for name in table.column_names:
        if not (pa.types.is_string(table.schema.field(name).type) or pa.types.is_large_string(table.schema.field(name).type)):
            continue
        try:
            table.column(name).validate(full=True)
        except pa.ArrowInvalid:
            if builder == "parquet":
                raise NlpLstmError(
                    f"{path} column {name!r} holds invalid UTF-8 text; re-encode the text as UTF-8 and write the file again"
                ) from None
            raise _unreadable(path, builder, ValueError("invalid UTF-8")) from None


def read_texts(path) -> list[str]:
    """Texts for `classify --input-file`: .txt(.gz) one text per line (blank lines kept, so outputs line
    up with input lines), or csv/tsv/json/jsonl/parquet(.gz) with a 'text' column."""
    path = check_file(path)
    extension, _, _ = file_format(path)
    if extension == "txt":
        invalid = find_invalid_utf8(path)
        if invalid is not None:
            raise _unreadable(path, "text", ValueError("invalid UTF-8"))
        with _open_binary(path) as file:
            text = file.read().decode("utf-8").removeprefix(BOM)  # a byte-order mark is not part of the first text
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line does not start another text
        return [line[:-1] if line.endswith("\r") else line for line in lines]
    ds = load_file(path)
    require_columns(ds, ["text"], str(path))
    ds = as_text_column(ds, "text")
    return list(ds["text"])

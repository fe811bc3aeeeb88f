"""Where the examples come from: a hub dataset or local files, their columns, and fixed splits.

`load_splits(DataSource(...))` gives a `datasets.DatasetDict` with "train", "validation" and "test",
whichever exist, each with the text column as strings (None -> ""), and the label / summary columns
checked. Data stays in Arrow (memory-mapped); nothing here builds Python lists of a corpus.

With `DataSource(streaming=True)` the splits are `datasets.IterableDataset`s read from the files (or
the hub) as they are iterated (`load_dataset(..., streaming=True)`): no Arrow copy of the raw corpus
is written or mapped, and the split cut is the same rows as without streaming (`split_bounds`).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlp_lstm.data.mapped_pages import MappedPages, releasing
from nlp_lstm.errors import NlpLstmError

SPLITS = ("train", "validation", "test")
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
# Hub datasets name their held-out splits in more than one way.
_SPLIT_ALIASES = {"validation": ("validation", "valid", "dev", "val"), "test": ("test",), "train": ("train",)}


@dataclass
class Binarize:
    """Derive a binary label from a numeric column (e.g. VADER's mean rating).

    Rows with `|value - threshold| < margin` (near-neutral) or a missing value are dropped;
    the others get `names[1]` when `value > threshold`, else `names[0]`.
    """

    column: str
    threshold: float = 0.0
    margin: float = 0.0
    names: tuple[str, str] = ("negative", "positive")


@dataclass
class DataSource:
    """A hub dataset (`dataset`, `dataset_config`) or local files, and which columns mean what.

    Missing validation/test splits are cut from train; see `load_splits` for the exact rule.
    """

    dataset: str | None = None
    dataset_config: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str = "text"
    label_column: str | None = "label"
    summary_column: str | None = None
    binarize: Binarize | None = None  # when set, writes the label into label_column
    split_seed: int = 13
    validation_fraction: float = 0.1  # of train, when there is no validation split/file
    test_fraction: float = 0.1  # of train, when there is no test split/file (0 disables)
    streaming: bool = False  # read as a stream (IterableDataset): nothing of the raw corpus is cached

    def file_for(self, split: str) -> str | None:
        return {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}[split]

    def describe(self) -> str:
        if self.dataset:
            return f"dataset {self.dataset!r}" + (f" ({self.dataset_config})" if self.dataset_config else "")
        return ", ".join(f"{s} file {self.file_for(s)}" for s in SPLITS if self.file_for(s)) or "no data"


# --- reading files -----------------------------------------------------------------------------
def _file_format(path: Path) -> tuple[str, str, dict]:
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


def _is_arrow_dir(path: Path) -> bool:
    """A directory written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def _check_file(path, *, allow_arrow_dir: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise NlpLstmError(f"file {path} does not exist; check the path")
    if path.is_dir() and not (allow_arrow_dir and _is_arrow_dir(path)):
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


def _unreadable(path: Path, builder: str, error: Exception) -> NlpLstmError:
    """The most useful message for a file `datasets` could not read."""
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
    cause = error.__cause__ or error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return NlpLstmError(f"cannot read {path} as {builder} ({type(cause).__name__}: {message}); check the file's format and extension")


def load_file(path, *, split: str = "train", streaming: bool = False):
    """One local file as a `datasets.Dataset` (format from the extension; Arrow-cached by datasets).

    A directory written by `save_to_disk` is memory-mapped as it is (a `DatasetDict` directory gives
    its `split`). With `streaming`, an `IterableDataset` that reads the file as it is iterated.
    """
    import datasets

    path = _check_file(path, allow_arrow_dir=True)
    if path.is_dir():
        return _load_arrow_dir(path, split, streaming=streaming)
    _, builder, kwargs = _file_format(path)
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


def _load_hub(source: DataSource) -> dict:
    import datasets

    try:
        loaded = datasets.load_dataset(source.dataset, source.dataset_config, streaming=source.streaming)
    except Exception as error:  # offline, ConnectionError, unknown name or config, auth, script errors
        message = (str(error).strip().splitlines() or [""])[0][:200]
        raise NlpLstmError(
            f"cannot load {source.describe()} from the Hugging Face hub ({type(error).__name__}: {message}); "
            "check the name and network, or give local files with --train-file"
        ) from None
    splits = {}
    for split, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in loaded:
                splits[split] = loaded[alias]
                break
    return splits


# --- splitting ---------------------------------------------------------------------------------
def _row_hashes(rows, seed: int) -> np.ndarray:
    """splitmix64 of (seed, row number) for each of `rows`: distinct uint64 values (a bijection)."""
    with np.errstate(over="ignore"):
        x = np.asarray(rows, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def split_order(num_rows: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(num_rows) that depends on nothing else (not the numpy version).

    Rows are sorted by a splitmix64 hash of (seed, row number), so the split of a file is fixed forever.
    """
    return np.argsort(_row_hashes(np.arange(num_rows), seed), kind="stable")


_CHUNK = 1 << 20


def split_bounds(num_rows: int, *, seed: int, ranks: Sequence[int]) -> list[int]:
    """For each rank k, the hash value of the row at position k of `split_order` (2**64 for k = num_rows).

    So `hash(row) < bounds[i]` exactly when the row is among the first `ranks[i]` of `split_order`:
    a stream can be cut into the same splits as `split_indices` without an N-long array. Two passes
    over the hashes in chunks: a histogram of their top 16 bits finds each rank's bucket, then that
    bucket's few values are sorted.
    """
    shift = np.uint64(48)
    counts = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, num_rows, _CHUNK):
        counts += np.bincount((_row_hashes(np.arange(start, min(start + _CHUNK, num_rows)), seed) >> shift).astype(np.int64),
                              minlength=1 << 16)
    below = np.concatenate([[0], np.cumsum(counts)])  # below[b]: rows whose top bits are < b
    wanted = {rank: int(np.searchsorted(below, rank, side="right") - 1) for rank in ranks if rank < num_rows}
    values: dict[int, list[np.ndarray]] = {bucket: [] for bucket in set(wanted.values())}
    for start in range(0, num_rows, _CHUNK):
        hashes = _row_hashes(np.arange(start, min(start + _CHUNK, num_rows)), seed)
        top = hashes >> shift
        for bucket in values:
            values[bucket].append(hashes[top == np.uint64(bucket)])
    bounds = []
    for rank in ranks:
        if rank >= num_rows:
            bounds.append(1 << 64)
            continue
        bucket = wanted[rank]
        ordered = np.sort(np.concatenate(values[bucket]))
        bounds.append(int(ordered[rank - below[bucket]]))
    return bounds


def _split_size(fraction: float, num_rows: int) -> int:
    if fraction <= 0:
        return 0
    return max(1, int(round(fraction * num_rows)))


def _split_sizes(num_rows: int, *, test_fraction: float | None, validation_fraction: float | None) -> tuple[int, int]:
    n_test = _split_size(test_fraction or 0.0, num_rows)
    n_validation = _split_size(validation_fraction or 0.0, num_rows)
    if n_test + n_validation >= num_rows:
        raise NlpLstmError(
            f"cannot cut {n_test} test and {n_validation} validation rows from {num_rows} training rows; "
            "give more data, smaller fractions, or --validation-file/--test-file"
        )
    return n_test, n_validation


def split_indices(num_rows: int, *, seed: int, test_fraction: float | None, validation_fraction: float | None) -> dict:
    """Row indices (sorted) of train/validation/test cut from one split of `num_rows` rows.

    The rule: order rows by `split_order(num_rows, seed)`; the first `n_test` rows are test, the next
    `n_validation` validation, the rest train, where `n = max(1, round(fraction * num_rows))` (0 when
    the fraction is 0 or None: that split is not cut). So test rows depend only on (file, seed,
    test_fraction), whether or not a validation file is given.
    """
    n_test, n_validation = _split_sizes(num_rows, test_fraction=test_fraction, validation_fraction=validation_fraction)
    order = split_order(num_rows, seed)
    result = {"train": np.sort(order[n_test + n_validation :])}
    if n_test:
        result["test"] = np.sort(order[:n_test])
    if n_validation:
        result["validation"] = np.sort(order[n_test : n_test + n_validation])
    return result


def _count_rows(stream, column: str) -> int:
    return sum(len(batch[column]) for batch in stream.select_columns([column]).iter(batch_size=10_000))


def cut_stream(stream, *, column: str, seed: int, test_fraction: float | None,
               validation_fraction: float | None) -> dict[str, tuple[int, int]]:
    """`split_indices` for an `IterableDataset`: per split, the range [low, high) of row hashes it keeps.

    The same rows as `split_indices`, found without an N-long array; costs one pass over `column` to
    count the rows. `_prepare_stream` applies the ranges while the stream is read.
    """
    num_rows = _count_rows(stream, column)
    if num_rows == 0:
        return {"train": (0, 1 << 64)}
    n_test, n_validation = _split_sizes(num_rows, test_fraction=test_fraction, validation_fraction=validation_fraction)
    low, high = split_bounds(num_rows, seed=seed, ranks=[n_test, n_test + n_validation])
    result = {"train": (high, 1 << 64)}
    if n_test:
        result["test"] = (0, low)
    if n_validation:
        result["validation"] = (low, high)
    return result


def _in_range(indices, seed: int, hash_range: tuple[int, int]) -> np.ndarray:
    hashes = _row_hashes(indices, seed)
    low, high = hash_range
    keep = hashes >= np.uint64(low)
    if high < 1 << 64:
        keep &= hashes < np.uint64(high)
    return keep


# --- columns -----------------------------------------------------------------------------------
def is_stream(ds) -> bool:
    """An `IterableDataset` (streaming=True): read as iterated, no length, no random access."""
    import datasets

    return isinstance(ds, datasets.IterableDataset)


def _require_columns(ds, columns: Sequence[str], where: str) -> None:
    for column in columns:
        if column not in ds.column_names:
            raise NlpLstmError(
                f"column {column!r} not found in {where}; available columns: {', '.join(ds.column_names)} "
                "(choose with --text-column/--label-column/--summary-column)"
            )


def _as_text_column(ds, column: str):
    """Strings, None -> "" (whitespace-only texts are kept: the model predicts on them too)."""
    import datasets

    feature = ds.features[column]
    is_string = isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
    if not is_string:
        if not isinstance(feature, datasets.Value):
            raise NlpLstmError(f"column {column!r} holds {feature}, not text; choose a text column")
        ds = ds.cast_column(column, datasets.Value("string"))
    has_nulls = ds.data.column(column).null_count > 0
    if has_nulls:
        ds = ds.map(lambda texts: {column: ["" if t is None else t for t in texts]}, input_columns=[column], batched=True)
    return ds


def _class_label_names(ds, column: str):
    """ClassLabel ids -> their names (hub datasets), so labels are the same kind of value everywhere."""
    import datasets

    feature = ds.features[column]
    inner = getattr(feature, "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        return ds.map(
            lambda ids: {column: [_class_name(names, i) for i in ids]},
            input_columns=[column], batched=True, features=_replace_feature(ds, column, datasets.Value("string")),
        )
    if isinstance(inner, datasets.ClassLabel):
        names = inner.names
        return ds.map(
            lambda rows: {column: [None if r is None else [names[i] for i in r] for r in rows]},
            input_columns=[column], batched=True,
            features=_replace_feature(ds, column, datasets.Sequence(datasets.Value("string"))),
        )
    return ds


def _replace_feature(ds, column, feature):
    import datasets

    features = datasets.Features(ds.features)
    features[column] = feature
    return features


def _numbers(values, column: str, where: str) -> np.ndarray:
    """A binarize column's values as float64, missing -> NaN."""
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise NlpLstmError(f"binarize column {column!r} in {where} is not numeric; choose a numeric column") from None


def _binary_labels(values: np.ndarray, binarize: Binarize) -> list[str]:
    """`names[1]` where a value is above the threshold, else `names[0]`."""
    return np.where(values > float(binarize.threshold), binarize.names[1], binarize.names[0]).tolist()


def _class_name(names: Sequence[str], index):
    """A ClassLabel id's name; None for a missing or out-of-range id."""
    return names[index] if index is not None and 0 <= index < len(names) else None


def _binarize(ds, binarize: Binarize, label_column: str, where: str):
    import datasets

    _require_columns(ds, [binarize.column], where)
    threshold, margin, names = float(binarize.threshold), float(binarize.margin), tuple(binarize.names)
    column = binarize.column

    def values(batch) -> np.ndarray:
        return _numbers(batch, column, where)

    ds = ds.filter(lambda batch: np.abs(values(batch) - threshold) >= margin, input_columns=[column], batched=True)
    # NaN (missing) fails the >= test above, so every remaining value is a number.
    features = _replace_feature(ds, label_column, datasets.Value("string")) if label_column in ds.column_names else None
    if features is None:
        features = datasets.Features({**ds.features, label_column: datasets.Value("string")})
    # The map rewrites every column, reading the whole raw file through its memory map: drop those
    # pages batch by batch, or a large corpus's text stays in RSS (BENCHMARKS.md, section 9). The
    # function holds addresses, so name the result ourselves rather than let datasets hash it.
    label = releasing(ds, lambda batch: {label_column: _binary_labels(values(batch), binarize)})
    fingerprint = hashlib.sha256(json.dumps(
        [ds._fingerprint, "binarize", column, threshold, margin, list(names), label_column]).encode()).hexdigest()[:32]
    return ds.map(label, input_columns=[column], batched=True, features=features, new_fingerprint=fingerprint)


def _prepare(ds, source: DataSource, split: str, where: str):
    """Check columns, normalise texts and labels of one split."""
    columns = [source.text_column]
    if source.summary_column:
        columns.append(source.summary_column)
    if source.label_column and source.binarize is None:
        columns.append(source.label_column)
    _require_columns(ds, columns, where)
    if len(ds) == 0:
        raise NlpLstmError(f"the {split} split ({where}) is empty; give a file with data rows")
    ds = _as_text_column(ds, source.text_column)
    if source.summary_column:
        ds = _as_text_column(ds, source.summary_column)
    if source.binarize is not None:
        ds = _binarize(ds, source.binarize, source.label_column, where)
        if len(ds) == 0:
            raise NlpLstmError(
                f"no rows of the {split} split ({where}) are left after dropping |{source.binarize.column} - "
                f"{source.binarize.threshold}| < {source.binarize.margin}; lower the binarize margin"
            )
    elif source.label_column:
        ds = _class_label_names(ds, source.label_column)
    return ds


def _prepare_stream(stream, source: DataSource, where: str, hash_range: tuple[int, int] | None):
    """`_prepare` for a stream, as ONE batched map over the raw stream (keeping only the rows of
    `hash_range` when the split is cut from train). One map, not a chain: each batched map of an
    IterableDataset joins its rows' keys, so chained maps grow those keys quadratically (measured:
    4 s of a 5.5 s encode of 15k rows)."""
    import datasets

    if stream.features is None:
        stream = stream._resolve_features()  # some formats learn their columns from the first rows
    columns = [c for c in (source.text_column, source.summary_column) if c]
    label, binarize = source.label_column, source.binarize
    _require_columns(stream, columns + ([label] if label and binarize is None else []) +
                     ([binarize.column] if binarize else []), where)
    features = datasets.Features(stream.features)
    for column in columns:
        if not isinstance(features[column], datasets.Value):
            raise NlpLstmError(f"column {column!r} holds {features[column]}, not text; choose a text column")
        features[column] = datasets.Value("string")
    class_names = None
    if binarize is not None:
        features[label] = datasets.Value("string")
    elif label:
        feature = features[label]
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.ClassLabel):
            class_names, features[label] = feature.names, datasets.Value("string")
        elif isinstance(inner, datasets.ClassLabel):
            class_names, features[label] = inner.names, datasets.Sequence(datasets.Value("string"))

    def prepare(batch: dict, indices: list[int]) -> dict:
        keep = _in_range(indices, source.split_seed, hash_range) if hash_range else np.ones(len(indices), dtype=bool)
        for column in columns:
            batch[column] = ["" if t is None else t if isinstance(t, str) else str(t) for t in batch[column]]
        if binarize is not None:
            values = _numbers(batch[binarize.column], binarize.column, where)
            keep &= np.abs(values - float(binarize.threshold)) >= float(binarize.margin)  # NaN fails: dropped
            batch[label] = _binary_labels(values, binarize)
        elif class_names is not None:
            batch[label] = [[_class_name(class_names, i) for i in row] if isinstance(row, list)
                            else _class_name(class_names, row) for row in batch[label]]  # fmt: skip
        if keep.all():
            return batch
        rows = np.flatnonzero(keep)
        return {name: [values[i] for i in rows] for name, values in batch.items()}

    return stream.map(prepare, batched=True, with_indices=True, remove_columns=stream.column_names, features=features)


def _validate(source: DataSource, splits: Sequence[str]) -> None:
    for split in splits:
        if split not in SPLITS:
            raise NlpLstmError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    has_files = any(source.file_for(s) for s in SPLITS)
    if source.dataset and has_files:
        raise NlpLstmError(f"give either a hub dataset ({source.dataset!r}) or local files, not both")
    if not source.dataset and not has_files:
        raise NlpLstmError("no data source: give a hub dataset name (--dataset) or local files (--train-file)")
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(source, name)
        if not 0.0 <= value < 1.0:
            raise NlpLstmError(f"{name} must be in [0, 1), got {value}")
    if source.validation_fraction + source.test_fraction >= 1.0:
        raise NlpLstmError(
            f"validation_fraction + test_fraction must be below 1, got {source.validation_fraction} + {source.test_fraction}"
        )
    if source.binarize is not None and not source.label_column:
        raise NlpLstmError("binarize writes its label into label_column: set a label column name (e.g. 'label')")


def load_splits(source: DataSource, *, splits: Sequence[str] = SPLITS):
    """Load the requested splits of `source` as a `datasets.DatasetDict`.

    Splits come from the hub dataset's own splits or from train/validation/test files. A requested
    validation or test split that has neither is cut from train with `split_indices`:
    rows ordered by a fixed hash of (split_seed, row number); the first
    `max(1, round(test_fraction * N))` are test, the next `max(1, round(validation_fraction * N))`
    validation, the rest train (N = rows of train; each block keeps file order). With the defaults and
    one file that is a fixed 80/10/10 split. A fraction of 0 disables that split: it is left out of the
    result (and `load_split` of it raises). The cut is made before `binarize` drops near-neutral rows,
    so a row's split never depends on label settings.

    Raises:
        NlpLstmError: bad or missing file, hub failure, unknown column (lists the available ones),
            empty split, invalid UTF-8 (names file and line).
    """
    import datasets

    splits = tuple(splits)
    _validate(source, splits)
    if source.dataset:
        raw = _load_hub(source)
        origin = {s: f"{source.describe()} split {s!r}" for s in raw}
    else:
        needs_train = any(not source.file_for(s) for s in splits) or "train" in splits
        raw, origin = {}, {}
        for split in SPLITS:
            path = source.file_for(split)
            if path and (split in splits or (split == "train" and needs_train)):
                raw[split] = load_file(path, split=split, streaming=source.streaming)
                origin[split] = str(path)

    result = {}
    hash_ranges: dict[str, tuple[int, int]] = {}
    missing = [s for s in splits if s not in raw and s != "train"]
    if "train" in splits or missing:
        if "train" not in raw:
            raise NlpLstmError(
                f"{source.describe()} has no train split to use or to cut {', '.join(missing) or 'train'} from; "
                f"give --train-file or the {', '.join(missing)} file"
            )
        train = raw["train"]
        cut = {s for s in ("validation", "test") if s not in raw}
        if cut and is_stream(train):
            hash_ranges = cut_stream(
                train, column=source.text_column, seed=source.split_seed,
                test_fraction=source.test_fraction if "test" in cut else 0.0,
                validation_fraction=source.validation_fraction if "validation" in cut else 0.0,
            )
            for split in hash_ranges:
                raw[split] = train
                if split != "train":
                    origin[split] = f"{origin['train']} ({split} rows cut with split_seed={source.split_seed})"
        elif cut:
            if len(train) == 0:
                raise NlpLstmError(f"the train split ({origin['train']}) is empty; give a file with data rows")
            indices = split_indices(
                len(train),
                seed=source.split_seed,
                test_fraction=source.test_fraction if "test" in cut else 0.0,
                validation_fraction=source.validation_fraction if "validation" in cut else 0.0,
            )
            for split, rows in indices.items():
                raw[split] = train.select(rows)
                if split != "train":
                    origin[split] = f"{origin['train']} ({split} rows cut with split_seed={source.split_seed})"
    for split in splits:
        if split not in raw:
            if split in ("validation", "test"):
                fraction_name = f"{split}_fraction"
                if getattr(source, fraction_name) == 0 and len(splits) > 1:
                    continue  # disabled on purpose
                raise NlpLstmError(
                    f"{source.describe()} has no {split} split and {fraction_name} is 0; "
                    f"give --{split}-file or a {fraction_name} above 0"
                )
            raise NlpLstmError(f"{source.describe()} has no {split} split; give --{split}-file")
        if is_stream(raw[split]):
            result[split] = _prepare_stream(raw[split], source, origin[split], hash_ranges.get(split))
        else:
            result[split] = _prepare(raw[split], source, split, origin[split])
    if source.streaming:
        for split, stream in result.items():  # what `encode` names its Arrow output after (no re-reading)
            stream._fingerprint = stream_fingerprint(source, split)
        return datasets.IterableDatasetDict(result)
    return datasets.DatasetDict(result)


def stream_fingerprint(source: DataSource, split: str) -> str:
    """Names a streamed split by its settings and its files' sizes and times, so an encoded copy is
    reused until a file (or a setting) changes. Hub streams are named by dataset and config."""
    from dataclasses import asdict

    files = []
    for name in SPLITS:
        path = source.file_for(name)
        if path:
            marker = Path(path)
            if _is_arrow_dir(marker):
                marker = next(m for m in (marker / "state.json", marker / "dataset_dict.json") if m.is_file())
            stat = marker.stat()
            files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"source": asdict(source), "split": split, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def load_split(source: DataSource, split: str):
    """One split, the same rows as `load_splits(source)[split]` (e.g. to evaluate on test only)."""
    return load_splits(source, splits=(split,))[split]


# --- labels ------------------------------------------------------------------------------------
def label_key(value) -> str:
    """How a label value is named: ints as str(int), strings as they are."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def label_names(dataset, label_column: str) -> list[str]:
    """Sorted unique label names (as strings) of a label column; multi-label lists give their union.

    Integer labels sort by value ("2" before "10"); others as strings. Raises NlpLstmError when the
    column is missing, has missing labels, or has fewer than 2 classes (nothing to learn).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    _require_columns(dataset, [label_column], "the dataset")
    if is_stream(dataset):
        values, missing = _stream_label_values(dataset, label_column)
    else:
        table = dataset.select_columns([label_column]).with_format("arrow")[:]
        column = table.column(0)
        missing = column.null_count
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = pc.list_flatten(column)
        values = pc.unique(column).to_pylist()
    if missing:
        raise NlpLstmError(f"{missing} rows have no value in label column {label_column!r}; fill or drop them")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        names = [str(v) for v in sorted(values)]
    else:
        names = sorted({label_key(v) for v in values})
    if len(names) < 2:
        found = f"only {names[0]!r}" if names else "no labels"
        raise NlpLstmError(
            f"label column {label_column!r} has {found}: training needs at least 2 classes; "
            "check --label-column (or the binarize threshold) and the data"
        )
    return names


def _stream_label_values(stream, label_column: str) -> tuple[list, int]:
    """(unique label values, rows without one) of a streamed split, in one pass over its label column."""
    values, missing = set(), 0
    for batch in stream.select_columns([label_column]).iter(batch_size=10_000):
        for value in batch[label_column]:
            if value is None:
                missing += 1
            elif isinstance(value, (list, tuple)):
                values.update(value)
            else:
                values.add(value)
    return list(values), missing


def check_labels(dataset, label_column: str) -> None:
    """Raise NlpLstmError unless `label_column` holds at least 2 classes (see `label_names`)."""
    label_names(dataset, label_column)


# --- texts to predict on -----------------------------------------------------------------------
def read_texts(path) -> list[str]:
    """Texts for `classify --input-file`: .txt(.gz) one text per line (blank lines kept, so outputs line
    up with input lines), or csv/tsv/json/jsonl/parquet(.gz) with a 'text' column."""
    path = _check_file(path)
    extension, _, _ = _file_format(path)
    if extension == "txt":
        invalid = find_invalid_utf8(path)
        if invalid is not None:
            raise _unreadable(path, "text", ValueError("invalid UTF-8"))
        with _open_binary(path) as file:
            text = file.read().decode("utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line does not start another text
        return [line[:-1] if line.endswith("\r") else line for line in lines]
    ds = load_file(path)
    _require_columns(ds, ["text"], str(path))
    ds = _as_text_column(ds, "text")
    return list(ds["text"])

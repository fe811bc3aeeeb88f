"""Columns: text columns as strings, labels as names, and the binarize rule, for Arrow data and streams.

`prepare_split` (Arrow) and `prepare_stream` (IterableDataset) apply the same rules, written once:
texts None -> "", ClassLabel ids -> names, and `binarize_values` (keep |value - threshold| >= margin,
label names[1] above the threshold).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nlp_lstm.data.mapped_pages import releasing
from nlp_lstm.data.splits import in_hash_range
from nlp_lstm.errors import NlpLstmError

if TYPE_CHECKING:
    from nlp_lstm.data.sources import DataSource


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



# The most classes a classifier is trained on. Its metrics keep a (C, C) confusion matrix (8 MB and
# 1M cells in metrics.json at this cap; 50,000 labels needed 18 GB, allocated after training) and its
# softmax, calibration and plots are built for tens to hundreds of classes, not extreme classification.
MAX_LABELS = 1000


def is_stream(ds) -> bool:
    """An `IterableDataset` (streaming=True): read as iterated, no length, no random access."""
    import datasets

    return isinstance(ds, datasets.IterableDataset)


def require_columns(ds, columns: Sequence[str], where: str) -> None:
    for column in columns:
        if column not in ds.column_names:
            raise NlpLstmError(
                f"column {column!r} not found in {where}; available columns: {', '.join(ds.column_names)} "
                "(choose with --text-column/--label-column/--summary-column)"
            )


def as_text_column(ds, column: str):
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


def _json_label_names(ds, column: str, where: str):
    """A JSON label column whose values are of mixed kinds (strings and numbers: datasets reads it as a
    `Json` column, which Arrow cannot sort or count) -> names, each value named as `label_key` does."""
    import datasets

    json_feature = getattr(datasets, "Json", None)
    if json_feature is None or not isinstance(ds.features[column], json_feature):
        return ds

    def names(values):
        for value in values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise NlpLstmError(
                    f"label column {column!r} in {where} mixes single labels with {type(value).__name__}s "
                    f"({json.dumps(value)[:60]}); give every row one label, or every row a list of labels"
                )
        return {column: [None if value is None else label_key(value) for value in values]}

    return ds.map(names, input_columns=[column], batched=True,
                  features=_replace_feature(ds, column, datasets.Value("string")))


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


def binarize_values(values: np.ndarray, binarize: Binarize) -> tuple[np.ndarray, list[str]]:
    """The binarize rule, for Arrow batches and streams alike.

    Returns:
        keep: (N,) bool, False for near-neutral (|value - threshold| < margin) or missing (NaN) values.
        labels: `names[1]` where a value is above the threshold, else `names[0]` (for every row).
    """
    keep = np.abs(values - float(binarize.threshold)) >= float(binarize.margin)  # NaN fails: dropped
    labels = np.where(values > float(binarize.threshold), binarize.names[1], binarize.names[0]).tolist()
    return keep, labels


def _class_name(names: Sequence[str], index):
    """A ClassLabel id's name; None for a missing or out-of-range id."""
    return names[index] if index is not None and 0 <= index < len(names) else None


def _binarize(ds, binarize: Binarize, label_column: str, where: str):
    import datasets

    require_columns(ds, [binarize.column], where)
    column = binarize.column

    def rule(batch) -> tuple[np.ndarray, list[str]]:
        return binarize_values(_numbers(batch, column, where), binarize)

    ds = ds.filter(lambda batch: rule(batch)[0], input_columns=[column], batched=True)
    features = _replace_feature(ds, label_column, datasets.Value("string")) if label_column in ds.column_names else None
    if features is None:
        features = datasets.Features({**ds.features, label_column: datasets.Value("string")})
    # The map rewrites every column, reading the whole raw file through its memory map: drop those
    # pages batch by batch, or a large corpus's text stays in RSS (BENCHMARKS.md, section 9). The
    # function holds addresses, so name the result ourselves rather than let datasets hash it.
    label = releasing(ds, lambda batch: {label_column: rule(batch)[1]})
    fingerprint = hashlib.sha256(json.dumps(
        [ds._fingerprint, "binarize", column, float(binarize.threshold), float(binarize.margin), list(binarize.names),
         label_column]).encode()).hexdigest()[:32]
    return ds.map(label, input_columns=[column], batched=True, features=features, new_fingerprint=fingerprint)


def prepare_split(ds, source: DataSource, split: str, where: str):
    """Check columns, normalise texts and labels of one split."""
    columns = [source.text_column]
    if source.summary_column:
        columns.append(source.summary_column)
    if source.label_column and source.binarize is None:
        columns.append(source.label_column)
    require_columns(ds, columns, where)
    if len(ds) == 0:
        raise NlpLstmError(f"the {split} split ({where}) is empty; give a file with data rows")
    ds = as_text_column(ds, source.text_column)
    if source.summary_column:
        ds = as_text_column(ds, source.summary_column)
    if source.binarize is not None:
        ds = _binarize(ds, source.binarize, source.label_column, where)
        if len(ds) == 0:
            raise NlpLstmError(
                f"no rows of the {split} split ({where}) are left after dropping |{source.binarize.column} - "
                f"{source.binarize.threshold}| < {source.binarize.margin}; lower the binarize margin"
            )
    elif source.label_column:
        ds = _json_label_names(_class_label_names(ds, source.label_column), source.label_column, where)
        if source.label_separator:
            ds = split_labels(ds, source.label_column, source.label_separator)
    return ds


def prepare_stream(stream, source: DataSource, where: str, hash_range: tuple[int, int] | None):
    """`prepare_split` for a stream, as ONE batched map over the raw stream (keeping only the rows of
    `hash_range` when the split is cut from train). One map, not a chain: each batched map of an
    IterableDataset joins its rows' keys, so chained maps grow those keys quadratically (measured:
    4 s of a 5.5 s encode of 15k rows)."""
    import datasets

    if stream.features is None:
        stream = stream._resolve_features()  # some formats learn their columns from the first rows
    columns = [c for c in (source.text_column, source.summary_column) if c]
    label, binarize = source.label_column, source.binarize
    require_columns(stream, columns + ([label] if label and binarize is None else []) +
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
        elif source.label_separator:
            features[label] = datasets.Sequence(datasets.Value("string"))

    def prepare(batch: dict, indices: list[int]) -> dict:
        keep = in_hash_range(indices, source.split_seed, hash_range) if hash_range else np.ones(len(indices), dtype=bool)
        for column in columns:
            batch[column] = ["" if t is None else t if isinstance(t, str) else str(t) for t in batch[column]]
        if binarize is not None:
            kept, batch[label] = binarize_values(_numbers(batch[binarize.column], binarize.column, where), binarize)
            keep &= kept
        elif class_names is not None:
            batch[label] = [[_class_name(class_names, i) for i in row] if isinstance(row, list)
                            else _class_name(class_names, row) for row in batch[label]]  # fmt: skip
        elif label and source.label_separator:
            batch[label] = split_labels_batch(batch[label], source.label_separator)
        if keep.all():
            return batch
        rows = np.flatnonzero(keep)
        return {name: [values[i] for i in rows] for name, values in batch.items()}

    return stream.map(prepare, batched=True, with_indices=True, remove_columns=stream.column_names, features=features)


def label_key(value) -> str:
    """How a label value is named: ints (and integral floats such as 1.0, from a CSV column that a blank
    cell made float) as str(int), strings as they are."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def unlabelled(ds, label_column: str | None) -> bool:
    """Every row's label is missing (e.g. a hub test split whose ClassLabel ids are all -1)."""
    if not label_column or label_column not in ds.column_names or len(ds) == 0:
        return False
    return ds.data.column(label_column).null_count == len(ds)


def split_labels_batch(values, separator: str) -> list[list[str]]:
    return [[] if v is None else [part.strip() for part in str(v).split(separator) if part.strip()] for v in values]


def split_labels(ds, label_column: str, separator: str):
    """Joined labels ("sports|politics") -> lists of labels (multi-label), blanks dropped."""
    import datasets

    def split(values):
        return {label_column: split_labels_batch(values, separator)}

    return ds.map(split, input_columns=[label_column], batched=True,
                  features=_replace_feature(ds, label_column, datasets.Sequence(datasets.Value("string"))))


def drop_unknown_labels(ds, label_column: str, names: list[str], where: str):
    """Rows of a validation/test split whose label the training split never had: dropped, one warning."""
    import warnings

    known = set(names)

    def keep(values):
        return [all(label_key(v) in known for v in value) if isinstance(value, list) else label_key(value) in known
                for value in values]

    kept = ds.filter(keep, input_columns=[label_column], batched=True)
    if len(kept) == 0 and len(ds) > 0:
        raise NlpLstmError(
            f"no row of {where} is left: none of its {len(ds)} row(s) has a label the training split has "
            f"({len(names)} label(s)); each label needs rows in both, so give more rows per label "
            "(or a --validation-file/--test-file whose labels occur in training)"
        )
    if len(kept) < len(ds):
        warnings.warn(f"{len(ds) - len(kept)} row(s) of {where} have a label the training split does not have; "
                      "they are left out")
    return kept


def label_names(dataset, label_column: str) -> list[str]:
    """Sorted unique label names (as strings) of a label column; multi-label lists give their union.

    Integer labels sort by value ("2" before "10"); others as strings. Raises NlpLstmError when the
    column is missing, has missing labels, or has fewer than 2 classes (nothing to learn).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    require_columns(dataset, [label_column], "the dataset")
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
        first = "" if is_stream(dataset) else f" (the first is row {_first_null(dataset, label_column) + 1})"
        raise NlpLstmError(f"{missing} row(s) have a blank label in column {label_column!r}{first}; fill or drop them")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in values):
        names = [str(int(v)) for v in sorted(values)]
    else:
        names = sorted({label_key(v) for v in values})
    if len(names) > MAX_LABELS:
        raise NlpLstmError(
            f"label column {label_column!r} has {len(names):,} distinct labels, more than the {MAX_LABELS:,} a "
            "classifier here takes (its output layer and confusion matrix grow with them); check --label-column "
            "(an id or free-text column?), or merge rare labels into one before training"
        )
    if len(names) < 2:
        found = f"only {names[0]!r}" if names else "no labels"
        raise NlpLstmError(
            f"label column {label_column!r} has {found}: training needs at least 2 classes; "
            "check --label-column (or the binarize threshold) and the data"
        )
    return names


def _first_null(dataset, column: str) -> int:
    import pyarrow.compute as pc

    nulls = pc.is_null(dataset.select_columns([column]).with_format("arrow")[:].column(0))
    return int(pc.index(nulls, True).as_py())


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


def iter_texts(dataset, columns: Sequence[str]):
    """Texts of `columns`, batch by batch from Arrow (never a whole column as one Python list); None -> ""."""
    for batch in dataset.iter(batch_size=1000):
        for column in columns:
            yield from (text or "" for text in batch[column])


def is_multilabel(dataset, label_column: str) -> bool:
    """A label column of lists (one example, several labels)."""
    import datasets

    feature = dataset.features[label_column]
    return isinstance(feature, (datasets.Sequence, list)) or getattr(feature, "_type", "") == "List"

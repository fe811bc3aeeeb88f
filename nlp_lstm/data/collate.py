"""Ids -> padded batches: collate functions that build tensors + masks from encoded rows.

Mask convention (STYLE.md 6): `pad_mask` is True AT PADDING.

The collate functions take a list of dicts, or an `ArrowRows` batch (`take_rows`, what the training
loop reads): its columns are padded whole, offsets -> one numpy scatter, giving the same tensors
without a Python object per token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from nlp_lstm.data.specials import BOS_ID, PAD_ID


class ArrowRows(Sequence[dict]):
    """A batch of dataset rows held as one Arrow table.

    The collate functions read its columns whole (numpy over the list offsets, no per-row Python).
    Any other collate can still index it as the list of dicts `dataset[indices]` gives.
    """

    def __init__(self, table: pa.Table):
        self.table = table
        self._rows: list[dict] | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index):
        if self._rows is None:
            self._rows = self.table.to_pylist()
        return self._rows[index]

    @property
    def column_names(self) -> list[str]:
        return self.table.column_names

    def column(self, name: str) -> pa.Array:
        return self.table.column(name).combine_chunks()


def take_rows(dataset, indices: Sequence[int] | np.ndarray) -> ArrowRows:
    """Rows `indices` of a `datasets.Dataset` as Arrow columns, without a Python object per token.

    Reads what `dataset[indices]` reads: through the index mapping a `select`/`shuffle`/`sort` left,
    and only the columns a format picked (`with_format(columns=...)`, `select_columns` drops the rest).
    """
    positions = np.asarray(indices, dtype=np.int64).reshape(-1)
    size = len(dataset)
    if len(positions):
        low, high = positions.min(), positions.max()
        if low < -size or high >= size:
            raise IndexError(f"row indices must be in [-{size}, {size}), got {low}..{high}")
        if low < 0:  # count from the end, as in `dataset[indices]`
            positions = positions % size
    if dataset._indices is not None:  # a view: map to rows of the underlying table
        positions = _gather(dataset._indices, positions).column(0).to_numpy().astype(np.int64)
    table = _gather(dataset.data, positions)
    form = dataset.format  # its "columns" are all the columns unless a format picked some
    if not form["output_all_columns"] and form["columns"] != table.column_names:
        table = table.select(form["columns"])
    return ArrowRows(table)


def _gather(table, positions: np.ndarray) -> pa.Table:
    """Rows `positions` (non-negative int64) of a `datasets.table.Table`.

    Arrow's `take` over a column of many chunks (a cache file holds one per 1,000 rows) costs time
    that grows with the whole column (16 ms for a batch of 64 at 1M rows, measured), so a chunked
    table is read with datasets' `fast_gather` (one slice per row) instead, whose cost does not.
    """
    arrow = table.table
    if not len(positions):
        return arrow.slice(0, 0)
    if arrow.num_columns and arrow.column(0).num_chunks > 1:  # columns are chunked alike (record batches)
        return table.fast_gather(positions)
    return arrow.take(positions)


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch with every tensor moved to `device` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _is_list(column: pa.Array) -> bool:
    return pa.types.is_list(column.type) or pa.types.is_large_list(column.type)


def _is_number(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)


def _list_lengths(column: pa.Array) -> np.ndarray:
    return np.diff(column.offsets.to_numpy()).astype(np.int64)  # (B,)


def _plain_ids(column: pa.Array) -> bool:
    """A list<int> column without nulls: the padded path reads it; anything else goes row by row."""
    return (_is_list(column) and pa.types.is_integer(column.type.value_type) and not column.null_count
            and not column.flatten().null_count)  # fmt: skip


def _pad_column(column: pa.Array, *, prefix: int | None = None):
    """A list<int> column of B rows -> (padded (B, T) long, lengths (B,) long, pad_mask (B, T) bool).

    One scatter: the concatenated values fill the (row, step) cells where a step is inside its row,
    in row-major order, which is their order in the column. `prefix` adds one id before every row
    (counted in its length), as `_pad([[prefix, *row], ...])` would.
    """
    lengths = _list_lengths(column)  # (B,)
    first = int(prefix is not None)
    total = lengths + first  # (B,)
    steps = np.arange(int(total.max()) if len(total) else 0)  # (T,)
    padded = np.full((len(total), len(steps)), PAD_ID, dtype=np.int64)  # (B, T)
    padded[(steps >= first) & (steps < (first + lengths)[:, None])] = column.flatten().to_numpy()
    if prefix is not None:
        padded[:, 0] = prefix
    pad_mask = steps >= total[:, None]  # (B, T) True at padding
    return torch.from_numpy(padded), torch.from_numpy(total), torch.from_numpy(pad_mask)


def _labels_column(column: pa.Array) -> torch.Tensor | None:
    """`_labels` read from an Arrow column; None for a type the row path must handle."""
    if column.null_count:
        return None
    if _is_number(column.type):
        dtype = np.float32 if pa.types.is_floating(column.type) else np.int64
        return torch.from_numpy(column.to_numpy(zero_copy_only=False).astype(dtype))
    if not _is_list(column) or not _is_number(column.type.value_type) or column.flatten().null_count:
        return None
    lengths = _list_lengths(column)
    if len(lengths) == 0 or (lengths != lengths[0]).any():
        return None  # ragged multi-hot: let np.asarray in the row path raise
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return torch.from_numpy(values.reshape(len(lengths), int(lengths[0])))  # (B, L)


def _features_column(column: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """A features column -> (steps (S, D) float32 of all rows concatenated, lengths (B,)), or None
    where the row path must run (nulls, empty rows, steps of different sizes, deeper nesting)."""
    if not _is_list(column) or column.null_count:
        return None
    lengths = _list_lengths(column)
    steps = column.flatten()
    if not len(lengths) or not lengths.all() or steps.null_count:
        return None
    if _is_number(steps.type):  # univariate: (T,) per row
        return steps.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1), lengths
    if not _is_list(steps) or not _is_number(steps.type.value_type):
        return None
    sizes = _list_lengths(steps)
    values = steps.flatten()
    if not sizes[0] or (sizes != sizes[0]).any() or values.null_count:
        return None
    return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, int(sizes[0])), lengths


def _pad(rows: Sequence, *, pad_value: int | float = PAD_ID, dtype=torch.long) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of different lengths -> (padded (B, T), lengths (B,)), T = longest row."""
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    padded = torch.full((len(rows), int(lengths.max()) if len(rows) else 0), pad_value, dtype=dtype)
    for i, row in enumerate(rows):
        if len(row):
            padded[i, : len(row)] = torch.as_tensor(row, dtype=dtype)
    return padded, lengths


def _pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    return torch.arange(max_len).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T) True at padding


def _labels(examples: list[dict]) -> torch.Tensor:
    """(B,) long class indices, or (B, L) float multi-hot / float targets."""
    values = [example["labels"] for example in examples]
    first = values[0]
    if isinstance(first, (list, tuple, np.ndarray, torch.Tensor)):
        return torch.as_tensor(np.asarray(values, dtype=np.float32))
    if isinstance(first, (float, np.floating)):
        return torch.tensor(values, dtype=torch.float32)
    return torch.tensor(values, dtype=torch.long)


def _keys(examples: Sequence[dict]):
    """The column names of a batch (of the first row, for a list of dicts)."""
    return examples.column_names if isinstance(examples, ArrowRows) else examples[0]


def _batch_labels(examples: Sequence[dict]) -> torch.Tensor:
    if isinstance(examples, ArrowRows) and (labels := _labels_column(examples.column("labels"))) is not None:
        return labels
    return _labels(examples)


def collate_classification(examples: Sequence[dict]) -> dict:
    """Encoded classification examples -> tensors.

    Returns:
        input_ids: (B, T) long, padded with PAD_ID to the batch's longest example.
        lengths: (B,) long.
        pad_mask: (B, T) bool, True at padding.
        ngram_ids, ngram_weights: (B, K) word n-gram features (`_ngram_features`); only if the examples have them.
        labels: (B,) long class indices, or (B, num_labels) float multi-hot; only if the examples have labels.
    """
    if isinstance(examples, ArrowRows) and _plain_ids(ids := examples.column("input_ids")):
        input_ids, lengths, pad_mask = _pad_column(ids)
        batch = {"input_ids": input_ids, "lengths": lengths, "pad_mask": pad_mask}
    else:
        input_ids, lengths = _pad([example["input_ids"] for example in examples])
        batch = {"input_ids": input_ids, "lengths": lengths, "pad_mask": _pad_mask(lengths, input_ids.shape[1])}
    if examples and "ngram_ids" in _keys(examples):
        batch.update(_ngram_features(examples))
    if examples and "labels" in _keys(examples):
        batch["labels"] = _batch_labels(examples)
    return batch


def _ngram_features(examples: Sequence[dict]) -> dict:
    """`ngram_ids` (B, K) long and `ngram_weights` (B, K) float, 0 at padding; K >= 1 even when no
    text has a known n-gram, so every runtime sees the same rank."""
    if isinstance(examples, ArrowRows):
        ids, values = examples.column("ngram_ids"), examples.column("ngram_weights")
        lengths = _list_lengths(ids)  # (B,)
        steps = np.arange(max(1, int(lengths.max()) if len(lengths) else 1))  # (K,)
        inside = steps < lengths[:, None]  # (B, K)
        padded_ids = np.zeros(inside.shape, dtype=np.int64)
        padded_values = np.zeros(inside.shape, dtype=np.float32)
        padded_ids[inside] = ids.flatten().to_numpy(zero_copy_only=False)
        padded_values[inside] = values.flatten().to_numpy(zero_copy_only=False)
        return {"ngram_ids": torch.from_numpy(padded_ids), "ngram_weights": torch.from_numpy(padded_values)}
    ids, _ = _pad([example["ngram_ids"] or [0] for example in examples], pad_value=0)
    values, _ = _pad([example["ngram_weights"] or [0.0] for example in examples], pad_value=0.0, dtype=torch.float32)
    return {"ngram_ids": ids, "ngram_weights": values}


def classifier_arguments(batch: dict, input_key: str = "input_ids", device: torch.device | None = None) -> tuple:
    """A collated classification batch -> the positional arguments of `TextClassifier.forward`:
    `(inputs, lengths, pad_mask, ngram_ids, ngram_weights)`, the last two None without n-gram features."""
    names = (input_key, "lengths", "pad_mask", "ngram_ids", "ngram_weights")
    values = [batch.get(name) for name in names]
    return tuple(value.to(device) if device is not None and value is not None else value for value in values)


def collate_summarization(examples: Sequence[dict]) -> dict:
    """Encoded summarization examples -> tensors for a pointer-generator (See et al. 2017).

    Returns:
        src_ids: (B, S) long in-vocabulary ids (unk for OOV), PAD_ID padded: the encoder's input.
        src_ext_ids: (B, S) long extended ids (OOV -> vocab_size + i): where copy attention scatters.
        src_lengths: (B,) long; src_pad_mask: (B, S) bool, True at padding.
        max_oovs: int, the largest number of source OOVs in the batch (extra logits to allocate).
        oovs: list of B lists of strings, to turn extended ids back into words.
        When the examples have targets (`tgt_ids` end with EOS unless the reference was cut):
        dec_input_ids: (B, T) long, [BOS] + tgt_ids[:-1] (in-vocabulary: the decoder embeds them).
        target_ids: (B, T) long, tgt_ext_ids (extended: copied words are learnable), PAD_ID padded.
        tgt_lengths: (B,) long, len(tgt_ids); tgt_pad_mask: (B, T) bool, True at padding.
    """
    if isinstance(examples, ArrowRows) and (batch := _summarization_columns(examples)) is not None:
        return batch
    src_ids, src_lengths = _pad([example["src_ids"] for example in examples])
    src_ext_ids, _ = _pad([example["src_ext_ids"] for example in examples])
    oovs = [list(example["oovs"]) for example in examples]
    batch = {
        "src_ids": src_ids,
        "src_ext_ids": src_ext_ids,
        "src_lengths": src_lengths,
        "src_pad_mask": _pad_mask(src_lengths, src_ids.shape[1]),
        "max_oovs": max((len(o) for o in oovs), default=0),
        "oovs": oovs,
    }
    if examples and "tgt_ids" in examples[0]:
        dec_input_ids, tgt_lengths = _pad([[BOS_ID, *example["tgt_ids"][:-1]] for example in examples])
        target_ids, _ = _pad([list(example["tgt_ext_ids"]) for example in examples])
        batch.update(
            dec_input_ids=dec_input_ids,
            target_ids=target_ids,
            tgt_lengths=tgt_lengths,
            tgt_pad_mask=_pad_mask(tgt_lengths, dec_input_ids.shape[1]),
        )
    return batch


def _summarization_columns(rows: ArrowRows) -> dict | None:
    """`collate_summarization` read column by column; None where a column needs the row path."""
    targets = len(rows) > 0 and "tgt_ids" in rows.column_names
    names = ["src_ids", "src_ext_ids"] + (["tgt_ids", "tgt_ext_ids"] if targets else [])
    ids = {name: rows.column(name) for name in names}
    oovs = rows.column("oovs")
    if not all(_plain_ids(column) for column in ids.values()) or not _is_list(oovs) or oovs.null_count:
        return None
    src_ids, src_lengths, src_pad_mask = _pad_column(ids["src_ids"])
    batch = {
        "src_ids": src_ids,
        "src_ext_ids": _pad_column(ids["src_ext_ids"])[0],
        "src_lengths": src_lengths,
        "src_pad_mask": src_pad_mask,
        "max_oovs": int(_list_lengths(oovs).max()) if len(oovs) else 0,
        "oovs": oovs.to_pylist(),  # strings: one Python list per row is what callers read
    }
    if targets:
        target_ids, tgt_lengths, tgt_pad_mask = _pad_column(ids["tgt_ext_ids"])
        # [BOS] + tgt_ids[:-1]: shift right by one; the last id of each row falls on its padding.
        dec_input_ids = _pad_column(ids["tgt_ids"], prefix=BOS_ID)[0][:, :-1].masked_fill(tgt_pad_mask, PAD_ID)
        batch.update(
            dec_input_ids=dec_input_ids,
            target_ids=target_ids,
            tgt_lengths=tgt_lengths,
            tgt_pad_mask=tgt_pad_mask,
        )
    return batch


def collate_features(examples: Sequence[dict]) -> dict:
    """Float sequences (time series) -> tensors.

    Each example's "features" is (T,) or (T, D) numbers.

    Returns:
        features: (B, T, D) float32, zero padded; lengths: (B,) long; pad_mask: (B, T) bool, True at padding;
        labels: as in `collate_classification`, when present.
    """
    if isinstance(examples, ArrowRows) and (columns := _features_column(examples.column("features"))) is not None:
        steps, lengths = columns  # (S, D), (B,)
        valid = np.arange(int(lengths.max())) < lengths[:, None]  # (B, T)
        features = np.zeros((*valid.shape, steps.shape[1]), dtype=np.float32)  # (B, T, D)
        features[valid] = steps
        batch = {"features": torch.from_numpy(features), "lengths": torch.from_numpy(lengths),
                 "pad_mask": torch.from_numpy(~valid)}  # fmt: skip
        if "labels" in examples.column_names:
            batch["labels"] = _batch_labels(examples)
        return batch
    sequences = []
    for example in examples:
        values = np.asarray(example["features"], dtype=np.float32)
        sequences.append(values.reshape(len(values), -1) if values.ndim != 2 else values)  # (T, D)
    dims = {seq.shape[1] for seq in sequences if len(seq)}
    if len(dims) > 1:
        raise ValueError(f"examples have different feature sizes {sorted(dims)}; every step needs the same D")
    dim = dims.pop() if dims else 1
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)
    features = torch.zeros(len(sequences), int(lengths.max()) if sequences else 0, dim)  # (B, T, D)
    for i, seq in enumerate(sequences):
        if len(seq):
            features[i, : len(seq)] = torch.from_numpy(seq)
    batch = {"features": features, "lengths": lengths, "pad_mask": _pad_mask(lengths, features.shape[1])}
    if examples and "labels" in examples[0]:
        batch["labels"] = _labels(examples)
    return batch

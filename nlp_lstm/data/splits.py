"""The fixed seeded split rule: which rows of one file are train, validation and test.

Rows are ordered by a splitmix64 hash of (seed, row number), so a file's split never changes. Arrow
data is cut with `split_indices`; a stream with `cut_stream`, which finds the same rows as ranges of
hash values (no N-long array), applied while the stream is read (`in_hash_range`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlp_lstm.errors import NlpLstmError


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
    count the rows. `prepare_stream` applies the ranges while the stream is read.
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


def in_hash_range(indices, seed: int, hash_range: tuple[int, int]) -> np.ndarray:
    hashes = _row_hashes(indices, seed)
    low, high = hash_range
    keep = hashes >= np.uint64(low)
    if high < 1 << 64:
        keep &= hashes < np.uint64(high)
    return keep

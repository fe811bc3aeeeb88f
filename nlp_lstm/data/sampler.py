"""Batch order: length-bucketed batches of similar lengths, seeded per epoch, sharded over DDP ranks.

Padding to each batch's own maximum over length-sorted buckets is what makes the fused LSTM fast
(NOTES.md: packing is 5.3x slower; sorted buckets 0.44x of padding to the global max).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch


def column_to_numpy(ds, column: str = "length") -> np.ndarray:
    """One column of a `datasets.Dataset` as a numpy array, via Arrow (no per-example Python loop)."""
    table = ds.select_columns([column]).with_format("arrow")[:]
    return table.column(0).to_numpy()


def _as_numpy(lengths) -> np.ndarray:
    """numpy from a list, array, pyarrow/pandas column, or a lazy `ds["length"]` datasets Column
    (read through Arrow instead of one Python object per example)."""
    import datasets

    column_type = getattr(datasets.arrow_dataset, "Column", None)
    if column_type is not None and isinstance(lengths, column_type) and isinstance(lengths.source, datasets.Dataset):
        return column_to_numpy(lengths.source, lengths.column_name)
    if hasattr(lengths, "to_numpy"):  # pyarrow / pandas
        return lengths.to_numpy()
    return np.asarray(lengths)


class EpochBatches(Sequence[np.ndarray]):
    """One epoch's batches as slices of a single index array: batch i is `order[starts[i]:starts[i] + size]`.

    Args:
        order: (N,) example indices, sorted by length within each bucket.
        starts: (num_batches,) start of each batch in `order`, in the epoch's batch order.
    """

    def __init__(self, order: np.ndarray, starts: np.ndarray, size: int):
        self.order, self.starts, self.size = order, starts, size

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return EpochBatches(self.order, self.starts[position], self.size)
        start = int(self.starts[position])
        return self.order[start : start + self.size]

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in self.starts.tolist():
            yield self.order[start : start + self.size]


class LengthBucketSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices of similar length, in an order that is a pure function of (seed, epoch).

    Per epoch: shuffle all indices; cut them into buckets of `batch_size * bucket_multiplier`;
    sort each bucket by length; cut into batches of `batch_size`; shuffle the batch order.
    (`batch_size` here means `num_replicas * batch_size`, the global batch: see below.)
    With `shuffle=False` both shuffles are skipped (buckets are still sorted, so batches are
    not in dataset order).

    With `num_replicas = R > 1` (DDP), `batch_size` is per rank: the sampler builds the GLOBAL batches
    of `R * batch_size` examples exactly as `num_replicas=1, batch_size=R * batch_size` would (same
    seed and epoch), and rank r takes part r of each, split as evenly as possible (`np.array_split`:
    sizes differ by at most one, lower ranks take the extra examples). So R ranks step through the
    same examples as one process with R times the batch, every rank yields `len(self)` batches, and
    no example is repeated or dropped. A global batch with fewer than R examples (only the last one,
    without `drop_last`) leaves the highest ranks an EMPTY batch; `shard_weight` says how to weight
    each part's mean loss so the averaged gradient is the global batch's mean (zero for an empty part).

    Use as `DataLoader(ds, batch_sampler=sampler, collate_fn=...)`; call `set_epoch(e)` before each
    epoch. To resume mid-epoch, skip the batches already done: the order does not depend on history.

    Args:
        lengths: (N,) lengths of the examples: `ds["length"]` (read via Arrow), a numpy array or a list.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        bucket_multiplier: int = 100,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if bucket_multiplier < 1:
            raise ValueError(f"bucket_multiplier must be at least 1, got {bucket_multiplier}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        lengths = _as_numpy(lengths)
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        self.batch_size = batch_size
        self.global_batch_size = batch_size * num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size = self.global_batch_size * bucket_multiplier
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches per epoch, the same on every rank: the number of global batches."""
        n = len(self.lengths)
        return n // self.global_batch_size if self.drop_last else math.ceil(n / self.global_batch_size)

    def epoch_batches(self) -> EpochBatches:
        """The global batches of the current epoch (of `num_replicas * batch_size`), before the split.

        Holds one (N,) index array; batches are slices of it handed out through a permuted array of
        batch starts, so an epoch costs no list of N / batch_size arrays.
        """
        n = len(self.lengths)
        size = self.global_batch_size
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch]))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.bucket_size):
            # Stable sort by length within the bucket: examples of equal length keep their shuffled
            # order (the order `np.lexsort((lengths[order], bucket))` gave, which resume relies on).
            bucket = order[start : start + self.bucket_size]
            bucket[:] = bucket[np.argsort(self.lengths[bucket], kind="stable")]
        starts = np.arange(0, n, size)  # (num_batches,)
        if self.drop_last and n % size:
            starts = starts[:-1]
        if self.shuffle:
            starts = starts[rng.permutation(len(starts))]
        return EpochBatches(order, starts, size)

    def shard(self, global_batch: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch (possibly empty when it has fewer examples than ranks)."""
        if self.num_replicas == 1:
            return global_batch
        return np.array_split(global_batch, self.num_replicas)[self.rank]

    def shard_weight(self, global_batch: np.ndarray) -> float:
        """Factor for this rank's per-example-mean loss on `shard(global_batch)`.

        DDP averages gradients over R ranks, so the update is the mean over ranks of each part's
        mean-loss gradient. Weighting part r (n_r of n examples) by n_r * R / n turns that into the
        mean over the whole global batch: (1/R) sum_r (n_r R / n)(1/n_r) sum_i g_i = (1/n) sum_i g_i,
        the gradient one process with batch R * batch_size takes. Exactly 1.0 for even parts.
        """
        if self.num_replicas == 1:
            return 1.0
        part = len(self.shard(global_batch))
        if part * self.num_replicas == len(global_batch):
            return 1.0
        return part * self.num_replicas / len(global_batch)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.epoch_batches():
            yield self.shard(batch).tolist()

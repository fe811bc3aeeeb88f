"""Ids -> padded batches: length-bucketed batch order, and collate functions that build tensors + masks.

Padding to each batch's own maximum over length-sorted buckets is what makes the fused LSTM fast
(NOTES.md: packing is 5.3x slower; sorted buckets 0.44x of padding to the global max).
Mask convention (STYLE.md 6): `pad_mask` is True AT PADDING.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID


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

    def epoch_batches(self) -> list[np.ndarray]:
        """The global batches of the current epoch (of `num_replicas * batch_size`), before the split."""
        n = len(self.lengths)
        size = self.global_batch_size
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch]))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        bucket = np.arange(n) // self.bucket_size
        # Sort by length within each bucket: lexsort's last key is the primary one.
        order = order[np.lexsort((self.lengths[order], bucket))]
        batches = [order[start : start + size] for start in range(0, n, size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

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


def collate_classification(examples: list[dict]) -> dict:
    """Encoded classification examples -> tensors.

    Returns:
        input_ids: (B, T) long, padded with PAD_ID to the batch's longest example.
        lengths: (B,) long.
        pad_mask: (B, T) bool, True at padding.
        labels: (B,) long class indices, or (B, num_labels) float multi-hot; only if the examples have labels.
    """
    input_ids, lengths = _pad([example["input_ids"] for example in examples])
    batch = {"input_ids": input_ids, "lengths": lengths, "pad_mask": _pad_mask(lengths, input_ids.shape[1])}
    if examples and "labels" in examples[0]:
        batch["labels"] = _labels(examples)
    return batch


def collate_summarization(examples: list[dict]) -> dict:
    """Encoded summarization examples -> tensors for a pointer-generator (See et al. 2017).

    Returns:
        src_ids: (B, S) long in-vocabulary ids (unk for OOV), PAD_ID padded: the encoder's input.
        src_ext_ids: (B, S) long extended ids (OOV -> vocab_size + i): where copy attention scatters.
        src_lengths: (B,) long; src_pad_mask: (B, S) bool, True at padding.
        max_oovs: int, the largest number of source OOVs in the batch (extra logits to allocate).
        oovs: list of B lists of strings, to turn extended ids back into words.
        When the examples have targets:
        dec_input_ids: (B, T) long, [BOS] + tgt_ids (in-vocabulary: the decoder embeds them).
        target_ids: (B, T) long, tgt_ext_ids + [EOS] (extended: copied words are learnable), PAD_ID padded.
        tgt_lengths: (B,) long, len(tgt_ids) + 1; tgt_pad_mask: (B, T) bool, True at padding.
    """
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
        dec_input_ids, tgt_lengths = _pad([[BOS_ID, *example["tgt_ids"]] for example in examples])
        target_ids, _ = _pad([[*example["tgt_ext_ids"], EOS_ID] for example in examples])
        batch.update(
            dec_input_ids=dec_input_ids,
            target_ids=target_ids,
            tgt_lengths=tgt_lengths,
            tgt_pad_mask=_pad_mask(tgt_lengths, dec_input_ids.shape[1]),
        )
    return batch


def collate_features(examples: list[dict]) -> dict:
    """Float sequences (time series) -> tensors.

    Each example's "features" is (T,) or (T, D) numbers.

    Returns:
        features: (B, T, D) float32, zero padded; lengths: (B,) long; pad_mask: (B, T) bool, True at padding;
        labels: as in `collate_classification`, when present.
    """
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

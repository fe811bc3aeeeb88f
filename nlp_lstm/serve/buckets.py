"""Length buckets for one micro-batch: which texts share a forward pass.

An LSTM batch runs every row to its longest row, and each time step has a fixed cost besides its
per-row work (kernel calls, the recurrent matmul's set-up). So a bucket of rows `b` costs about

    cost(b) = max_len(b) * (|b| + K)          K: the per-step overhead, in rows' worth of work

A micro-batch gathered from concurrent requests holds texts of any length (VADER: 2 to 128 tokens),
so one forward pass over it is mostly padding (60% on 64 random VADER texts), while many small
buckets pay K on every step. `plan_buckets` sorts the lengths and picks the partition into
contiguous buckets of least total cost, by dynamic programming (O(n log n): sizes are powers of 2).

K scales with the model: per row and step an LSTM layer does 4H(D + H) multiply-adds per direction
(four gates over the input and the previous hidden state), against a roughly constant per-step
overhead. `STEP_OVERHEAD_MACS` was fitted on this project's CPU from predict with batches of 16 and
64 on sorted VADER texts (sentiment model, H = D = 256: K = 4); benchmarks/bench_serve.py --buckets
measures the plan against fixed bucket sizes.

Shapes come from a small ladder: bucket sizes are powers of two and each bucket is padded up to a
`padded_length`. oneDNN (torch's CPU LSTM) builds a primitive per input shape (a cache miss costs
a build) and caches up to `server.PRIMITIVE_CACHE_CAPACITY` of them; the ladder keeps the shapes
that traffic meets to a few dozen common ones (at most 7 sizes x 30 lengths up to 128 tokens), so
they stay cached. Free shapes (any of 64 sizes x 128 lengths) missed the cache far more often.
"""

from __future__ import annotations

from typing import Sequence

STEP_OVERHEAD_MACS = 2_000_000  # fixed cost of one time step, in multiply-adds (see the module docstring)


def step_rows(config) -> float:
    """K for a `ClassifierConfig`: rows' worth of work that one time step costs besides its rows."""
    inputs = config.embedding_dim if config.vocab_size is not None else config.input_size
    macs_per_row = 4 * config.hidden_size * (inputs + config.hidden_size)
    return STEP_OVERHEAD_MACS / macs_per_row


def padded_length(length: int) -> int:
    """The time steps a bucket whose longest text has `length` tokens runs (padding is masked).

    Exact up to 8, then up to the next multiple of 4 (to 64), 8 (to 128) and 16: at most 3 to 15
    extra steps (under 12%), and 30 distinct lengths up to 128.
    """
    for limit, step in ((8, 1), (64, 4), (128, 8)):
        if length <= limit:
            return -(-length // step) * step
    return -(-length // 16) * 16


def plan_buckets(lengths: Sequence[int], *, step_rows: float) -> list[list[int]]:
    """Indices into `lengths`, grouped into buckets of least total `padded_length(max) * (rows + K)`.

    Buckets are contiguous runs of the lengths sorted ascending (an optimal partition always is:
    swapping a long and a short text between two buckets never lowers either maximum), and hold a
    power of two of texts (see the module docstring).
    """
    count = len(lengths)
    if count == 0:
        return []
    order = sorted(range(count), key=lengths.__getitem__)
    steps = [padded_length(lengths[i]) for i in order]
    sizes = [1 << k for k in range(count.bit_length())]  # 1, 2, 4, ... <= count
    best = [0.0] + [float("inf")] * count  # best[j]: least cost of the first j sorted texts
    take = [0] * (count + 1)  # take[j]: the size of the last bucket in that plan
    for end in range(1, count + 1):
        longest = steps[end - 1]  # the last bucket is sorted[end - size : end]
        for size in sizes:
            if size > end:
                break
            cost = best[end - size] + longest * (size + step_rows)
            if cost < best[end]:
                best[end], take[end] = cost, size
    buckets, end = [], count
    while end > 0:
        buckets.append(order[end - take[end] : end])
        end -= take[end]
    return buckets[::-1]


def fixed_buckets(lengths: Sequence[int], *, size: int) -> list[list[int]]:
    """Indices sorted by length, in chunks of `size` (what `Classifier.predict` does)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + size] for i in range(0, len(order), size)]

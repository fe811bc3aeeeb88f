"""Length buckets of a micro-batch: the planned partition is the cheapest one, found by brute force."""

import itertools
import random

import pytest

from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.serve.buckets import fixed_buckets, padded_length, plan_buckets, step_rows

LADDER = set(range(1, 9)) | set(range(12, 65, 4)) | set(range(72, 129, 8))  # written out by hand


def cost(lengths, buckets, k):
    return sum(padded_length(max(lengths[i] for i in bucket)) * (len(bucket) + k) for bucket in buckets)


def cheapest_by_brute_force(lengths, k):
    """Every partition of the sorted lengths into contiguous runs of 1, 2, 4, 8... (of 2^(n-1) cuts)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):
        buckets, current = [], [order[0]]
        for index, cut in zip(order[1:], cuts):
            if cut:
                buckets.append(current)
                current = []
            current.append(index)
        buckets.append(current)
        if all(len(bucket) & (len(bucket) - 1) == 0 for bucket in buckets):
            best = min(best, cost(lengths, buckets, k))
    return best


@pytest.mark.parametrize("k", [0.5, 4.0, 30.0])
@pytest.mark.parametrize("seed", range(6))
def test_the_plan_costs_what_the_cheapest_partition_costs(k, seed):
    rng = random.Random(seed)
    lengths = [rng.choice([1, 2, 3, 5, 8, 13, 40, 128]) for _ in range(rng.randint(1, 11))]
    plan = plan_buckets(lengths, step_rows=k)
    assert sorted(i for bucket in plan for i in bucket) == list(range(len(lengths)))  # each text once
    assert all(len(bucket) in (1, 2, 4, 8) for bucket in plan)
    assert cost(lengths, plan, k) == pytest.approx(cheapest_by_brute_force(lengths, k))


def test_a_large_overhead_keeps_few_passes_and_none_splits_every_length():
    lengths = [3, 50, 3, 50, 7, 9, 9, 9]
    assert plan_buckets(lengths, step_rows=1000.0) == [[0, 2, 4, 5, 6, 7, 1, 3]]
    free = plan_buckets(lengths, step_rows=0.0)  # no per-step cost: no text is ever padded
    assert cost(lengths, free, 0.0) == sum(padded_length(n) for n in lengths)
    assert plan_buckets([], step_rows=4.0) == []
    assert fixed_buckets(lengths, size=3) == [[0, 2, 4], [5, 6, 7], [1, 3]]


def test_padded_lengths_follow_the_ladder():
    padded = [padded_length(n) for n in range(1, 129)]
    assert all(p >= n for n, p in zip(range(1, 129), padded))  # never shorter than the text
    assert set(padded) == LADDER  # 30 shapes up to 128 tokens
    assert [padded_length(n) for n in (8, 9, 64, 65, 129, 200)] == [8, 12, 64, 72, 144, 208]


def test_step_rows_shrink_as_the_model_grows():
    small = ClassifierConfig(num_labels=2, vocab_size=100, embedding_dim=16, hidden_size=16)
    large = ClassifierConfig(num_labels=2, vocab_size=100, embedding_dim=256, hidden_size=256)
    assert step_rows(large) == pytest.approx(2_000_000 / (4 * 256 * 512))  # ~3.8 rows: the sentiment model
    assert step_rows(small) > 100 * step_rows(large)  # a tiny model: one pass is cheapest

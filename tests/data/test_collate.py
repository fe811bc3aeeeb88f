import gzip
import json
from contextlib import contextmanager
from pathlib import Path

import datasets
import numpy as np
import pytest

from tests.helpers import ROOT
import torch

from nlp_lstm.data.collate import collate_classification, collate_features, collate_summarization, take_rows
from nlp_lstm.data.sampler import column_to_numpy, LengthBucketSampler
from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, UNK_ID

VADER = ROOT / "data" / "vader_sentiment.jsonl.gz"


@pytest.fixture(scope="module")
def vader_lengths():
    # Whitespace token counts: a stand-in for tokenizer lengths with the same spread, and fast.
    with gzip.open(VADER, "rt", encoding="utf-8") as file:
        return np.array([max(1, len(json.loads(line)["text"].split())) for line in file])


def padding(batches, lengths):
    return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)


def epoch(sampler, number):
    sampler.set_epoch(number)
    return list(sampler)


def test_every_index_once_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 50, size=1003)
    sampler = LengthBucketSampler(lengths, batch_size=16, bucket_multiplier=4, seed=3)
    batches = epoch(sampler, 0)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert all(len(b) == 16 for b in batches if len(b) != 1003 % 16)
    dropped = LengthBucketSampler(lengths, batch_size=16, drop_last=True)
    assert len(list(dropped)) == len(dropped) == 62 and all(len(b) == 16 for b in dropped)


def test_order_is_a_function_of_seed_and_epoch():
    lengths = np.arange(500) % 37
    make = lambda seed: LengthBucketSampler(lengths, batch_size=8, bucket_multiplier=5, seed=seed)  # noqa: E731
    a, b = make(1), make(1)
    first = epoch(a, 4)
    epoch(b, 0), epoch(b, 1)  # history does not matter
    assert epoch(b, 4) == first
    assert epoch(a, 5) != first
    assert epoch(make(2), 4) != first


def test_batches_are_sorted_within_buckets_without_shuffle():
    lengths = np.array([5, 1, 4, 2, 3, 9, 7, 8])
    sampler = LengthBucketSampler(lengths, batch_size=2, bucket_multiplier=2, shuffle=False)
    assert list(sampler) == [[1, 3], [2, 0], [4, 6], [7, 5]]  # buckets [5,1,4,2] and [3,9,7,8], each sorted


def test_bucketing_cuts_padding_on_real_vader_lengths(vader_lengths):
    batch_size = 32
    rng = np.random.default_rng(0)
    random_batches = np.array_split(rng.permutation(len(vader_lengths)), len(vader_lengths) // batch_size)
    bucketed = list(LengthBucketSampler(vader_lengths, batch_size=batch_size, seed=0))
    ratio = padding([np.array(b) for b in bucketed], vader_lengths) / padding(random_batches, vader_lengths)
    assert ratio < 0.05, ratio


def test_ranks_get_equal_disjoint_batches():
    lengths = np.random.default_rng(1).integers(1, 30, size=203)
    ranks = [LengthBucketSampler(lengths, batch_size=10, num_replicas=3, rank=r, seed=7) for r in range(3)]
    per_rank = [epoch(s, 2) for s in ranks]
    assert {len(batches) for batches in per_rank} == {len(ranks[0])} == {7}  # ceil(203 / 30) global batches
    seen = [[i for b in batches for i in b] for batches in per_rank]
    assert sorted(seen[0] + seen[1] + seen[2]) == list(range(203))  # every example once: no padding, no repeats
    uneven = [list(LengthBucketSampler(lengths, batch_size=25, num_replicas=4, rank=r)) for r in range(4)]
    assert {len(b) for b in uneven} == {3}
    assert sorted(i for batches in uneven for b in batches for i in b) == list(range(203))


@pytest.mark.parametrize("replicas, batch_size, count", [(2, 4, 57), (3, 5, 100), (4, 3, 49), (2, 8, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_the_global_batches_of_one_process(replicas, batch_size, count, drop_last):
    # R ranks with batch b see, step by step, the examples one process sees with batch R * b.
    lengths = np.random.default_rng(count).integers(1, 40, size=count)
    single = LengthBucketSampler(lengths, batch_size=replicas * batch_size, bucket_multiplier=3, seed=5,
                                 drop_last=drop_last)
    ranks = [LengthBucketSampler(lengths, batch_size=batch_size, bucket_multiplier=3, seed=5, drop_last=drop_last,
                                 num_replicas=replicas, rank=r) for r in range(replicas)]
    for number in (0, 3):
        expected = epoch(single, number)
        parts = [epoch(sampler, number) for sampler in ranks]
        assert {len(p) for p in parts} == {len(expected)} == {len(s) for s in ranks}
        for step, global_batch in enumerate(expected):
            shards = [part[step] for part in parts]
            assert [i for shard in shards for i in shard] == global_batch  # rank order = the batch's order
            assert max(map(len, shards)) - min(map(len, shards)) <= 1  # as even as possible
            weights = [s.shard_weight(np.array(global_batch)) for s in ranks]
            # Weighted per-rank means, averaged over ranks, are the global mean.
            assert sum(w * len(shard) / max(1, len(shard)) for w, shard in zip(weights, shards)) == pytest.approx(replicas)
            assert all(w == 1.0 for w in weights) or len(global_batch) % replicas


def test_lengths_from_a_dataset_column():
    ds = datasets.Dataset.from_dict({"length": [3, 1, 2, 5], "x": ["a"] * 4}).select([3, 0, 2])
    lengths = column_to_numpy(ds, "length")
    assert isinstance(lengths, np.ndarray) and lengths.tolist() == [5, 3, 2]
    assert len(LengthBucketSampler(lengths, batch_size=2)) == 2
    from_column = LengthBucketSampler(ds["length"], batch_size=2, shuffle=False)  # lazy datasets Column
    assert from_column.lengths.tolist() == [5, 3, 2]


def test_collate_classification():
    batch = collate_classification([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch["input_ids"].dtype == torch.long
    assert batch["lengths"].tolist() == [3, 1]
    assert batch["pad_mask"].tolist() == [[False, False, False], [False, True, True]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0]
    multi = collate_classification([{"input_ids": [5], "labels": [1.0, 0.0]}, {"input_ids": [6], "labels": [0.0, 1.0]}])
    assert multi["labels"].shape == (2, 2) and multi["labels"].dtype == torch.float32
    assert "labels" not in collate_classification([{"input_ids": [5]}])


def test_collate_summarization():
    vocab = 50
    examples = [
        {"src_ids": [5, UNK_ID, 6], "src_ext_ids": [5, vocab, 6], "oovs": ["Kim"], "length": 3,
         "tgt_ids": [UNK_ID, 7, EOS_ID], "tgt_ext_ids": [vocab, 7, EOS_ID], "tgt_length": 3},
        {"src_ids": [8], "src_ext_ids": [8], "oovs": [], "length": 1, "tgt_ids": [EOS_ID], "tgt_ext_ids": [EOS_ID],
         "tgt_length": 1},
        # A reference cut at the length limit: no EOS, so the model is not taught to stop there.
        {"src_ids": [9], "src_ext_ids": [9], "oovs": [], "length": 1, "tgt_ids": [9, 10], "tgt_ext_ids": [9, 10],
         "tgt_length": 2},
    ]
    batch = collate_summarization(examples)
    assert batch["src_ids"].tolist() == [[5, UNK_ID, 6], [8, PAD_ID, PAD_ID], [9, PAD_ID, PAD_ID]]
    assert batch["src_ext_ids"].tolist() == [[5, vocab, 6], [8, PAD_ID, PAD_ID], [9, PAD_ID, PAD_ID]]
    assert batch["src_lengths"].tolist() == [3, 1, 1]
    assert batch["src_pad_mask"].tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    assert batch["max_oovs"] == 1 and batch["oovs"] == [["Kim"], [], []]
    assert batch["dec_input_ids"].tolist() == [[BOS_ID, UNK_ID, 7], [BOS_ID, PAD_ID, PAD_ID], [BOS_ID, 9, PAD_ID]]
    assert batch["target_ids"].tolist() == [[vocab, 7, EOS_ID], [EOS_ID, PAD_ID, PAD_ID], [9, 10, PAD_ID]]
    assert batch["tgt_lengths"].tolist() == [3, 1, 2]
    assert batch["tgt_pad_mask"].tolist() == [[False, False, False], [False, True, True], [False, False, True]]
    arrow = collate_summarization(take_rows(datasets.Dataset.from_list(examples), [0, 1, 2]))
    for key in ("dec_input_ids", "target_ids", "tgt_lengths", "tgt_pad_mask"):
        assert torch.equal(arrow[key], batch[key]), key
    sources_only = collate_summarization([{k: v for k, v in e.items() if not k.startswith("tgt")} for e in examples])
    assert "dec_input_ids" not in sources_only and sources_only["src_ids"].shape == (3, 3)


def test_collate_features():
    batch = collate_features([{"features": [[1, 2], [3, 4], [5, 6]], "labels": 2}, {"features": [[7, 8]], "labels": 0}])
    assert batch["features"].shape == (2, 3, 2) and batch["features"].dtype == torch.float32
    assert batch["features"][1].tolist() == [[7.0, 8.0], [0.0, 0.0], [0.0, 0.0]]
    assert batch["lengths"].tolist() == [3, 1]
    assert batch["pad_mask"].tolist() == [[False, False, False], [False, True, True]]
    assert batch["labels"].tolist() == [2, 0]
    univariate = collate_features([{"features": [0.5, 1.5]}, {"features": [2.5]}])
    assert univariate["features"].shape == (2, 2, 1) and "labels" not in univariate


def test_dataloader_end_to_end():
    ds = datasets.Dataset.from_dict({"input_ids": [[5] * n for n in [3, 1, 4, 1, 5, 9, 2, 6]], "length": [3, 1, 4, 1, 5, 9, 2, 6], "labels": [0, 1] * 4})
    sampler = LengthBucketSampler(column_to_numpy(ds, "length"), batch_size=3, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_classification)
    total = 0
    for batch in loader:
        assert batch["input_ids"].shape[1] == int(batch["lengths"].max())
        total += len(batch["lengths"])
    assert total == 8


def reference_epoch_batches(lengths, *, batch_size, seed, epoch, shuffle, bucket_multiplier, drop_last):
    """`LengthBucketSampler.epoch_batches` as it was before it stopped building a list of arrays per
    epoch, kept verbatim: resumed runs and published pipeline results depend on this exact order."""
    n = len(lengths)
    size, bucket_size = batch_size, batch_size * bucket_multiplier
    rng = np.random.Generator(np.random.PCG64([seed, epoch]))
    order = rng.permutation(n) if shuffle else np.arange(n)
    bucket = np.arange(n) // bucket_size
    order = order[np.lexsort((lengths[order], bucket))]
    batches = [order[start : start + size] for start in range(0, n, size)]
    if drop_last and batches and len(batches[-1]) < size:
        batches.pop()
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


@pytest.mark.parametrize("config", range(60))
def test_epoch_order_matches_the_reference_algorithm(config):
    rng = np.random.default_rng(config)
    n = int(rng.choice([0, 1, 7, int(rng.integers(2, 400)), int(rng.integers(400, 3000))]))
    # Few distinct lengths give many ties: the within-bucket sort must be stable like lexsort.
    lengths = rng.integers(1, int(rng.choice([3, 40, 500])), size=n)
    options = dict(shuffle=bool(rng.integers(0, 5)), seed=int(rng.integers(0, 1000)),
                   bucket_multiplier=int(rng.integers(1, 12)), drop_last=bool(rng.integers(0, 2)))  # fmt: skip
    batch_size, replicas = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    samplers = [LengthBucketSampler(lengths, batch_size=batch_size, num_replicas=replicas, rank=r, **options)
                for r in range(replicas)]  # fmt: skip
    for number in (0, int(rng.integers(1, 50))):
        expected = reference_epoch_batches(lengths, batch_size=batch_size * replicas, epoch=number, **options)
        for sampler in samplers:
            sampler.set_epoch(number)
        batches = samplers[0].epoch_batches()
        assert len(batches) == len(expected) == len(samplers[0])
        assert [b.tolist() for b in batches] == [b.tolist() for b in expected]
        assert [batches[i].tolist() for i in range(len(batches))] == [b.tolist() for b in expected]  # random access
        for rank, sampler in enumerate(samplers):
            assert list(sampler) == [np.array_split(b, replicas)[rank].tolist() for b in expected]


def rows_of(dataset, indices):
    """What the loop read before the Arrow path: `dataset[indices]` as a list of dicts."""
    columns = dataset[list(indices)]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def assert_same_batch(fast, slow):
    assert fast.keys() == slow.keys()
    for key, expected in slow.items():
        if torch.is_tensor(expected):
            assert fast[key].dtype == expected.dtype and fast[key].shape == expected.shape, key
            assert torch.equal(fast[key], expected), key
        else:
            assert fast[key] == expected, key


@pytest.fixture
def no_row_path(monkeypatch):
    """Make the row-by-row helpers fail, so a test sees the Arrow path run (not fall back to rows)."""
    from nlp_lstm.data import collate as batching

    @contextmanager
    def disabled():
        with monkeypatch.context() as patch:
            for name in ("_pad", "_pad_mask", "_labels"):
                patch.setattr(batching, name, lambda *args, **kwargs: pytest.fail("took the row path"))
            yield

    return disabled


def ragged_ids(rng, count, *, empty=True):
    return [rng.integers(4, 1000, int(n)).tolist() for n in rng.integers(0 if empty else 1, 30, count)]


@pytest.mark.parametrize("labels", ["binary", "multiclass", "multilabel", "float", "bool", "none"])
def test_arrow_batches_collate_like_rows(labels, no_row_path):
    rng = np.random.default_rng(len(labels))
    count = 200
    # Zero-length rows too, although `encode_classification` never writes one ([unk] for an empty text).
    data = {"input_ids": ragged_ids(rng, count), "length": rng.integers(0, 30, count).tolist()}
    data["labels"] = {
        "binary": rng.integers(0, 2, count).tolist(),
        "multiclass": rng.integers(0, 7, count).tolist(),
        "multilabel": rng.integers(0, 2, (count, 5)).astype(np.float32).tolist(),
        "float": rng.normal(size=count).tolist(),
        "bool": rng.integers(0, 2, count).astype(bool).tolist(),
        "none": None,
    }[labels]
    if data["labels"] is None:
        del data["labels"]
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32")), "length": datasets.Value("int32")})
    if labels == "multilabel":
        features["labels"] = datasets.List(datasets.Value("float32"))
    elif "labels" in data:
        features["labels"] = {"float": datasets.Value("float64"), "bool": datasets.Value("bool")}.get(
            labels, datasets.Value("int64"))
    plain = datasets.Dataset.from_dict(data, features=features)
    # A cache file holds one chunk per `writer_batch_size` rows: the chunked table takes the other gather.
    chunked = plain.map(lambda batch: batch, batched=True, writer_batch_size=16, keep_in_memory=True)
    assert chunked.data.table.column("input_ids").num_chunks > 1
    views = (plain, plain.shuffle(seed=1), plain.select(range(50, 150)), chunked, chunked.shuffle(seed=2))
    for dataset in views:  # with an index mapping too
        for size in (1, 3, 32):
            for _ in range(5):
                indices = rng.choice(len(dataset), size, replace=False)
                with no_row_path():
                    fast = collate_classification(take_rows(dataset, indices))
                assert_same_batch(fast, collate_classification(rows_of(dataset, indices)))
    for dataset in (plain, chunked):
        assert_same_batch(collate_classification(take_rows(dataset, [-1, 0, -200])),
                          collate_classification(rows_of(dataset, [-1, 0, -200])))  # fmt: skip
        with pytest.raises(IndexError):
            take_rows(dataset, [0, 200])


def test_arrow_rows_read_as_a_list_of_dicts():
    dataset = datasets.Dataset.from_dict({"input_ids": [[5, 6], [7], [8, 9, 10]], "labels": [0, 1, 0]})
    rows = take_rows(dataset.select([2, 0, 1]), [0, 2])  # mapped: rows 2 and 1 of the table
    assert len(rows) == 2 and rows[0] == {"input_ids": [8, 9, 10], "labels": 0} and list(rows)[1]["labels"] == 1
    assert take_rows(dataset.with_format(columns=["labels"]), [1]).column_names == ["labels"]  # as dataset[[1]]


def test_arrow_summarization_batches_collate_like_rows(no_row_path):
    rng = np.random.default_rng(0)
    count, vocab = 120, 1000
    src = ragged_ids(rng, count, empty=False)
    oovs = [[f"w{i}" for i in range(int(k))] for k in rng.integers(0, 4, count)]
    tgt = ragged_ids(rng, count)  # empty targets do occur (an empty summary)
    data = {
        "src_ids": src, "src_ext_ids": [[i + vocab * (i % 7 == 0) for i in row] for row in src], "oovs": oovs,
        "length": [len(row) for row in src], "tgt_ids": tgt,
        "tgt_ext_ids": [[i + vocab * (i % 5 == 0) for i in row] for row in tgt], "tgt_length": [len(row) for row in tgt],
    }  # fmt: skip
    dataset = datasets.Dataset.from_dict(data)
    sources_only = dataset.remove_columns(["tgt_ids", "tgt_ext_ids", "tgt_length"])
    for ds in (dataset, dataset.shuffle(seed=2), sources_only):
        for size in (1, 4, 16):
            indices = rng.choice(len(ds), size, replace=False)
            with no_row_path():
                fast = collate_summarization(take_rows(ds, indices))
            assert_same_batch(fast, collate_summarization(rows_of(ds, indices)))


def test_arrow_feature_batches_collate_like_rows(no_row_path):
    rng = np.random.default_rng(0)
    count = 60
    multivariate = [rng.normal(size=(int(t), 3)).tolist() for t in rng.integers(1, 20, count)]
    univariate = [rng.normal(size=int(t)).tolist() for t in rng.integers(1, 20, count)]
    for values in (multivariate, univariate):
        dataset = datasets.Dataset.from_dict({"features": values, "labels": rng.integers(0, 3, count).tolist()})
        for size in (1, 8):
            indices = rng.choice(count, size, replace=False)
            with no_row_path():
                fast = collate_features(take_rows(dataset, indices))
            assert_same_batch(fast, collate_features(rows_of(dataset, indices)))
    mixed = datasets.Dataset.from_dict({"features": [[[1.0, 2.0]], [[3.0]]]})  # steps of different sizes
    with pytest.raises(ValueError, match="different feature sizes"):
        collate_features(take_rows(mixed, [0, 1]))  # the row path's error, not a silent reshape

"""Variable lengths: our length-bucketed batches against padding every batch to the maximum length.

One epoch over the same examples, both ways, alternated round-robin (medians over rounds):
- baseline (1.0): random batches, every row padded to the corpus maximum, one fused LSTM run over
  all padded steps (lengths ignored; the cost floor of pad-to-max).
- ours: a `datasets.Dataset` of the ids read as `fit` reads it, `LengthBucketSampler` +
  `iterate_batches` + `collate_classification` (each batch padded to its own longest row), then
  TextClassifier with lengths (our LSTM runs only real steps).
Ratio = ours / baseline epoch time; goal <= 0.5 in training and inference.

Length distributions: uniform 10..200 (padded to 200), and the real VADER corpus
(`data/vader_sentiment.jsonl.gz`, whitespace token counts, capped at the sentiment pipeline's
max_length 128; padded to the corpus maximum after the cap, i.e. 128, as a fixed `maxlen` would).

    .venv/bin/python benchmarks/bench_batching.py [--threads 1 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gzip
import json

import common
import datasets
import numpy as np
import torch

from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.data.collate import collate_classification
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.training.loop import iterate_batches

BATCH, HIDDEN, EMBEDDING, VOCAB = 32, 128, 64, 20000
EXAMPLES = 640  # 20 batches per epoch
VADER_MAX_LENGTH = 128


def vader_lengths() -> np.ndarray:
    with gzip.open(common.DATA / "vader_sentiment.jsonl.gz", "rt") as file:
        counts = [len(json.loads(line)["text"].split()) for line in file]
    return np.clip(np.asarray(counts), 1, VADER_MAX_LENGTH)


def epoch_runners(lengths: np.ndarray, *, train: bool, pad_to: int):
    """(ours, padded) callables, each running one epoch over the same examples."""
    rng = np.random.default_rng(0)
    examples = [{"input_ids": rng.integers(4, VOCAB, int(n)).tolist(), "labels": int(rng.integers(0, 2))}
                for n in lengths]  # fmt: skip
    max_length = pad_to
    # The same examples as a Dataset with the column types `encode_classification` writes, read as `fit` does.
    dataset = datasets.Dataset.from_dict({
        "input_ids": [e["input_ids"] for e in examples], "length": lengths.tolist(),
        "labels": [e["labels"] for e in examples],
    }, features=datasets.Features({
        "input_ids": datasets.List(datasets.Value("int32")), "length": datasets.Value("int32"),
        "labels": datasets.Value("int64"),
    }))  # fmt: skip
    model = TextClassifier(ClassifierConfig(
        num_labels=2, task="binary", vocab_size=VOCAB, embedding_dim=EMBEDDING, hidden_size=HIDDEN,
        bidirectional=False, pooling="last", dropout=0.0,
    ))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train(train)
    sampler = LengthBucketSampler(lengths, batch_size=BATCH, shuffle=True, seed=0)

    # Baseline batches: random order, padded to the corpus maximum; built once, outside the timing
    # (a generous baseline: its collate is free).
    order = rng.permutation(len(examples))
    padded_batches = []
    for start in range(0, len(order), BATCH):
        chunk = [examples[i] for i in order[start:start + BATCH]]
        ids = torch.zeros(len(chunk), max_length, dtype=torch.long)
        for row, example in enumerate(chunk):
            ids[row, :len(example["input_ids"])] = torch.tensor(example["input_ids"])
        full = torch.full((len(chunk),), max_length)
        padded_batches.append((ids, full, torch.zeros_like(ids, dtype=torch.bool),
                               torch.tensor([e["labels"] for e in chunk])))  # fmt: skip

    def step(inputs, lengths_, pad_mask, labels):
        if train:
            loss = model.loss(model(inputs, lengths_, pad_mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(inputs, lengths_, pad_mask)

    epoch = [0]

    def ours():
        sampler.set_epoch(epoch[0])
        epoch[0] += 1
        for batch in iterate_batches(dataset, sampler, collate_classification, torch.device("cpu")):
            step(batch["input_ids"], batch["lengths"], batch["pad_mask"], batch["labels"])

    def padded():
        for batch in padded_batches:
            step(*batch)

    return ours, padded


def measure(threads: int, rounds: int) -> list[tuple]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    corpus = vader_lengths()
    distributions = {
        "uniform 10..200": np.random.default_rng(1).integers(10, 201, EXAMPLES),
        "VADER (whitespace)": np.random.default_rng(2).choice(corpus, EXAMPLES, replace=False),
    }
    pad_to = {"uniform 10..200": 200, "VADER (whitespace)": int(corpus.max())}
    variants, info = {}, {}
    for name, lengths in distributions.items():
        info[name] = (int(np.median(lengths)), pad_to[name])
        for mode in ("train", "infer"):
            ours, padded = epoch_runners(lengths, train=mode == "train", pad_to=pad_to[name])
            variants[f"{name}|{mode}|ours"] = ours
            variants[f"{name}|{mode}|padded"] = padded
    medians = common.race(variants, rounds=rounds, warmup=1)
    rows = []
    for name, (median_length, max_length) in info.items():
        for mode in ("train", "infer"):
            ours_s, padded_s = medians[f"{name}|{mode}|ours"], medians[f"{name}|{mode}|padded"]
            ratio = ours_s / padded_s
            rows.append((f"{mode} {name}", threads, f"{median_length}/{max_length}", 1e3 * ours_s, 1e3 * padded_s,
                         ratio, common.verdict(ratio, 0.5, at_least=False)))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch intra-op threads to try")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per variant")
    args = parser.parse_args()
    print(common.machine_line(threads=args.threads[0]))
    print(f"{EXAMPLES} examples/epoch, batch {BATCH}, embedding {EMBEDDING}, hidden {HIDDEN}; rounds {args.rounds}; "
          "ratio = bucketed epoch time / padded-to-max epoch time")
    rows = [row for threads in args.threads for row in measure(threads, args.rounds)]
    common.print_table("Variable lengths (target 5: <= 0.5x padded-to-max)", rows,
                       ("epoch", "threads", "median len/pad to", "ours ms", "padded ms", "ratio", "goal"))


if __name__ == "__main__":
    main()

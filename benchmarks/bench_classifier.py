"""Library overhead: our TextClassifier trained and run the way `fit` does it, against a bare
hand-written `torch.nn.LSTM` loop of the same sizes, side by side in one process.

Rows (ratio = bare time / ours time, i.e. our throughput relative to bare; goal >= 0.9):
- "fit step, token ids": a datasets.Dataset of ids read through our LengthBucketSampler,
  `iterate_batches` and `collate_classification`, then TextClassifier, loss, backward, gradient
  clipping, AdamW and the LR schedule, exactly as `nlp_lstm/training/loop.py::fit` runs a step;
  vs Embedding -> nn.LSTM -> Linear on pre-built tensor batches, BCE, backward, Adam.
- "model step, features": the seed recipe's shape (float features, no embedding, no data pipeline):
  TextClassifier(input_size=64, pooling="last") vs nn.LSTM -> Linear, both Adam.
Inference rows: the same without gradients (ours through `iterate_batches` + eval mode).

    .venv/bin/python benchmarks/bench_classifier.py [--threads 1 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import itertools

import common  # noqa: F401  (puts the repository root on sys.path)
import torch
import torch.nn.functional as F
from torch import nn

from nlp_lstm.config import TrainConfig
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.classifier import TextClassifier

BATCH, TIME, FEATURES, HIDDEN, VOCAB, EMBEDDING = 32, 100, 64, 128, 20000, 64
NUM_BATCHES = 16  # distinct batches cycled through, so caches do not hold one batch


class BareLSTM(nn.Module):
    """The hand-written reference: [Embedding ->] nn.LSTM -> last hidden state -> Linear(1)."""

    def __init__(self, *, vocab_size: int | None, input_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size) if vocab_size else None
        self.lstm = nn.LSTM(input_size, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, inputs):
        embedded = self.embedding(inputs) if self.embedding is not None else inputs
        _, (h_n, _) = self.lstm(embedded)
        return self.head(h_n[-1])  # (B, 1)


def seed_model() -> TextClassifier:
    """The seed's Keras recipe, LSTM(128) on 64 features -> Dense(1, sigmoid), as our classifier."""
    return TextClassifier(ClassifierConfig(
        num_labels=2, task="binary", input_size=FEATURES, hidden_size=HIDDEN, bidirectional=False,
        pooling="last", dropout=0.0,
    ))  # fmt: skip


def feature_batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(BATCH, TIME, FEATURES, generator=generator),
             torch.randint(0, 2, (BATCH,), generator=generator).float()) for _ in range(NUM_BATCHES)]  # fmt: skip


def seed_steps(model: TextClassifier, batches):
    """(train_step, infer_step) for our seed-recipe model on pre-built feature batches: forward,
    BCE, backward, Adam step, as the training loop does (no data pipeline: Keras gets arrays too)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lengths, pad_mask = torch.full((BATCH,), TIME), torch.zeros(BATCH, TIME, dtype=torch.bool)
    cycle = itertools.cycle(batches)

    def train_step():
        model.train()
        inputs, labels = next(cycle)
        loss = model.loss(model(inputs, lengths, pad_mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def infer_step():
        model.eval()
        inputs, _ = next(cycle)
        return model.scores(model(inputs, lengths, pad_mask))

    return train_step, infer_step


def bare_steps(model: BareLSTM, batches):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cycle = itertools.cycle(batches)

    def train_step():
        inputs, labels = next(cycle)
        loss = F.binary_cross_entropy_with_logits(model(inputs).squeeze(-1), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def infer_step():
        inputs, _ = next(cycle)
        return torch.sigmoid(model(inputs))

    return train_step, infer_step


def fit_steps():
    """(train_step, infer_step) of the real `fit` step on a datasets.Dataset of token ids."""
    import datasets

    from nlp_lstm.data.sampler import LengthBucketSampler
    from nlp_lstm.training.loop import build_optimizer, build_scheduler, iterate_batches
    from nlp_lstm.training.tasks import ClassificationTask

    generator = torch.Generator().manual_seed(1)
    count = BATCH * NUM_BATCHES
    ids = torch.randint(4, VOCAB, (count, TIME), generator=generator)
    labels = torch.randint(0, 2, (count,), generator=generator)
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32")), "length": datasets.Value("int32"),
                                  "labels": datasets.Value("int64")})  # what `encode_classification` writes
    dataset = datasets.Dataset.from_dict({"input_ids": ids.tolist(), "length": [TIME] * count, "labels": labels.tolist()},
                                         features=features)
    model = TextClassifier(ClassifierConfig(
        num_labels=2, task="binary", vocab_size=VOCAB, embedding_dim=EMBEDDING, hidden_size=HIDDEN,
        bidirectional=False, pooling="last", dropout=0.0,
    ))  # fmt: skip
    config = TrainConfig(batch_size=BATCH)
    task = ClassificationTask(["negative", "positive"])
    sampler = LengthBucketSampler(dataset["length"], batch_size=BATCH, shuffle=True, seed=0)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps=10**9)
    device = torch.device("cpu")

    def endless():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from iterate_batches(dataset, sampler, task.collate, device)

    batches = endless()

    def train_step():  # the body of fit's inner loop
        model.train()
        batch = next(batches)
        loss = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        scheduler.step()
        return loss.item()

    @torch.no_grad()
    def infer_step():  # what task.evaluate does per batch
        model.eval()
        batch = next(batches)
        return model.predict_labels(task.logits(model, batch))

    token_batches = [(ids[i * BATCH:(i + 1) * BATCH], labels[i * BATCH:(i + 1) * BATCH].float()) for i in range(NUM_BATCHES)]
    return (train_step, infer_step), token_batches


def measure(threads: int, rounds: int) -> list[tuple]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    (fit_train, fit_infer), token_batches = fit_steps()
    bare_token_train, bare_token_infer = bare_steps(BareLSTM(vocab_size=VOCAB, input_size=EMBEDDING), token_batches)
    features = feature_batches()
    seed_train, seed_infer = seed_steps(seed_model(), features)
    bare_seed_train, bare_seed_infer = bare_steps(BareLSTM(vocab_size=None, input_size=FEATURES), features)
    medians = common.race({
        "train ours fit": fit_train, "train bare tokens": bare_token_train,
        "train ours seed": seed_train, "train bare seed": bare_seed_train,
        "infer ours fit": fit_infer, "infer bare tokens": bare_token_infer,
        "infer ours seed": seed_infer, "infer bare seed": bare_seed_infer,
    }, rounds=rounds, warmup=2)  # fmt: skip
    rows = []
    for mode in ("train", "infer"):
        for label, ours, bare in [("fit step, token ids", "ours fit", "bare tokens"),
                                  ("model step, features", "ours seed", "bare seed")]:  # fmt: skip
            ours_s, bare_s = medians[f"{mode} {ours}"], medians[f"{mode} {bare}"]
            ratio = bare_s / ours_s
            rows.append((f"{mode} {label}", threads, 1e3 * ours_s, 1e3 * bare_s, BATCH / ours_s, ratio,
                         common.verdict(ratio, 0.9, at_least=True)))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to try")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (one step per variant each)")
    args = parser.parse_args()
    print(common.machine_line(threads=args.threads[0]))
    print(f"batch {BATCH}, time {TIME}, hidden {HIDDEN}, features {FEATURES} | vocab {VOCAB}, embedding {EMBEDDING}; "
          f"rounds {args.rounds}; ratio = our throughput / bare nn.LSTM throughput")
    rows = [row for threads in args.threads for row in measure(threads, args.rounds)]
    common.print_table("Library overhead (target 2: >= 0.9x bare nn.LSTM)", rows,
                       ("step", "threads", "ours ms", "bare ms", "ours ex/s", "ratio", "goal"))


if __name__ == "__main__":
    main()

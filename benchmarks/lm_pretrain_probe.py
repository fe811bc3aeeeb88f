"""What language-model pretraining costs on this CPU: our LanguageModel (forward + backward, tied
softmax, AWD-LSTM dropouts) pretrained on the VADER training texts with the shared `fit` loop.

Fits a sentencepiece tokenizer on the training texts, encodes train and validation, then trains for a
few epochs and prints, per epoch, the validation perplexity (both directions and each one) next to
a unigram model's (add-one counts from the training targets), with seconds for training and
validation and training tokens per second (predictions of both directions).

    .venv/bin/python benchmarks/lm_pretrain_probe.py [--epochs 1] [--embedding-dim 256]
        [--hidden-size 256] [--vocab-size 8000] [--max-length 128] [--threads 1] [--limit N]
        [--softmax-candidates 0 1024]

With several `--softmax-candidates` values (0: the full softmax) the same data trains one model per
value, one after the other from the same seed, and a last table compares their training time and
validation perplexity (always over the full vocabulary).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import common  # noqa: F401  (puts the repository root on sys.path)
import torch
from datasets import Dataset

from nlp_lstm.config import TrainConfig
from nlp_lstm.data.collate import collate_classification
from nlp_lstm.data.specials import EOS_ID
from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig
from nlp_lstm.training.loop import fit

SPLITS = Path("/work/shared/data/splits/vader")


def read_texts(split: str, limit: int | None) -> list[str]:
    with gzip.open(SPLITS / f"{split}.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    return texts[:limit] if limit else texts


class LanguageModelTask:
    """The loop's `Task` for the language model: maximise minus the validation perplexity."""

    metric_name = "negative_perplexity"
    collate = staticmethod(collate_classification)

    def __init__(self) -> None:
        self.epoch_started = 0.0
        self.train_tokens = 0
        self.rows: list[dict] = []

    def loss(self, model, batch):
        result = model(batch["input_ids"], batch["lengths"], batch["pad_mask"])
        self.train_tokens += int(result["num_tokens"])
        return result["loss"]

    def on_epoch_start(self, model, epoch: int) -> None:
        self.epoch_started, self.train_tokens = time.perf_counter(), 0

    @torch.no_grad()
    def evaluate(self, model, batches, *, all_reduce: bool = False) -> dict:
        train_seconds = time.perf_counter() - self.epoch_started
        started = time.perf_counter()
        model.eval()
        sums = {"nll_sum": 0.0, "forward_nll_sum": 0.0, "backward_nll_sum": 0.0, "num_tokens": 0.0}
        for batch in batches():
            result = model(batch["input_ids"], batch["lengths"], batch["pad_mask"])
            for key in sums:
                sums[key] += float(result[key])
        model.train()
        per_direction = sums["num_tokens"] / 2
        row = {
            "perplexity": math.exp(sums["nll_sum"] / sums["num_tokens"]),
            "forward_perplexity": math.exp(sums["forward_nll_sum"] / per_direction),
            "backward_perplexity": math.exp(sums["backward_nll_sum"] / per_direction),
            "train_seconds": train_seconds,
            "validation_seconds": time.perf_counter() - started,
            "train_tokens_per_second": self.train_tokens / max(train_seconds, 1e-9),
        }
        self.rows.append(row)
        print(f"epoch {len(self.rows)}: validation perplexity {row['perplexity']:.1f} (forward "
              f"{row['forward_perplexity']:.1f}, backward {row['backward_perplexity']:.1f}); train "
              f"{train_seconds:.0f} s ({row['train_tokens_per_second']:,.0f} predictions/s), "
              f"validation {row['validation_seconds']:.1f} s", flush=True)  # fmt: skip
        return {"negative_perplexity": -row["perplexity"], "loss": sums["nll_sum"] / sums["num_tokens"], **row}


def unigram_perplexity(train_ids: list[list[int]], validation_ids: list[list[int]], vocab_size: int) -> float:
    """Add-one unigram model over the forward targets (tokens + <eos>); the backward targets (<bos> +
    tokens) give the same figure with <bos> in place of <eos>."""
    counts = Counter(token for ids in train_ids for token in (*ids, EOS_ID))
    total = sum(counts.values()) + vocab_size
    targets = [token for ids in validation_ids for token in (*ids, EOS_ID)]
    return math.exp(-sum(math.log((counts[token] + 1) / total) for token in targets) / len(targets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--max-length", type=int, default=128, help="pieces kept per text")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training texts")
    parser.add_argument("--softmax-candidates", type=int, nargs="+", default=[0],
                        help="rows each training batch's softmax scores (0: all); one model per value")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(common.machine_line(args.threads))

    started = time.perf_counter()
    train_texts, validation_texts = read_texts("train", args.limit), read_texts("validation", None)
    tokenizer = fit_tokenizer(train_texts, kind="sentencepiece", vocab_size=args.vocab_size)
    fitted = time.perf_counter()
    train_ids = [ids[: args.max_length] for ids in tokenizer.encode_batch(train_texts)]
    validation_ids = [ids[: args.max_length] for ids in tokenizer.encode_batch(validation_texts)]
    encoded = time.perf_counter()
    pieces = sum(map(len, train_ids))
    print(f"{len(train_texts):,} training texts, {pieces:,} pieces (mean {pieces / len(train_ids):.1f}, "
          f"cut at {args.max_length}); vocab {tokenizer.vocab_size:,}; tokenizer fitted in {fitted - started:.1f} s, "
          f"encoded in {encoded - fitted:.1f} s")  # fmt: skip
    print(f"unigram (add-one) validation perplexity: {unigram_perplexity(train_ids, validation_ids, tokenizer.vocab_size):.1f}")

    def dataset(rows: list[list[int]]) -> Dataset:
        return Dataset.from_dict({"input_ids": rows, "length": [len(ids) for ids in rows]})

    summary = []
    for candidates in args.softmax_candidates:
        torch.manual_seed(13)
        config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=args.embedding_dim,
                                     hidden_size=args.hidden_size, num_layers=args.num_layers,
                                     softmax_candidates=candidates)  # fmt: skip
        model = LanguageModel(config)
        print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, {config}")
        task = LanguageModelTask()
        train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                   patience=args.epochs, seed=13)  # fmt: skip
        with tempfile.TemporaryDirectory() as run_dir:
            result = fit(model, task=task, train_data=dataset(train_ids), validation_data=dataset(validation_ids),
                         config=train_config, run_dir=Path(run_dir), device=torch.device("cpu"), progress=False)  # fmt: skip
        model.load_state_dict(result.best_state)
        prompt = tokenizer.encode("the movie")
        sample = model.sample(prompt, 20, temperature=0.8, generator=torch.Generator().manual_seed(0))
        print(f"sample after 'the movie': {tokenizer.decode(prompt + sample)!r}")
        summary.append((candidates, sum(row["train_seconds"] for row in task.rows), task.rows[-1]["perplexity"]))
    if len(summary) > 1:
        print("\n| softmax candidates | train s | x first | validation perplexity |\n|---|---|---|---|")
        for candidates, seconds, perplexity in summary:
            print(f"| {candidates or 'all'} | {seconds:.0f} | {seconds / summary[0][1]:.2f} | {perplexity:.1f} |")
    print(f"total {time.perf_counter() - started:.0f} s (fit {result.seconds:.0f} s)")


if __name__ == "__main__":
    main()

"""Classify speed by runtime: PyTorch float32, PyTorch dynamic int8, and ONNX Runtime, side by side.

For each runtime, on VADER texts (data/vader_sentiment.jsonl.gz), one thread each:
- throughput, texts/s through the predictor's `predict` (tokenize, sort by length, batch, model,
  labels) at batch 64 and at batch 1;
- single-text latency: `predict([text])` for one text at a time, median and 90th percentile in ms;
- agreement: labels equal to float32's, and the largest probability difference from float32.
Runtimes:
- torch float32: `nlp_lstm.load(DIR)` (our fused LSTM);
- torch int8: `nlp_lstm.quantize.quantize_classifier` (dynamic int8 nn.LSTM + Linear, packed);
- onnxruntime: `nlp_lstm.inference.onnx.load_onnx(DIR)` after `export_onnx(DIR)` (ONNX's LSTM op
  with sequence_lens, CPU execution provider, intra-op threads 1).
All three share one tokenizer and batching path (the PyTorch predictor's), so only the model differs.
Variants alternate round-robin (`common.race`), medians over rounds; latency is sampled interleaved,
text by text. `--clock cpu` times process CPU seconds (steadier when other jobs hold the cores).

The model: `--model DIR` if given; otherwise a sentiment-sized one (the tokenizer of
vocab/sentiment, sentencepiece 8k; embedding 256, BiLSTM 256, mean pooling) trained briefly here
(`--train-texts` VADER texts, 1 epoch) into a temporary directory. Speed does not depend on how well
the weights are trained; agreement on a briefly trained model says little about a fully trained one.

    .venv/bin/python benchmarks/bench_runtime.py [--model DIR] [--texts 2000] [--latency-texts 200]
        [--rounds 3] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import common
import torch

CORPUS = common.DATA / "vader_sentiment.jsonl.gz"


def vader_rows(seed: int = 13) -> list[dict]:
    """VADER items with |score| >= 0.5, label = positive | negative (data/README.md), shuffled."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows = [{"text": r["text"], "label": "positive" if r["score"] > 0 else "negative"}
            for r in rows if abs(r["score"]) >= 0.5]  # fmt: skip
    random.Random(seed).shuffle(rows)
    return rows


def train_briefly(directory: Path, rows: list[dict]) -> Path:
    import nlp_lstm
    from nlp_lstm.config import TrainConfig
    from nlp_lstm.data.sources import DataSource

    train_file = directory / "train.jsonl"
    train_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    nlp_lstm.train(
        output_dir=directory / "model", source=DataSource(train_file=str(train_file), validation_fraction=0.1,
                                                          test_fraction=0.0),
        tokenizer_dir=common.ROOT / "vocab" / "sentiment",
        model={"embedding_dim": 256, "hidden_size": 256, "pooling": "mean", "dropout": 0.5, "max_length": 128},
        training=TrainConfig(epochs=1, batch_size=64, learning_rate=3e-3, seed=13),
        device="cpu", progress=False,
    )  # fmt: skip
    return directory / "model"


def probabilities(predictor, texts: list[str]) -> torch.Tensor:
    """`(N, labels)` probabilities in input order, through the predictor's own batches and model."""
    out = torch.empty(len(texts), len(predictor.labels))
    with torch.no_grad():
        for indices, batch in predictor.batches(texts, batch_size=64):
            logits = predictor.model(batch["input_ids"], batch["lengths"], batch["pad_mask"])
            out[indices] = predictor.model.scores(logits)
    return out


def latencies(variants: dict, texts: list[str], clock) -> dict[str, list[float]]:
    """Seconds of `predict([text])` per text and variant, variants interleaved text by text."""
    samples = {name: [] for name in variants}
    for predictor in variants.values():  # warm-up
        predictor.predict(texts[:5], batch_size=1)
    for text in texts:
        for name, predictor in variants.items():
            start = clock()
            predictor.predict([text], batch_size=1)
            samples[name].append(clock() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained classifier directory (default: train one briefly)")
    parser.add_argument("--train-texts", type=int, default=2000, help="texts for the brief training run")
    parser.add_argument("--texts", type=int, default=2000, help="texts timed at batch 64")
    parser.add_argument("--batch1-texts", type=int, default=300, help="texts timed at batch 1")
    parser.add_argument("--latency-texts", type=int, default=200, help="single texts timed one by one")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per variant")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall seconds or process CPU seconds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    warnings.simplefilter("ignore")  # empty-text and truncation notices are not what is measured

    import nlp_lstm
    from nlp_lstm.inference.onnx import export_onnx, load_onnx
    from nlp_lstm.inference.quantize import quantize_classifier

    rows = vader_rows()
    timed_texts = [row["text"] for row in rows[: args.texts]]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        model_dir = args.model or train_briefly(Path(scratch), rows[args.texts : args.texts + args.train_texts])
        trained_in = time.perf_counter() - started
        started = time.perf_counter()
        onnx_dir = export_onnx(model_dir, Path(scratch) / "onnx", overwrite=True)
        exported_in = time.perf_counter() - started
        float32 = nlp_lstm.load(model_dir, device="cpu")
        variants = {"torch float32": float32, "torch int8": quantize_classifier(float32),
                    "onnxruntime": load_onnx(model_dir, onnx_dir=onnx_dir, threads=1)}  # fmt: skip

        reference = probabilities(float32, timed_texts)
        agreement = {}
        for name, predictor in variants.items():
            scores = probabilities(predictor, timed_texts)
            same = (scores.argmax(-1) == reference.argmax(-1)).float().mean().item()
            agreement[name] = (100 * same, (scores - reference).abs().max().item())

        batch1_texts = timed_texts[: args.batch1_texts]
        timed = {}
        for name, predictor in variants.items():
            timed[(name, 64)] = lambda p=predictor: p.predict(timed_texts, batch_size=64)
            timed[(name, 1)] = lambda p=predictor: p.predict(batch1_texts, batch_size=1)
        medians = common.race(timed, rounds=args.rounds, clock=clock)
        single = latencies(variants, timed_texts[: args.latency_texts], clock)

    rows_out = []
    for name in variants:
        batch64 = len(timed_texts) / medians[(name, 64)]
        batch1 = len(batch1_texts) / medians[(name, 1)]
        ms = sorted(1000 * s for s in single[name])
        rows_out.append((name, batch64, batch64 / (len(timed_texts) / medians[("torch float32", 64)]), batch1,
                         batch1 / (len(batch1_texts) / medians[("torch float32", 1)]), statistics.median(ms),
                         ms[int(0.9 * (len(ms) - 1))], agreement[name][0], f"{agreement[name][1]:.1e}"))  # fmt: skip
    print(common.machine_line(threads=1))
    config = float32.model.config
    mean_tokens = sum(len(ids) for ids in float32.tokenizer.encode_batch(timed_texts)) / len(timed_texts)
    source = f"{args.model}" if args.model else f"trained here for 1 epoch on {args.train_texts} texts in {trained_in:.0f} s"
    print(f"model {source} (embedding {config.embedding_dim}, hidden {config.hidden_size}, bidirectional "
          f"{config.bidirectional}, pooling {config.pooling}); ONNX export {exported_in:.1f} s; {len(timed_texts)} "
          f"VADER texts, {mean_tokens:.1f} tokens on average; rounds {args.rounds}; clock {args.clock}")  # fmt: skip
    common.print_table("Classify by runtime (1 thread; speedup against torch float32)", rows_out,
                       ("runtime", "texts/s b64", "speedup", "texts/s b1", "speedup", "latency p50 ms",
                        "p90 ms", "labels = float32 %", "max |dp|"))  # fmt: skip


if __name__ == "__main__":
    main()

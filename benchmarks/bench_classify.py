"""Classify throughput on short texts (VADER), float against opt-in dynamic int8 quantization.

On the sentiment pipeline's test split, for each variant:
- end to end: texts/s through `nlp_lstm.inference.classifier.ClassifierPredictor.predict` (tokenize, sort by length,
  batch 64, model, labels);
- model only: texts/s of the model's forward over the same batches, tokenized and collated
  beforehand (`ClassifierPredictor.batches`), so tokenization's fixed share does not dilute the ratio;
- accuracy on the split, and how often int8 agrees with float.
Variants:
- float: the saved model as `nlp_lstm.load` gives it (our fused LSTM, run through the padding);
- float, nn.LSTM packed: the same weights in `quantize.PackedTorchLSTM` without int8 (separates the
  kernel change from the int8 effect);
- int8: `nlp_lstm.inference.quantize.quantize_classifier` (dynamic int8 nn.LSTM + Linear, packed sequences;
  the embedding stays float).
Variants alternate round-robin; each round covers the whole split. `--clock cpu` times process CPU
seconds instead of wall seconds: on a shared machine whose other jobs take the cores, wall medians
swung so much that end to end came out faster than model only; CPU time (with one torch thread) does
not count the time this process waits for a core.
Target 8: int8 >= 1.5x float texts/s, accuracy within 0.5 points.

Needs a trained model: `runs/sentiment/model` (made by `nlp-lstm run pipelines/sentiment.toml`).

    .venv/bin/python benchmarks/bench_classify.py [--model runs/sentiment/model] [--threads 1 2] [--rounds 3]
        [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import common
import torch


def test_split(pipeline: Path):
    from nlp_lstm.data.sources import load_splits
    from nlp_lstm.stages.pipeline import load_pipeline

    source = load_pipeline(pipeline).data
    test = load_splits(source, splits=("train", "test"))["test"]
    return list(test[source.text_column]), [str(label) for label in test[source.label_column]]


def model_only(classifier, batches):
    """The model's forward over pre-collated batches (what int8 can speed up)."""
    with torch.no_grad():
        for _, batch in batches:
            classifier.model(batch["input_ids"], batch["lengths"], batch["pad_mask"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=common.ROOT / "runs/sentiment/model", help="saved classifier")
    parser.add_argument("--pipeline", type=Path, default=common.ROOT / "pipelines/sentiment.toml",
                        help="pipeline whose test split is scored")  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to try")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the split per variant")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time wall seconds, or this process's CPU seconds (steadier on a loaded machine)")  # fmt: skip
    args = parser.parse_args()
    if not (args.model / "config.json").exists():
        raise SystemExit(f"no model at {args.model}; run `nlp-lstm run pipelines/sentiment.toml` first")

    import nlp_lstm
    from nlp_lstm.inference.quantize import PackedTorchLSTM, quantize_classifier

    texts, gold = test_split(args.pipeline)
    classifier = nlp_lstm.load(args.model, device="cpu")
    packed = copy.copy(classifier)
    packed.model = copy.deepcopy(classifier.model)
    packed.model.encoder = PackedTorchLSTM(packed.model.encoder)
    variants = {"float": classifier, "float, nn.LSTM packed": packed, "int8": quantize_classifier(classifier)}

    predictions = {name: model.predict(texts) for name, model in variants.items()}
    accuracy = {name: 100 * sum(r["label"] == g for r, g in zip(results, gold)) / len(gold)
                for name, results in predictions.items()}  # fmt: skip
    agreement = {name: 100 * sum(a["label"] == b["label"] for a, b in zip(predictions["float"], results)) / len(texts)
                 for name, results in predictions.items()}  # fmt: skip
    batches = list(classifier.batches(texts))  # the same for every variant: one tokenizer

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        timed = {}
        for name, model in variants.items():
            timed[(name, "end to end")] = lambda m=model: m.predict(texts)
            timed[(name, "model only")] = lambda m=model: model_only(m, batches)
        medians = common.race(timed, rounds=args.rounds, clock=time.process_time if args.clock == "cpu" else time.perf_counter)
        for name in variants:
            end_to_end = medians[("float", "end to end")] / medians[(name, "end to end")]
            model = medians[("float", "model only")] / medians[(name, "model only")]
            accuracy_change = accuracy[name] - accuracy["float"]
            goal = ""
            if name == "int8":
                goal = (f"speed {common.verdict(end_to_end, 1.5, at_least=True)}; "
                        f"accuracy {'met' if abs(accuracy_change) <= 0.5 else 'NOT met'} (within 0.5)")  # fmt: skip
            rows.append((name, threads, len(texts) / medians[(name, "end to end")], end_to_end,
                         len(texts) / medians[(name, "model only")], model, accuracy[name], accuracy_change,
                         agreement[name], goal))  # fmt: skip
    print(common.machine_line(threads=args.threads[0]))
    config = classifier.model.config
    tokens = [len(batch["lengths"]) * int(batch["lengths"].max()) for _, batch in batches]
    real = [int(batch["lengths"].sum()) for _, batch in batches]
    print(f"model {args.model} (embedding {config.embedding_dim}, hidden {config.hidden_size}, "
          f"bidirectional {config.bidirectional}, pooling {config.pooling}); {len(texts)} test texts, "
          f"mean {sum(len(t.split()) for t in texts) / len(texts):.1f} words, "
          f"{sum(real) / len(texts):.1f} tokens; padding {100 * (1 - sum(real) / sum(tokens)):.1f}% of "
          f"length-sorted batches of 64; rounds {args.rounds}; clock {args.clock}")  # fmt: skip
    common.print_table("Classify throughput (target 8: int8 >= 1.5x end to end, accuracy within 0.5 points)", rows,
                       ("variant", "threads", "texts/s", "speedup", "model texts/s", "model speedup",
                        "accuracy %", "change", "agrees %", "goal"))  # fmt: skip


if __name__ == "__main__":
    main()

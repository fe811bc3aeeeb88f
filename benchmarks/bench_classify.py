"""Classify throughput on short texts (VADER), float against opt-in dynamic int8 quantization.

Texts/s through `nlp_lstm.predict.Classifier.predict` (tokenize, sort by length, batch 64, model),
on the sentiment pipeline's test split, for:
- float: the saved model as `nlp_lstm.load` gives it (our fused LSTM, time segments);
- float, nn.LSTM packed: the same weights in `quantize.PackedTorchLSTM` without int8 (separates the
  kernel change from the int8 effect);
- int8: `nlp_lstm.quantize.quantize_classifier` (dynamic int8 nn.LSTM + Linear; the embedding stays float).
Variants alternate round-robin; each round predicts the whole split. Accuracy on the same split.
Target 8: int8 >= 1.5x float texts/s, accuracy within 0.5 points.

Needs a trained model: `runs/sentiment/model` (made by `nlp-lstm run pipelines/sentiment.toml`).

    .venv/bin/python benchmarks/bench_classify.py [--model runs/sentiment/model] [--threads 1 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import common
import torch


def test_split(pipeline: Path):
    from nlp_lstm.data.datasets import load_splits
    from nlp_lstm.pipeline import load_pipeline

    source = load_pipeline(pipeline).data
    test = load_splits(source, splits=("train", "test"))["test"]
    return list(test[source.text_column]), [str(label) for label in test[source.label_column]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=common.ROOT / "runs/sentiment/model", help="saved classifier")
    parser.add_argument("--pipeline", type=Path, default=common.ROOT / "pipelines/sentiment.toml",
                        help="pipeline whose test split is scored")  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to try")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the split per variant")
    args = parser.parse_args()
    if not (args.model / "config.json").exists():
        raise SystemExit(f"no model at {args.model}; run `nlp-lstm run pipelines/sentiment.toml` first")

    import nlp_lstm
    from nlp_lstm.quantize import PackedTorchLSTM, quantize_classifier

    texts, gold = test_split(args.pipeline)
    classifier = nlp_lstm.load(args.model, device="cpu")
    packed = copy.copy(classifier)
    packed.model = copy.deepcopy(classifier.model)
    packed.model.encoder = PackedTorchLSTM(packed.model.encoder)
    variants = {"float": classifier, "float, nn.LSTM packed": packed, "int8": quantize_classifier(classifier)}

    accuracy = {}
    for name, model in variants.items():
        predicted = [result["label"] for result in model.predict(texts)]
        accuracy[name] = 100 * sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    agreement = [a["label"] == b["label"] for a, b in zip(variants["float"].predict(texts), variants["int8"].predict(texts))]

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        medians = common.race({name: (lambda m=model: m.predict(texts)) for name, model in variants.items()},
                              rounds=args.rounds, warmup=0)  # fmt: skip
        for name, seconds in medians.items():
            speedup = medians["float"] / seconds
            accuracy_change = accuracy[name] - accuracy["float"]
            goal = ""
            if name == "int8":
                goal = (f"speed {common.verdict(speedup, 1.5, at_least=True)}; "
                        f"accuracy {'met' if abs(accuracy_change) <= 0.5 else 'NOT met'} (within 0.5)")  # fmt: skip
            rows.append((name, threads, len(texts) / seconds, speedup, accuracy[name], accuracy_change, goal))
    print(common.machine_line(threads=args.threads[0]))
    config = classifier.model.config
    print(f"model {args.model} (embedding {config.embedding_dim}, hidden {config.hidden_size}, "
          f"bidirectional {config.bidirectional}, pooling {config.pooling}); {len(texts)} test texts, "
          f"mean {sum(len(t.split()) for t in texts) / len(texts):.1f} words; predict batch 64; rounds {args.rounds}; "
          f"int8 agrees with float on {100 * sum(agreement) / len(agreement):.1f}% of texts")
    common.print_table("Classify throughput (target 8: int8 >= 1.5x, accuracy within 0.5 points)", rows,
                       ("variant", "threads", "texts/s", "speedup", "accuracy %", "change", "goal"))


if __name__ == "__main__":
    main()

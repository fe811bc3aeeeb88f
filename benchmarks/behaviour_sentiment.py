"""Does word order show? A small behavioural test set for binary sentiment (ours, written for this
check: `benchmarks/data/sentiment_behaviour.jsonl`, 48 texts): negated positive and negated negative
words, contrast clauses ("X, but Y": the second clause decides), and intensifiers. Scores each model
given, beside TF-IDF (1-2 grams) + logistic regression fitted on the same VADER training split:

    .venv/bin/python benchmarks/behaviour_sentiment.py --model defaults=runs/sweep/vader_binary/defaults/model \\
        --model glove=runs/sweep/vader_binary/defaults+glove/model

The models must have been trained on VADER's binary labels (`negative`, `positive`). This set is for
looking, not for tuning: no default was chosen on it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLITS = HERE.parents[1] / "shared" / "data" / "splits"


def tfidf_predictions(texts: list[str], split: Path) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from nlp_lstm.data.sources import DataSource, load_splits

    splits = load_splits(DataSource(train_file=str(split / "train.jsonl.gz"),
                                    validation_file=str(split / "validation.jsonl.gz"),
                                    test_file=str(split / "test.jsonl.gz")))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train = vectorizer.fit_transform(splits["train"]["text"])
    best = max((LogisticRegression(C=c, max_iter=3000).fit(train, splits["train"]["label"]) for c in (1.0, 4.0, 16.0)),
               key=lambda m: m.score(vectorizer.transform(splits["validation"]["text"]), splits["validation"]["label"]))
    return list(best.predict(vectorizer.transform(texts)))


def part_predictions(model, texts: list[str]) -> dict[str, list[str]]:
    """Each part of a stacked classifier alone: the BiLSTM's head and the linear part (binary
    models: the sign of each part's logit; the mix's scaling does not change a sign)."""
    import torch

    from nlp_lstm.data.collate import classifier_arguments

    parts: dict[str, list[str]] = {"bilstm": [""] * len(texts), "linear": [""] * len(texts)}
    with torch.no_grad():
        for indices, batch in model.batches(texts, warn=False):
            lstm, linear = model.model(*classifier_arguments(batch), parts=True)
            for name, logits in (("bilstm", lstm), ("linear", linear)):
                if logits is None:
                    continue
                for index, value in zip(indices, logits[:, 0].tolist()):
                    parts[name][index] = model.labels[int(value > 0)]
    return {name: labels for name, labels in parts.items() if all(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR of a trained VADER classifier")
    parser.add_argument("--vader-split", type=Path, default=SPLITS / "vader")
    parser.add_argument("--show", action="store_true", help="print every text with each model's label")
    args = parser.parse_args()
    import nlp_lstm

    rows = [json.loads(line) for line in open(HERE / "data" / "sentiment_behaviour.jsonl", encoding="utf-8")]
    texts = [row["text"] for row in rows]
    predictions = {"tfidf+lr": tfidf_predictions(texts, args.vader_split)}
    for spec in args.model:
        name, directory = spec.split("=", 1)
        model = nlp_lstm.load(directory, device="cpu")
        predictions[name] = [p["label"] for p in model.predict(texts)]
        predictions.update({f"{name}:{part}": labels for part, labels in part_predictions(model, texts).items()})
    kinds = list(dict.fromkeys(row["kind"] for row in rows))
    print(f"{'kind':<26}{'n':>4}" + "".join(f"{name:>18}" for name in predictions))
    for kind in [*kinds, "all"]:
        chosen = [i for i, row in enumerate(rows) if kind in ("all", row["kind"])]
        cells = "".join(f"{sum(predictions[name][i] == rows[i]['label'] for i in chosen) / len(chosen):>18.3f}"
                        for name in predictions)
        print(f"{kind:<26}{len(chosen):>4}{cells}")
    if args.show:
        for i, row in enumerate(rows):
            print(f"{row['label']:<9} " + " ".join(f"{predictions[n][i][:3]:>4}" for n in predictions) + f"  {row['text']}")


if __name__ == "__main__":
    main()

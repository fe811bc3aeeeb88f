"""TF-IDF + logistic regression on the sentiment pipeline's exact split: the simple baseline that
pipelines/sentiment.toml's accuracy is reported against.

scikit-learn is not a project dependency; install it into any environment that has nlp-lstm:
    .venv/bin/pip install scikit-learn && .venv/bin/python benchmarks/baseline_tfidf.py
"""

from __future__ import annotations

import sys

from nlp_lstm.data.sources import load_splits
from nlp_lstm.stages.pipeline import load_pipeline


def main() -> None:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        sys.exit("needs scikit-learn (not a project dependency): pip install scikit-learn")
    pipe = load_pipeline("pipelines/sentiment.toml")
    splits = load_splits(pipe.data)
    texts = {name: list(split[pipe.data.text_column]) for name, split in splits.items()}
    labels = {name: list(split[pipe.data.label_column]) for name, split in splits.items()}
    majority = max(set(labels["train"]), key=labels["train"].count)
    print(f"majority class '{majority}': test accuracy {labels['test'].count(majority) / len(labels['test']):.4f}")
    best = None
    for c in (1.0, 3.0, 10.0, 30.0):  # C chosen on validation, reported on test
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(C=c, max_iter=2000).fit(vectorizer.fit_transform(texts["train"]), labels["train"])
        validation = model.score(vectorizer.transform(texts["validation"]), labels["validation"])
        test = model.score(vectorizer.transform(texts["test"]), labels["test"])
        print(f"tf-idf (1-2 grams) + logistic regression C={c:g}: validation {validation:.4f}  test {test:.4f}")
        if best is None or validation > best[0]:
            best = (validation, test, c)
    print(f"chosen on validation: C={best[2]:g}, test accuracy {best[1]:.4f}")


if __name__ == "__main__":
    main()

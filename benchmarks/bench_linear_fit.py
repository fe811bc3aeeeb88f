"""The classifier's linear part: scikit-learn solvers side by side on real n-gram features (issue 26).

    .venv/bin/python benchmarks/bench_linear_fit.py --split ../shared/data/splits/tweets3 --rows 8000

Encodes the first `--rows` rows of the split's train file (90% of them train: `DataSource` cuts 10% as
a test split) and the first 1,000 of its validation file with the classifier's default word and
character n-grams, then fits the 7 values of C of
`training/linear_fit.C_GRID`, warm-started, with each solver at tol 1e-6, as `fit_linear` does. Prints
each solver's seconds, and how far its validation logits are from a fit to tol 1e-10 at C = 4 and 32
(centred per row: softmax logits are defined up to a constant) with its validation macro-F1 there.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/splits/tweets3")
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--solvers", nargs="+", default=["lbfgs", "newton-cg"])
    args = parser.parse_args()
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from nlp_lstm.config import TrainConfig
    from nlp_lstm.data.sources import DataSource
    from nlp_lstm.models.classifier import ClassifierConfig
    from nlp_lstm.stages.classification import take_rows
    from nlp_lstm.stages.tune_kinds import TUNE_KINDS
    from nlp_lstm.training.linear_fit import C_GRID, sparse_rows

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    spec = TUNE_KINDS["classifier"]
    with tempfile.TemporaryDirectory() as work:
        files = {}
        for split, count in (("train", args.rows), ("validation", 1000)):
            files[split] = Path(work) / f"{split}.jsonl"
            with gzip.open(args.split / f"{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
                files[split].write_text("".join(line for _, line in zip(range(count), lines)), encoding="utf-8")
        source = DataSource(train_file=str(files["train"]), validation_file=str(files["validation"]))
        stage = spec.make_stage(model=ClassifierConfig(), training=TrainConfig(**spec.training_defaults),
                                source=source, tokenizer_dir=None, tokenizer_settings=dict(spec.tokenizer_defaults))
        prepared = stage.prepare(Path(work) / "out", reuse_tokenizer=False)
        features = len(prepared.ngrams)

        def matrix(split):
            data = prepared.encoded[split]
            columns = take_rows(data, np.arange(len(data)))
            return (sparse_rows(columns.column("ngram_ids"), columns.column("ngram_weights"), features),
                    np.asarray(data["labels"]).astype(np.int64))

        train, train_labels = matrix("train")
        validation, validation_labels = matrix("validation")
    print(f"{train.shape[0]} train rows, {validation.shape[0]} validation rows, {features} features", flush=True)

    def centred(logits):
        return logits - logits.mean(1, keepdims=True) if logits.ndim == 2 else logits

    tight = {c: centred(LogisticRegression(C=c, solver="newton-cg", max_iter=10000, tol=1e-10)
                        .fit(train, train_labels).decision_function(validation)) for c in (4.0, 32.0)}
    for solver in args.solvers:
        model = LogisticRegression(C=C_GRID[0], solver=solver, max_iter=2000, tol=1e-6, warm_start=True)
        seconds, cells = 0.0, []
        for c in C_GRID:
            model.set_params(C=c)
            started = time.perf_counter()
            model.fit(train, train_labels)
            seconds += time.perf_counter() - started
            if c in tight:
                gap = np.abs(centred(model.decision_function(validation)) - tight[c]).max()
                f1 = f1_score(validation_labels, model.predict(validation), average="macro")
                cells.append(f"C={c:g}: logits within {gap:.1e}, macro-F1 {f1:.4f}")
        print(f"{solver:<10} {seconds:7.1f} s   " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()

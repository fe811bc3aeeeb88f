"""Fit the classifier's linear part (`nn/ngram_linear.py`) as an L2-regularised logistic regression.

The problem is convex, so it is solved to convergence with scikit-learn's Newton-CG solver (a well-kept
implementation of exactly this) rather than trained by the network's optimizer for a few epochs.
Newton-CG rather than L-BFGS: on 7,200 tweets (268k word and character n-gram features, 3 classes,
the 7 values of C warm-started) it took 37 s against L-BFGS's 140 s at the same tolerance, and landed
closer to the optimum (validation logits within 8e-4 of a fit to tolerance 1e-10, against L-BFGS's
1.4e-2): L-BFGS-B's own bookkeeping over 800k weights was most of its time (BENCHMARKS.md, issue 26). The
inverse regularisation strength C is chosen on the validation split, as a TF-IDF + logistic
regression baseline would be tuned: so the linear part is that baseline, inside the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

# Inverse L2 strengths tried on validation, ascending, each fit warm-started from the previous one.
# The corpora measured chose 4 to 32 (BENCHMARKS.md, "Word n-gram linear part").
C_GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


@dataclass
class LinearFit:
    """The fitted part: `table` (F, outputs) and `bias` (outputs,), and the C that won on validation."""

    table: torch.Tensor
    bias: torch.Tensor
    c: float
    validation_score: float


def sparse_rows(ids: pa.ListArray, values: pa.ListArray, num_features: int):
    """Arrow list columns of per-row feature ids and values (the encoded `ngram_ids` and
    `ngram_weights`) -> a scipy CSR matrix (rows, num_features), without a Python object per value:
    the list offsets are the CSR row pointers."""
    from scipy.sparse import csr_matrix

    offsets = ids.offsets.to_numpy()
    indptr = (offsets - offsets[0]).astype(np.int64)  # a sliced array's offsets need not start at 0
    flat_ids = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    flat_values = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return csr_matrix((flat_values, flat_ids, indptr), shape=(len(ids), num_features))


def fit_linear(train, train_labels: np.ndarray, validation, validation_labels: np.ndarray, *, task: str,
               num_labels: int, grid: Sequence[float] = C_GRID) -> LinearFit:
    """Fit on `train` (CSR rows), pick C on `validation` (macro-F1; multi-label: mean log-loss).

    Labels are class indices `(N,)`, or multi-hot `(N, L)` for `task == "multilabel"` (one binary
    regression per label, each with its own C). Binary tasks give one output column (the positive
    class's logit), as the network's head does.
    """
    if task == "multilabel":
        columns = [_fit_one(train, train_labels[:, j], validation, validation_labels[:, j], binary=True, grid=grid,
                            by_log_loss=True)
                   for j in range(num_labels)]
        return LinearFit(table=torch.cat([c.table for c in columns], dim=1), bias=torch.cat([c.bias for c in columns]),
                         c=float(np.median([c.c for c in columns])),
                         validation_score=float(np.mean([c.validation_score for c in columns])))
    return _fit_one(train, train_labels, validation, validation_labels, binary=task == "binary", grid=grid,
                    num_labels=num_labels)


def _fit_one(train, train_labels, validation, validation_labels, *, binary: bool, grid: Sequence[float],
             num_labels: int = 2, by_log_loss: bool = False) -> LinearFit:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, log_loss

    train_labels = train_labels.astype(np.int64)
    validation_labels = validation_labels.astype(np.int64)
    present = np.unique(train_labels)
    outputs = 1 if binary else num_labels
    if len(present) < 2:  # one class in training (a constant label column): the bias alone says it
        bias = torch.full((outputs,), -20.0)
        bias[0 if binary else int(present[0])] = -20.0 if binary and present[0] == 0 else 20.0
        return LinearFit(torch.zeros(train.shape[1], outputs), bias, c=0.0, validation_score=0.0)
    model = LogisticRegression(C=grid[0], solver="newton-cg", max_iter=2000, tol=1e-6, warm_start=True)
    best: LinearFit | None = None
    for c in grid:
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the largest C fit slowest; their scores tell
            # Newton-CG's line search gives up when rounding leaves nothing to gain: at the optimum.
            warnings.filterwarnings("ignore", message="(?i).*line search")
            model.fit(train, train_labels)
        if by_log_loss:
            score = -log_loss(validation_labels, model.predict_proba(validation), labels=model.classes_)
        else:
            score = f1_score(validation_labels, model.predict(validation), average="macro",
                             labels=list(range(outputs if not binary else 2)), zero_division=0)
        if best is None or score > best.validation_score:
            table, bias = _weights(model, outputs=outputs)
            best = LinearFit(table, bias, c=c, validation_score=float(score))
    return best


def _weights(model, *, outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's coefficients -> (table (F, outputs), bias (outputs,)) in the network's label order.

    With two classes sklearn keeps one row, the logit of `classes_[1]` against `classes_[0]`."""
    coef, intercept, classes = model.coef_.astype(np.float32), model.intercept_.astype(np.float32), model.classes_
    if outputs == 1:
        return torch.from_numpy(coef.T.copy()), torch.from_numpy(intercept.copy())  # (F, 1), (1,)
    table = np.zeros((coef.shape[1], outputs), dtype=np.float32)
    bias = np.full(outputs, -30.0, dtype=np.float32)  # a label absent from training is never predicted
    if len(classes) == 2:
        bias[int(classes[0])] = 0.0
        table[:, int(classes[1])], bias[int(classes[1])] = coef[0], intercept[0]
    else:
        for row, label in enumerate(classes):
            table[:, int(label)], bias[int(label)] = coef[row], intercept[row]
    return torch.from_numpy(table), torch.from_numpy(bias)

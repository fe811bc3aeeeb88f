"""Classification metrics from accumulated counts.

Counts (a confusion matrix, or per-label tp/fp/fn/tn for multi-label) accumulate over batches and
add with `+=`, so distributed ranks can all-reduce one integer tensor and the ratios are computed
once at the end (`as_tensor` -> `torch.distributed.all_reduce` -> `from_tensor` -> `compute`).

Conventions: those of scikit-learn's `f1_score(average="macro", zero_division=0)` with its default
`labels=None` (tests/test_metrics.py compares against it):
- A ratio whose denominator is zero is 0.0.
- Single-label macro-F1 is the unweighted mean of per-class F1 over the classes that occur in the
  targets or in the predictions (sklearn's `unique_labels(y_true, y_pred)`); a class absent from both
  has no F1 to average (it is still listed in `per_class`, with zeros). A class that is never
  predicted but occurs counts with F1 = 0.
- Multi-label: accuracy is the exact-match ratio (a document counts only if every label is right);
  macro-F1 is the mean over all L labels, as sklearn does for indicator matrices: a label that never
  occurs in targets nor predictions counts with F1 = 0 (zero_division=0). The mode is inferred from the first `update` ((N,) ids vs (N, L)
  indicators) unless given. `confusion_matrix` stays (L, L) so the same plot works: cell [i, j]
  counts documents with true label i that were predicted label j (the diagonal is each label's
  true positives); the per-label 2x2 tables are under `label_confusion`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_int64_tensor(values: Any, *, name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
    else:
        tensor = torch.as_tensor(np.asarray(values))
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(f"{name} must hold integer class ids or 0/1 labels, got fractions")
    elif tensor.is_complex():
        raise ValueError(f"{name} must hold integers, got a complex tensor")
    return tensor.to(torch.int64)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2.0 * precision * recall, precision + recall)


class ClassificationCounts:
    """Running counts for single-label (binary / multi-class) or multi-label classification.

    Args:
        num_classes: number of classes C (number of labels L for multi-label).
        multi_label: True when `update` receives (N, L) 0/1 indicator matrices; None (default)
            decides on the first `update` from the shape of its inputs.

    Attributes:
        confusion: (C, C) int64, rows = true class, columns = predicted class (multi-label:
            documents with true label i predicted as label j).
        true_positives, false_positives, false_negatives, true_negatives: (C,) int64 per class.
        exact_matches: documents whose whole prediction is right.
        count: documents seen.
    """

    def __init__(self, num_classes: int, *, multi_label: bool | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.multi_label = None if multi_label is None else bool(multi_label)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.true_positives = torch.zeros(num_classes, dtype=torch.int64)
        self.false_positives = torch.zeros(num_classes, dtype=torch.int64)
        self.false_negatives = torch.zeros(num_classes, dtype=torch.int64)
        self.true_negatives = torch.zeros(num_classes, dtype=torch.int64)
        self.exact_matches = 0
        self.count = 0

    # ---- accumulate ------------------------------------------------------------------------

    def update(self, predictions: Any, targets: Any) -> None:
        """Add a batch.

        Args:
            predictions, targets: single-label: (N,) class ids in [0, C).
                Multi-label: (N, L) 0/1 (or bool) indicators, L = num_classes.
        """
        predictions = _as_int64_tensor(predictions, name="predictions")
        targets = _as_int64_tensor(targets, name="targets")
        if predictions.shape != targets.shape:
            raise ValueError(
                f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} "
                "must have the same shape"
            )
        if self.multi_label is None:
            self.multi_label = predictions.dim() == 2
        if self.multi_label:
            self._update_multi_label(predictions, targets)
        else:
            self._update_single_label(predictions, targets)

    def _update_single_label(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        if predictions.dim() != 1:
            raise ValueError(
                f"single-label counts take (N,) class ids, got shape {tuple(predictions.shape)}"
            )
        num_classes = self.num_classes
        for name, values in (("predictions", predictions), ("targets", targets)):
            if values.numel() and (values.min() < 0 or values.max() >= num_classes):
                raise ValueError(
                    f"{name} hold class ids outside [0, {num_classes}): "
                    f"min {int(values.min())}, max {int(values.max())}"
                )
        flat = targets * num_classes + predictions  # (N,) index into the flattened (C, C) matrix
        batch_confusion = torch.bincount(flat, minlength=num_classes * num_classes)
        batch_confusion = batch_confusion.view(num_classes, num_classes)  # (C true, C predicted)
        self.confusion += batch_confusion
        diagonal = batch_confusion.diagonal()
        predicted_totals = batch_confusion.sum(dim=0)
        true_totals = batch_confusion.sum(dim=1)
        self.true_positives += diagonal
        self.false_positives += predicted_totals - diagonal
        self.false_negatives += true_totals - diagonal
        self.true_negatives += len(targets) - predicted_totals - true_totals + diagonal
        self.exact_matches += int(diagonal.sum())
        self.count += len(targets)

    def _update_multi_label(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        if predictions.dim() != 2 or predictions.shape[1] != self.num_classes:
            raise ValueError(
                f"multi-label counts take (N, {self.num_classes}) 0/1 indicators, "
                f"got shape {tuple(predictions.shape)}"
            )
        for name, values in (("predictions", predictions), ("targets", targets)):
            if values.numel() and (values.min() < 0 or values.max() > 1):
                raise ValueError(f"multi-label {name} must be 0/1 indicators")
        predicted, true = predictions.bool(), targets.bool()  # (N, L)
        # (L, N) @ (N, L): documents with true label i and predicted label j.
        self.confusion += targets.t() @ predictions
        self.true_positives += (predicted & true).sum(dim=0)
        self.false_positives += (predicted & ~true).sum(dim=0)
        self.false_negatives += (~predicted & true).sum(dim=0)
        self.true_negatives += (~predicted & ~true).sum(dim=0)
        self.exact_matches += int((predicted == true).all(dim=1).sum())
        self.count += len(targets)

    def __iadd__(self, other: ClassificationCounts) -> ClassificationCounts:
        if not isinstance(other, ClassificationCounts):
            return NotImplemented
        if self.multi_label is None:
            self.multi_label = other.multi_label
        modes = {self.multi_label, other.multi_label} - {None}
        if other.num_classes != self.num_classes or len(modes) > 1:
            raise ValueError(
                f"cannot add counts for {other.num_classes} classes (multi_label="
                f"{other.multi_label}) to counts for {self.num_classes} (multi_label="
                f"{self.multi_label})"
            )
        self.confusion += other.confusion
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.true_negatives += other.true_negatives
        self.exact_matches += other.exact_matches
        self.count += other.count
        return self

    def __add__(self, other: ClassificationCounts) -> ClassificationCounts:
        if not isinstance(other, ClassificationCounts):
            return NotImplemented
        total = ClassificationCounts(self.num_classes, multi_label=self.multi_label)
        total += self
        total += other
        return total

    # ---- distributed -----------------------------------------------------------------------

    def as_tensor(self) -> torch.Tensor:
        """All counts as one flat int64 tensor, ready for `all_reduce(op=SUM)`.

        Layout: confusion (C*C), tp (C), fp (C), fn (C), tn (C), exact_matches, count,
        multi_label flag (1 if multi-label; after a sum, > 0 still means multi-label, so ranks
        that saw no data agree with the others). Move it to the process group's device (CUDA for
        NCCL) before reducing.
        """
        scalars = torch.tensor(
            [self.exact_matches, self.count, int(bool(self.multi_label))], dtype=torch.int64
        )
        return torch.cat(
            [
                self.confusion.flatten(),
                self.true_positives,
                self.false_positives,
                self.false_negatives,
                self.true_negatives,
                scalars,
            ]
        )

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, *, num_classes: int) -> ClassificationCounts:
        """Rebuild counts from `as_tensor()` output (e.g. after an all-reduce)."""
        expected = num_classes * num_classes + 4 * num_classes + 3
        tensor = tensor.detach().cpu().to(torch.int64).flatten()
        if tensor.numel() != expected:
            raise ValueError(
                f"expected {expected} counts for {num_classes} classes, got {tensor.numel()}"
            )
        square = num_classes * num_classes
        counts = cls(num_classes, multi_label=bool(tensor[-1] > 0))
        counts.confusion = tensor[:square].view(num_classes, num_classes).clone()
        per_class = tensor[square : square + 4 * num_classes].view(4, num_classes).clone()
        (
            counts.true_positives,
            counts.false_positives,
            counts.false_negatives,
            counts.true_negatives,
        ) = per_class.unbind(0)
        counts.exact_matches = int(tensor[-3])
        counts.count = int(tensor[-2])
        return counts

    # ---- ratios ----------------------------------------------------------------------------

    def compute(self, label_names: list[str]) -> dict:
        """Ratios from the counts.

        Returns:
            {"accuracy", "macro_f1",
             "per_class": {name: {"precision", "recall", "f1", "support"}},
             "confusion_matrix": (C, C) nested lists, rows = true, columns = predicted
                 (multi-label: documents with true label i predicted as label j),
             "labels": label_names, "count": documents, "multi_label": bool,
             multi-label only: "label_confusion": {name: [[tn, fp], [fn, tp]]}}
        """
        label_names = list(label_names)
        if len(label_names) != self.num_classes:
            raise ValueError(
                f"got {len(label_names)} label names for {self.num_classes} classes: {label_names}"
            )
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"label names must be distinct, got {label_names}")
        per_class: dict[str, dict[str, float | int]] = {}
        f1_averaged: list[float] = []
        for index, name in enumerate(label_names):
            tp = int(self.true_positives[index])
            fp = int(self.false_positives[index])
            fn = int(self.false_negatives[index])
            precision = _ratio(tp, tp + fp)
            recall = _ratio(tp, tp + fn)
            f1 = _f1(precision, recall)
            per_class[name] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": tp + fn,
            }
            # sklearn: indicator matrices average over every label (an absent one scores
            # zero_division = 0); class ids only over the classes seen in targets or predictions.
            if self.multi_label or tp + fp + fn > 0:
                f1_averaged.append(f1)

        result = {
            "accuracy": _ratio(self.exact_matches, self.count),
            "macro_f1": _ratio(sum(f1_averaged), len(f1_averaged)),
            "per_class": per_class,
            "confusion_matrix": self.confusion.tolist(),
            "labels": label_names,
            "count": self.count,
            "multi_label": bool(self.multi_label),
        }
        if self.multi_label:
            result["label_confusion"] = {
                name: [
                    [int(self.true_negatives[index]), int(self.false_positives[index])],
                    [int(self.false_negatives[index]), int(self.true_positives[index])],
                ]
                for index, name in enumerate(label_names)
            }
        return result

    def __repr__(self) -> str:
        return (
            f"ClassificationCounts(num_classes={self.num_classes}, "
            f"multi_label={self.multi_label}, count={self.count})"
        )

"""Calibration of classifier scores: temperature scaling, expected calibration error, Brier score,
reliability bins, and per-label thresholds for multi-label classification.

Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of Modern Neural Networks":
- Temperature scaling (sec. 4.2): one scalar T > 0 divides the logits, `softmax(z / T)` (or
  `sigmoid(z / T)` for one logit per label), fitted by minimising the validation NLL. T does not change
  the argmax, so accuracy and F1 stay the same; only the confidences move.
- Reliability bins and ECE (sec. 2): confidences (the top-class probability) are put in M equal-width
  bins, bin m holding confidences in `(m/M, (m+1)/M]`; `ECE = sum_m |B_m|/N * |acc(B_m) - conf(B_m)|`.

Input forms, used the same way everywhere here:
- `(N, C)` probabilities (rows sum to 1) with `(N,)` class ids: multi-class; the confidence is the
  largest probability and the prediction its class.
- `(N,)` probabilities of the positive class with `(N,)` 0/1 labels: binary; the prediction is
  `p >= 0.5` and the confidence `max(p, 1 - p)`.
- `(N, L)` probabilities with `(N, L)` 0/1 labels: multi-label, scored as N * L binary decisions.

Brier score (Brier 1950): the mean over examples of `sum_c (p_c - 1[y = c])^2` for `(N, C)` inputs
(range [0, 2]); for binary `(N,)` inputs the mean of `(p - y)^2` (range [0, 1], scikit-learn's
`brier_score_loss`). The two differ by a factor 2 on the same binary scores: pass `(N,)` positive-class
probabilities (a binary classifier's `scores[:, 1]`) for the usual binary figure.

`CalibrationCounts` accumulates per-bin sums and adds with `+=` (and `as_tensor` / `from_tensor`), so
distributed ranks can all-reduce them like `ClassificationCounts`; the functions below are shortcuts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nlp_lstm.errors import NlpLstmError

__all__ = [
    "CalibrationCounts",
    "ReliabilityBins",
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "pick_thresholds",
    "reliability_bins",
]

DEFAULT_BINS = 15  # Guo et al. 2017, sec. 5


def _float64(values: Any, *, name: str) -> torch.Tensor:
    tensor = values.detach().cpu() if torch.is_tensor(values) else torch.as_tensor(np.asarray(values))
    if tensor.numel() == 0:
        raise NlpLstmError(f"{name} is empty; calibration needs at least one example")
    return tensor.to(torch.float64)


def _decisions(probabilities: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Per decision: confidence and correctness; see the module docstring for the forms.

    Returns:
        confidence `(M,)` float64, correct `(M,)` bool (M = N, or N * L for multi-label), the Brier
        sum, and the number of examples N.
    """
    probabilities = _float64(probabilities, name="probabilities")
    labels = _float64(labels, name="labels")
    if probabilities.dim() == 2 and labels.dim() == 1 and probabilities.shape[0] == labels.shape[0]:
        ids = labels.long()
        if (ids < 0).any() or (ids >= probabilities.shape[1]).any():
            raise NlpLstmError(f"labels must be class ids in [0, {probabilities.shape[1]}), got {labels.min():g}..{labels.max():g}")
        confidence, predicted = probabilities.max(dim=1)
        brier = ((probabilities - F.one_hot(ids, probabilities.shape[1]).to(torch.float64)) ** 2).sum()
        return confidence, predicted == ids, float(brier), len(ids)
    if probabilities.shape == labels.shape and probabilities.dim() in (1, 2):
        positive, truth = probabilities.flatten(), labels.flatten()
        if ((truth != 0) & (truth != 1)).any():
            raise NlpLstmError("binary and multi-label labels must be 0 or 1")
        predicted = (positive >= 0.5).to(torch.float64)
        confidence = torch.where(predicted == 1, positive, 1 - positive)
        return confidence, predicted == truth, float(((positive - truth) ** 2).sum()), len(labels)
    raise NlpLstmError(
        f"probabilities {tuple(probabilities.shape)} and labels {tuple(labels.shape)} do not fit: use (N, C) with "
        "(N,) class ids, (N,) with (N,) 0/1, or (N, L) with (N, L) 0/1"
    )


@dataclass
class ReliabilityBins:
    """What a reliability diagram draws: per equal-width confidence bin, its mean confidence, its
    accuracy and its number of decisions (mean confidence and accuracy are 0.0 in empty bins).

    Attributes:
        edges: `M + 1` bin edges, 0 to 1; bin m holds confidences in `(edges[m], edges[m + 1]]`.
        confidence, accuracy: `M` floats. count: `M` ints.
    """

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean of |accuracy - confidence|."""
        total = sum(self.count)
        gaps = (n * abs(a - c) for n, a, c in zip(self.count, self.accuracy, self.confidence))
        return sum(gaps) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for metrics.json."""
        return {"edges": self.edges, "confidence": self.confidence, "accuracy": self.accuracy,
                "count": self.count, "ece": self.ece}  # fmt: skip


class CalibrationCounts:
    """Running per-bin sums for ECE and reliability diagrams, and the Brier sum.

    Args:
        bins: number of equal-width confidence bins M.
    Attributes:
        count `(M,)` int64, confidence_sum `(M,)` float64, correct `(M,)` int64: per bin.
        brier_sum: summed Brier terms; examples: rows seen (the Brier score's denominator).
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 1:
            raise NlpLstmError(f"bins must be >= 1, got {bins}")
        self.bins = int(bins)
        self.count = torch.zeros(bins, dtype=torch.int64)
        self.confidence_sum = torch.zeros(bins, dtype=torch.float64)
        self.correct = torch.zeros(bins, dtype=torch.int64)
        self.brier_sum = 0.0
        self.examples = 0

    @property
    def edges(self) -> torch.Tensor:
        # i / M is correctly rounded, so an edge equals the float literal (0.6 is exactly 3 / 5).
        return torch.arange(self.bins + 1, dtype=torch.float64) / self.bins

    def update(self, probabilities: Any, labels: Any) -> None:
        """Add a batch (any of the forms in the module docstring)."""
        confidence, correct, brier, examples = _decisions(probabilities, labels)
        # bucketize(right=False) gives i with edges[i] < x <= edges[i+1]: the (lo, hi] bins of Guo et al.
        index = torch.bucketize(confidence, self.edges[1:-1], right=False)
        self.count += torch.bincount(index, minlength=self.bins)
        self.confidence_sum += torch.bincount(index, weights=confidence, minlength=self.bins)
        self.correct += torch.bincount(index, weights=correct.to(torch.float64), minlength=self.bins).round().long()
        self.brier_sum += brier
        self.examples += examples

    def __iadd__(self, other: CalibrationCounts) -> CalibrationCounts:
        if not isinstance(other, CalibrationCounts):
            return NotImplemented
        if other.bins != self.bins:
            raise NlpLstmError(f"cannot add calibration counts over {other.bins} bins to counts over {self.bins}")
        self.count += other.count
        self.confidence_sum += other.confidence_sum
        self.correct += other.correct
        self.brier_sum += other.brier_sum
        self.examples += other.examples
        return self

    def __add__(self, other: CalibrationCounts) -> CalibrationCounts:
        total = CalibrationCounts(self.bins)
        total += self
        total += other
        return total

    def as_tensor(self) -> torch.Tensor:
        """Flat float64 `(3M + 2,)`: count, confidence_sum, correct, brier_sum, examples; for all_reduce(SUM)."""
        scalars = torch.tensor([self.brier_sum, self.examples], dtype=torch.float64)
        return torch.cat([self.count.double(), self.confidence_sum, self.correct.double(), scalars])

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor) -> CalibrationCounts:
        tensor = tensor.detach().cpu().to(torch.float64).flatten()
        bins, remainder = divmod(tensor.numel() - 2, 3)
        if bins < 1 or remainder:
            raise NlpLstmError(f"a calibration counts tensor has 3 * bins + 2 values, got {tensor.numel()}")
        counts = cls(bins)
        counts.count = tensor[:bins].round().long()
        counts.confidence_sum = tensor[bins : 2 * bins].clone()
        counts.correct = tensor[2 * bins : 3 * bins].round().long()
        counts.brier_sum, counts.examples = float(tensor[-2]), int(round(float(tensor[-1])))
        return counts

    def reliability(self) -> ReliabilityBins:
        count = self.count.double()
        safe = count.clamp(min=1)
        return ReliabilityBins(
            edges=self.edges.tolist(),
            confidence=torch.where(count > 0, self.confidence_sum / safe, 0.0).tolist(),
            accuracy=torch.where(count > 0, self.correct.double() / safe, 0.0).tolist(),
            count=self.count.tolist(),
        )

    def expected_calibration_error(self) -> float:
        return self.reliability().ece

    def brier_score(self) -> float:
        return self.brier_sum / self.examples if self.examples else 0.0


def reliability_bins(probabilities: Any, labels: Any, bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Per-bin mean confidence, accuracy and count (what `plots.plot_reliability_diagram` draws)."""
    counts = CalibrationCounts(bins)
    counts.update(probabilities, labels)
    return counts.reliability()


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = DEFAULT_BINS) -> float:
    """ECE over `bins` equal-width bins of the top-class confidence (Guo et al. 2017, eq. 3)."""
    return reliability_bins(probabilities, labels, bins).ece


def brier_score(probabilities: Any, labels: Any) -> float:
    """Mean Brier score; the convention follows the input form (module docstring)."""
    counts = CalibrationCounts(1)
    counts.update(probabilities, labels)
    return counts.brier_score()


# ---------------------------------------------------------------------------------------------
# Temperature scaling
# ---------------------------------------------------------------------------------------------

_GOLDEN = (math.sqrt(5) - 1) / 2


def _nll_function(logits: Any, labels: Any):
    """The validation NLL as a function of T, for the three logit forms."""
    logits = _float64(logits, name="logits")
    labels = _float64(labels, name="labels")
    if logits.dim() == 2 and logits.shape[1] == 1:  # one logit per example: binary
        logits = logits[:, 0]
        labels = labels.flatten() if labels.numel() == logits.numel() else labels
    if logits.shape == labels.shape and logits.dim() in (1, 2):  # binary (N,) or multi-label (N, L): sigmoid
        if ((labels != 0) & (labels != 1)).any():
            raise NlpLstmError("binary and multi-label labels must be 0 or 1")
        return lambda temperature: float(F.binary_cross_entropy_with_logits(logits / temperature, labels))
    if logits.dim() == 2 and labels.dim() == 1 and logits.shape[0] == labels.shape[0]:
        ids = labels.long()
        if (ids < 0).any() or (ids >= logits.shape[1]).any():
            raise NlpLstmError(f"labels must be class ids in [0, {logits.shape[1]})")
        return lambda temperature: float(F.cross_entropy(logits / temperature, ids))
    raise NlpLstmError(
        f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not fit: use (N, C) with (N,) class ids, "
        "(N,) or (N, 1) with (N,) 0/1, or (N, L) with (N, L) 0/1"
    )


def fit_temperature(
    logits: Any, labels: Any, *, min_temperature: float = 0.01, max_temperature: float = 100.0, tolerance: float = 1e-6
) -> float:
    """The temperature T minimising the NLL of `logits / T` on held-out data (Guo et al. 2017, sec. 4.2).

    The NLL is convex in 1/T (a log-sum-exp of a linear function minus a linear term), hence unimodal
    in log T, so a golden-section search over log T on `[min_temperature, max_temperature]` finds the
    minimum without gradients or a learning rate; a bound is returned when the optimum lies beyond it
    (e.g. separable data, whose NLL keeps falling as T -> 0).

    Args:
        logits: `(N, C)` with `labels` `(N,)` class ids (softmax); `(N,)` or `(N, 1)` with `(N,)` 0/1
            (binary sigmoid); `(N, L)` with `(N, L)` 0/1 (multi-label sigmoid, one T for all labels).
        tolerance: stop when the bracket on log T is narrower than this.
    Returns:
        T > 0; calibrated probabilities are `softmax(logits / T)` (or `sigmoid(logits / T)`).
    """
    if not 0 < min_temperature < max_temperature:
        raise NlpLstmError(f"need 0 < min_temperature < max_temperature, got {min_temperature} and {max_temperature}")
    nll = _nll_function(logits, labels)
    low, high = math.log(min_temperature), math.log(max_temperature)
    inner_low, inner_high = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    value_low, value_high = nll(math.exp(inner_low)), nll(math.exp(inner_high))
    while high - low > tolerance:
        if value_low <= value_high:  # the minimum lies in [low, inner_high]
            high, inner_high, value_high = inner_high, inner_low, value_low
            inner_low = high - _GOLDEN * (high - low)
            value_low = nll(math.exp(inner_low))
        else:
            low, inner_low, value_low = inner_low, inner_high, value_high
            inner_high = low + _GOLDEN * (high - low)
            value_high = nll(math.exp(inner_high))
    return math.exp((low + high) / 2)


def calibrated_nll(logits: Any, labels: Any, *, fit: bool = True) -> float:
    """The held-out NLL after temperature scaling (`fit`), or of the logits as they are (T = 1)."""
    return _nll_function(logits, labels)(fit_temperature(logits, labels) if fit else 1.0)


# ---------------------------------------------------------------------------------------------
# Multi-label thresholds
# ---------------------------------------------------------------------------------------------


def pick_thresholds(probabilities: Any, targets: Any, *, default: float = 0.5) -> list[float]:
    """Per-label thresholds that maximise each label's F1 on validation data (multi-label).

    A label is predicted when `p >= threshold`. Candidates are the label's own distinct scores; among
    equal F1 the highest threshold wins (fewest positives). A label without any positive target
    has no F1 to gain and keeps `default`.

    Args:
        probabilities: `(N, L)` per-label probabilities. targets: `(N, L)` 0/1.
    Returns:
        L thresholds.
    """
    probabilities = _float64(probabilities, name="probabilities")
    targets = _float64(targets, name="targets")
    if probabilities.dim() != 2 or probabilities.shape != targets.shape:
        raise NlpLstmError(
            f"pick_thresholds takes (N, L) probabilities and targets of the same shape, got "
            f"{tuple(probabilities.shape)} and {tuple(targets.shape)}"
        )
    thresholds = []
    for scores, truth in zip(probabilities.T, targets.T):
        positives = float(truth.sum())
        if positives == 0:
            thresholds.append(default)
            continue
        order = torch.argsort(scores, descending=True, stable=True)
        scores, truth = scores[order], truth[order]
        true_positives = truth.cumsum(0)  # predicting the top k + 1 as positive
        predicted = torch.arange(1, len(scores) + 1, dtype=torch.float64)
        # Only cut after the last of a run of equal scores: `p >= s` takes all of them.
        last_of_run = torch.ones(len(scores), dtype=torch.bool)
        last_of_run[:-1] = scores[1:] != scores[:-1]
        f1 = 2 * true_positives / (predicted + positives)  # 2 tp / (2 tp + fp + fn)
        f1 = torch.where(last_of_run, f1, -1.0)
        best = int(torch.argmax(f1))  # the first maximum: the highest threshold
        thresholds.append(float(scores[best]))
    return thresholds

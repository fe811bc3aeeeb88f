"""ROUGE-1/2/L/Lsum for summaries, scored by Google's `rouge-score` package (never re-implemented).

Settings: `RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)` (Porter
stemmer, as in See et al. 2017 and most summarization papers). Each example's F1 is summed;
`compute` reports the mean F1 x 100, rounded to 2 decimals.

rougeL vs rougeLsum (Lin 2004, sec. 3.2): rougeL is the longest common subsequence of the whole
texts; rougeLsum is summary-level: for each reference sentence, the union of its LCS hits with every
predicted sentence, summed. rouge-score splits sentences on newlines ("\n"), nothing else, so put one
sentence per line in both texts for it to differ from rougeL (single-line texts score the same).

Known limits of rouge-score's default tokenizer, accepted here:
- It lower-cases and keeps only ASCII letters and digits: every other character becomes a space,
  so "café" scores as the tokens "caf", and text in a non-Latin script scores 0. The shipped
  corpora are English.
- An empty prediction (or reference) scores 0.

Counts add with `+=`; distributed ranks all-reduce `as_tensor()` (float64 sums and the count).
"""

from __future__ import annotations

import functools

import torch

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@functools.lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


class RougeCounts:
    """Running sums of per-example ROUGE F1 (one per `ROUGE_TYPES`) and the example count."""

    def __init__(self) -> None:
        self.f1_sums = {rouge_type: 0.0 for rouge_type in ROUGE_TYPES}
        self.count = 0

    def update(self, predictions: list[str], references: list[str]) -> None:
        """Score each prediction against its reference and add the F1s."""
        predictions, references = list(predictions), list(references)
        if len(predictions) != len(references):
            raise ValueError(
                f"got {len(predictions)} predictions for {len(references)} references"
            )
        scorer = _scorer()
        for prediction, reference in zip(predictions, references):
            # rouge-score takes (target, prediction), reference first.
            scores = scorer.score(reference, prediction)
            for rouge_type in ROUGE_TYPES:
                self.f1_sums[rouge_type] += float(scores[rouge_type].fmeasure)
        self.count += len(predictions)

    def __iadd__(self, other: RougeCounts) -> RougeCounts:
        if not isinstance(other, RougeCounts):
            return NotImplemented
        for rouge_type in ROUGE_TYPES:
            self.f1_sums[rouge_type] += other.f1_sums[rouge_type]
        self.count += other.count
        return self

    def __add__(self, other: RougeCounts) -> RougeCounts:
        if not isinstance(other, RougeCounts):
            return NotImplemented
        total = RougeCounts()
        total += self
        total += other
        return total

    def as_tensor(self) -> torch.Tensor:
        """(len(ROUGE_TYPES) + 1,) float64: the F1 sums in `ROUGE_TYPES` order, then the count; for
        all_reduce(SUM)."""
        return torch.tensor(
            [self.f1_sums[rouge_type] for rouge_type in ROUGE_TYPES] + [float(self.count)],
            dtype=torch.float64,
        )

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor) -> RougeCounts:
        """Rebuild counts from `as_tensor()` output (e.g. after an all-reduce)."""
        values = tensor.detach().cpu().to(torch.float64).flatten().tolist()
        if len(values) != len(ROUGE_TYPES) + 1:
            raise ValueError(f"expected {len(ROUGE_TYPES) + 1} values, got {len(values)}")
        counts = cls()
        for rouge_type, value in zip(ROUGE_TYPES, values):
            counts.f1_sums[rouge_type] = value
        counts.count = round(values[-1])
        return counts

    def compute(self) -> dict:
        """{"rouge1", "rouge2", "rougeL", "rougeLsum"}: mean F1 x 100 rounded to 2 decimals; and
        "count"."""
        result: dict = {
            rouge_type: round(100.0 * self.f1_sums[rouge_type] / self.count, 2)
            if self.count
            else 0.0
            for rouge_type in ROUGE_TYPES
        }
        result["count"] = self.count
        return result

    def __repr__(self) -> str:
        return f"RougeCounts(count={self.count}, {self.compute()})"


def lead_baseline(sources: list[str], k: int) -> list[str]:
    """The lead-k baseline: the first `k` whitespace-separated words of each source."""
    if k < 1:
        raise ValueError(f"lead baseline length k must be >= 1, got {k}")
    return [" ".join(source.split()[:k]) for source in sources]


def rouge_scores(predictions: list[str], references: list[str]) -> dict:
    """ROUGE of `predictions` against `references` in one call (see `RougeCounts.compute`)."""
    counts = RougeCounts()
    counts.update(predictions, references)
    return counts.compute()

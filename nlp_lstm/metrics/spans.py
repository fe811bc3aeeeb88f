"""Sequence-labelling metrics: token accuracy, spans from BIO/BIOES tags, span P/R/F1 per type and
micro/macro, confusion of span types, and the calibration (ECE) of per-token tag probabilities.

Tag schemes (`detect_scheme`):
- "bio" (IOB2): `B-X` starts a span of type X, `I-X` continues it, `O` is outside.
- "bioes": also `E-X` (last token of a span of two or more) and `S-X` (a one-token span).
- "plain": no prefixes at all (part-of-speech tags): only token accuracy applies.

Spans are extracted strictly (`spans`), as seqeval's `mode="strict"` does: a span is a well-formed
chunk, `B-X (I-X)*` in BIO, `B-X (I-X)* E-X | S-X` in BIOES; tags that do not form one belong to no
span. conlleval (and seqeval's default mode) is lenient instead: an `I-X` that follows `O` or another
type opens a span. `repair` rewrites such tags into the well-formed tag conlleval reads them as
(`O I-X` -> `O B-X`), so a model's output or a corpus can be repaired once and then read strictly.

Counts (`SpanCounts`, `TokenCounts`) add with `+=`, so ranks can all-reduce them and ratios are
computed once (STYLE habit 9).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.calibration import CalibrationCounts

OUTSIDE = "O"
SCHEMES = ("bio", "bioes", "plain")


class Span(NamedTuple):
    """Tokens `start` to `end - 1` (end exclusive) labelled `label`."""

    label: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str | None]:
    """`"B-PER"` -> `("B", "PER")`; `"O"` -> `("O", None)`. Only the first `-` splits (`B-geo-loc`)."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, label = tag.partition("-")
    if dash and len(prefix) == 1 and prefix in "BIESUL" and label:
        return prefix, label
    return "", tag  # a plain tag (a part of speech)


def detect_scheme(tags: Iterable[str]) -> str:
    """The scheme of a tag set: "bio", "bioes" or "plain".

    Raises:
        NlpLstmError: prefixed tags beside plain ones, or BILOU's U-/L- prefixes.
    """
    prefixes: set[str] = set()
    plain: list[str] = []
    for tag in set(tags):
        prefix, _ = split_tag(tag)
        if prefix == "":
            plain.append(tag)
        elif prefix != OUTSIDE:
            prefixes.add(prefix)
    if prefixes & {"U", "L"}:
        raise NlpLstmError("the tags use BILOU prefixes (U-, L-); rename U- to S- and L- to E- (BIOES), "
                           "or convert them to BIO")
    if prefixes and plain:
        raise NlpLstmError(f"the tags mix span tags (B-/I-) with tags without a prefix ({', '.join(sorted(plain)[:3])}); "
                           "give every span tag a B-/I- prefix, or use plain tags only")
    if not prefixes:
        return "plain"
    return "bioes" if prefixes & {"E", "S"} else "bio"


def check_consistent_scheme(sentences: Iterable[Sequence[str]], scheme: str) -> None:
    """Refuse BIOES data with BIO-style span ends (a `B-X` or `I-X` that ends a span, which BIOES
    writes `S-X` or `E-X`): the two schemes mixed in one corpus."""
    if scheme != "bioes":
        return
    for row, tags in enumerate(sentences):
        for position, tag in enumerate(tags):
            prefix, label = split_tag(tag)
            if prefix in ("B", "I"):
                following = tags[position + 1] if position + 1 < len(tags) else OUTSIDE
                if split_tag(following) not in (("I", label), ("E", label)):
                    raise NlpLstmError(
                        f"row {row} mixes BIO and BIOES: {tag!r} at token {position} ends a span, which BIOES "
                        f"writes as {'S' if prefix == 'B' else 'E'}-{label}; convert the corpus to one scheme"
                    )


def spans(tags: Sequence[str], scheme: str = "bio") -> list[Span]:
    """The well-formed spans of one sentence's tags (seqeval's strict mode); see the module doc."""
    if scheme == "plain":
        return []
    found: list[Span] = []
    start, label = None, None  # the open span, if any
    for position, tag in enumerate([*tags, OUTSIDE]):
        prefix, tag_label = split_tag(tag)
        if start is not None:
            if prefix == "I" and tag_label == label:
                continue
            if scheme == "bioes" and prefix == "E" and tag_label == label:
                found.append(Span(label, start, position + 1))
                start = None
                continue
            if scheme == "bio":
                found.append(Span(label, start, position))
            start = None  # in BIOES a span not closed by E- is not a span
        if prefix == "B":
            start, label = position, tag_label
        elif prefix == "S" and scheme == "bioes":
            found.append(Span(tag_label, position, position + 1))
    return found


def repair(tags: Sequence[str], scheme: str = "bio") -> tuple[list[str], int]:
    """Tags rewritten as conlleval reads them, and how many were changed.

    BIO: an `I-X` that does not follow `B-X` or `I-X` becomes `B-X`. BIOES likewise (`I-X` -> `B-X`,
    `E-X` -> `S-X` where no span of type X is open), and a span left open (`B-X` or `I-X` not followed
    by `I-X`/`E-X`) is closed (`B-X` -> `S-X`, `I-X` -> `E-X`).
    """
    if scheme == "plain":
        return list(tags), 0
    fixed = list(tags)
    for position, tag in enumerate(fixed):
        prefix, label = split_tag(tag)
        before_prefix, before_label = split_tag(fixed[position - 1]) if position else (OUTSIDE, None)
        open_before = before_prefix in ("B", "I") and before_label == label
        if prefix == "I" and not open_before:
            fixed[position] = f"B-{label}"
        elif scheme == "bioes" and prefix == "E" and not open_before:
            fixed[position] = f"S-{label}"
    if scheme == "bioes":
        for position, tag in enumerate(fixed):
            prefix, label = split_tag(tag)
            following = fixed[position + 1] if position + 1 < len(fixed) else OUTSIDE
            if prefix in ("B", "I") and split_tag(following) not in (("I", label), ("E", label)):
                fixed[position] = f"{'S' if prefix == 'B' else 'E'}-{label}"
    return fixed, sum(old != new for old, new in zip(tags, fixed))


def prepare_tags(tag_lists: Sequence[Sequence[str]], *, where: str = "the data") -> tuple[str, list[list[str]], str | None]:
    """Check a corpus's tags and repair them once, as conlleval reads them.

    Returns:
        the scheme, the repaired tag lists, and one line to show the user when tags were repaired
        (None otherwise), so the repair is said once per corpus, not per sentence.
    Raises:
        NlpLstmError: schemes mixed (plain with prefixed tags, BILOU, BIO span ends in BIOES data).
    """
    scheme = detect_scheme(tag for tags in tag_lists for tag in tags)
    check_consistent_scheme(tag_lists, scheme)
    fixed, changed, rows = [], 0, 0
    for tags in tag_lists:
        repaired, count = repair(tags, scheme)
        fixed.append(repaired)
        changed += count
        rows += bool(count)
    message = None
    if changed:
        message = (f"{where}: {changed:,} tags in {rows:,} sentences continued a span that was never opened "
                   f"(such as I-X after O); read as conlleval does (I-X -> B-X)")
    return scheme, fixed, message


@dataclass
class TokenCounts:
    """Correct and total tokens; `accuracy` is their ratio."""

    correct: int = 0
    total: int = 0

    def update(self, gold: Sequence[str], predicted: Sequence[str]) -> None:
        _check_lengths(gold, predicted)
        self.correct += sum(g == p for g, p in zip(gold, predicted))
        self.total += len(gold)

    def __iadd__(self, other: TokenCounts) -> TokenCounts:
        self.correct += other.correct
        self.total += other.total
        return self

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_tensor(self) -> torch.Tensor:
        """`(2,)` float64: correct, total; for all_reduce(SUM)."""
        return torch.tensor([self.correct, self.total], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor) -> TokenCounts:
        correct, total = (int(round(float(value))) for value in tensor.detach().cpu().flatten())
        return cls(correct, total)


def _f1(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


@dataclass
class SpanCounts:
    """Per-type true positives, false positives and false negatives of exact span matches, and the
    confusion of types: `confusion[gold][predicted]`, where a gold span and a predicted span with the
    same boundaries pair up, and `O` stands for "no span with these boundaries" on either side."""

    scheme: str = "bio"
    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)
    fn: Counter = field(default_factory=Counter)
    confusion: Counter = field(default_factory=Counter)  # (gold label, predicted label) -> count

    def update(self, gold: Sequence[str], predicted: Sequence[str]) -> None:
        _check_lengths(gold, predicted)
        gold_spans, predicted_spans = set(spans(gold, self.scheme)), set(spans(predicted, self.scheme))
        for span in gold_spans & predicted_spans:
            self.tp[span.label] += 1
        for span in predicted_spans - gold_spans:
            self.fp[span.label] += 1
        for span in gold_spans - predicted_spans:
            self.fn[span.label] += 1
        gold_at = {(span.start, span.end): span.label for span in gold_spans}
        predicted_at = {(span.start, span.end): span.label for span in predicted_spans}
        for bounds in gold_at.keys() | predicted_at.keys():
            self.confusion[(gold_at.get(bounds, OUTSIDE), predicted_at.get(bounds, OUTSIDE))] += 1

    def __iadd__(self, other: SpanCounts) -> SpanCounts:
        if other.scheme != self.scheme:
            raise NlpLstmError(f"cannot add span counts of scheme {other.scheme} to counts of scheme {self.scheme}")
        self.tp.update(other.tp)
        self.fp.update(other.fp)
        self.fn.update(other.fn)
        self.confusion.update(other.confusion)
        return self

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.tp) | set(self.fp) | set(self.fn))

    def per_type(self) -> dict[str, dict[str, float]]:
        return {label: _f1(self.tp[label], self.fp[label], self.fn[label]) for label in self.labels}

    def micro(self) -> dict[str, float]:
        return _f1(sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values()))

    def macro(self) -> dict[str, float]:
        """Unweighted means over the types seen in gold or predictions (seqeval's `average="macro"`)."""
        per_type = self.per_type()
        if not per_type:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {key: sum(scores[key] for scores in per_type.values()) / len(per_type)
                for key in ("precision", "recall", "f1")}

    def confusion_table(self) -> dict[str, dict[str, int]]:
        """`{gold label: {predicted label: count}}`, `O` for no span on that side."""
        table: dict[str, dict[str, int]] = {}
        for (gold, predicted), count in sorted(self.confusion.items()):
            table.setdefault(gold, {})[predicted] = count
        return table

    def as_tensor(self, types: Sequence[str]) -> torch.Tensor:
        """Flat float64 over a fixed list of span types (every rank must pass the same, such as the
        types of the model's tags): tp, fp, fn `(L,)` each, then the confusion `(L + 1, L + 1)` with
        `O` first; for all_reduce(SUM)."""
        index = {label: position for position, label in enumerate([OUTSIDE, *types])}
        unknown = (set(self.tp) | set(self.fp) | set(self.fn)) - set(types)
        if unknown:
            raise NlpLstmError(f"span types {', '.join(sorted(unknown))} are not among the model's types")
        confusion = torch.zeros(len(index), len(index), dtype=torch.float64)
        for (gold, predicted), count in self.confusion.items():
            confusion[index[gold], index[predicted]] = count
        counts = [torch.tensor([float(counter[label]) for label in types], dtype=torch.float64)
                  for counter in (self.tp, self.fp, self.fn)]
        return torch.cat([*counts, confusion.flatten()])

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, types: Sequence[str], *, scheme: str = "bio") -> SpanCounts:
        values = [int(round(value)) for value in tensor.detach().cpu().double().flatten().tolist()]
        size = len(types)
        if len(values) != 3 * size + (size + 1) ** 2:
            raise NlpLstmError(f"a span counts tensor over {size} types has {3 * size + (size + 1) ** 2} values, "
                               f"got {len(values)}")
        counts = cls(scheme=scheme)
        for offset, counter in enumerate((counts.tp, counts.fp, counts.fn)):
            counter.update({label: value for label, value in zip(types, values[offset * size : (offset + 1) * size])
                            if value})
        labels = [OUTSIDE, *types]
        for flat, value in enumerate(values[3 * size :]):
            if value:
                counts.confusion[(labels[flat // (size + 1)], labels[flat % (size + 1)])] = value
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"micro": self.micro(), "macro": self.macro(), "per_type": self.per_type(),
                "confusion": self.confusion_table()}


def _check_lengths(gold: Sequence[str], predicted: Sequence[str]) -> None:
    if len(gold) != len(predicted):
        raise NlpLstmError(f"a sentence has {len(gold)} gold tags but {len(predicted)} predicted tags; "
                           "predict one tag per token")


def token_calibration(probabilities: torch.Tensor, gold: torch.Tensor, pad_mask: torch.Tensor,
                      counts: CalibrationCounts | None = None) -> CalibrationCounts:
    """Add real tokens' tag probabilities to calibration counts (ECE of token marginals).

    Args:
        probabilities: `(B, T, K)` per-token tag probabilities (CRF marginals or softmax outputs).
        gold: `(B, T)` gold tag ids.
        pad_mask: `(B, T)` True at padding.
    """
    counts = counts if counts is not None else CalibrationCounts()
    real = ~pad_mask
    counts.update(probabilities[real].detach().double().cpu(), gold[real].cpu())
    return counts

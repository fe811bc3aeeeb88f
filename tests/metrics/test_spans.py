"""Span extraction and span F1 against seqeval (strict and conlleval modes) and hand-computed cases."""

import random

import pytest
import torch
from seqeval.metrics import classification_report, f1_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, IOBES, Entities

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.spans import (
    Span, SpanCounts, TokenCounts, check_consistent_scheme, detect_scheme, prepare_tags, repair, spans, token_calibration,
)

SCHEMES = {"bio": (IOB2, "BI"), "bioes": (IOBES, "BIES")}


def _random_tags(rng, prefixes, length):
    return [rng.choice(["O", "O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC", "geo-loc")]) for _ in range(length)]


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_spans_match_seqeval_strict_and_repair_matches_conlleval(scheme):
    seqeval_scheme, prefixes = SCHEMES[scheme]
    rng = random.Random(7)
    for _ in range(2000):
        tags = _random_tags(rng, prefixes, rng.randint(1, 9))
        strict = Entities([tags], seqeval_scheme, False).entities[0]
        assert sorted(spans(tags, scheme)) == sorted(Span(e.tag, e.start, e.end) for e in strict), tags
        fixed, _ = repair(tags, scheme)
        lenient = get_entities(tags)  # conlleval's reading: (type, first, last) inclusive
        assert sorted(spans(fixed, scheme)) == sorted(Span(t, s, e + 1) for t, s, e in lenient), tags


def test_spans_by_hand():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER", "B-geo-loc"]
    assert spans(tags) == [Span("PER", 0, 2), Span("LOC", 4, 5), Span("geo-loc", 6, 7)]
    assert repair(tags) == (["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-PER", "B-geo-loc"], 2)
    bioes = ["S-PER", "B-LOC", "E-LOC", "B-LOC", "O", "I-PER", "E-PER"]
    assert spans(bioes, "bioes") == [Span("PER", 0, 1), Span("LOC", 1, 3)]
    assert repair(bioes, "bioes")[0] == ["S-PER", "B-LOC", "E-LOC", "S-LOC", "O", "B-PER", "E-PER"]
    assert spans(["NOUN", "VERB"], "plain") == []


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_micro_macro_and_per_type_match_seqeval(scheme):
    seqeval_scheme, prefixes = SCHEMES[scheme]
    rng = random.Random(11)
    gold = [_random_tags(rng, prefixes, rng.randint(1, 12)) for _ in range(300)]
    predicted = [[tag if rng.random() < 0.7 else rng.choice(sentence) for tag in sentence] for sentence in gold]
    counts = SpanCounts(scheme=scheme)
    for g, p in zip(gold, predicted):
        counts.update(g, p)
    kwargs = {"mode": "strict", "scheme": seqeval_scheme}
    assert counts.micro()["f1"] == pytest.approx(f1_score(gold, predicted, average="micro", **kwargs))
    assert counts.macro()["f1"] == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0, **kwargs))
    report = classification_report(gold, predicted, output_dict=True, zero_division=0, **kwargs)
    for label, scores in counts.per_type().items():
        assert scores["precision"] == pytest.approx(report[label]["precision"])
        assert scores["recall"] == pytest.approx(report[label]["recall"])
        assert scores["support"] == report[label]["support"]


def test_counts_add_and_confusion_by_hand():
    first, second = SpanCounts(), SpanCounts()
    first.update(["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-ORG"])  # LOC read as ORG
    second.update(["B-PER", "O"], ["O", "B-LOC"])  # a missed PER, a spurious LOC
    first += second
    assert first.micro() == {"precision": pytest.approx(1 / 3), "recall": pytest.approx(1 / 3),
                             "f1": pytest.approx(1 / 3), "support": 3}
    assert first.confusion_table() == {"LOC": {"ORG": 1}, "O": {"LOC": 1}, "PER": {"O": 1, "PER": 1}}
    types = ["LOC", "ORG", "PER"]
    summed = SpanCounts.from_tensor(SpanCounts().as_tensor(types) + first.as_tensor(types), types)
    assert summed.to_dict() == first.to_dict()
    with pytest.raises(NlpLstmError, match="span types PER are not among"):
        first.as_tensor(["LOC", "ORG"])
    tokens = TokenCounts()
    tokens.update(["A", "B", "C"], ["A", "C", "C"])
    assert tokens.accuracy == pytest.approx(2 / 3)
    assert TokenCounts.from_tensor(tokens.as_tensor() * 2).accuracy == pytest.approx(2 / 3)
    with pytest.raises(NlpLstmError, match="3 gold tags but 2 predicted"):
        tokens.update(["A", "B", "C"], ["A", "B"])


def test_scheme_detection_and_mixing():
    assert detect_scheme(["O", "B-PER", "I-PER"]) == "bio"
    assert detect_scheme(["O", "B-PER", "E-PER", "S-LOC"]) == "bioes"
    assert detect_scheme(["NOUN", "VERB", "ADP"]) == "plain"
    with pytest.raises(NlpLstmError, match="mix span tags"):
        detect_scheme(["B-PER", "NOUN"])
    with pytest.raises(NlpLstmError, match="BILOU"):
        detect_scheme(["U-PER", "O"])
    check_consistent_scheme([["B-PER", "E-PER", "S-LOC"]], "bioes")
    with pytest.raises(NlpLstmError, match="row 1 mixes BIO and BIOES: 'B-LOC' at token 1"):
        check_consistent_scheme([["S-PER"], ["O", "B-LOC", "O"]], "bioes")


def test_token_calibration_counts_real_tokens_only():
    probabilities = torch.tensor([[[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]]], dtype=torch.float64)
    gold = torch.tensor([[0, 1, 0]])
    pad_mask = torch.tensor([[False, False, True]])
    counts = token_calibration(probabilities, gold, pad_mask)
    # two tokens: confidence 0.9 right, 0.6 wrong -> ECE = (|1 - 0.9| + |0 - 0.6|) / 2
    assert counts.examples == 2
    assert counts.expected_calibration_error() == pytest.approx((0.1 + 0.6) / 2)


def test_prepare_tags_repairs_once_and_says_so():
    scheme, fixed, message = prepare_tags([["O", "I-PER", "I-PER"], ["B-LOC"], ["I-LOC", "O"]], where="train")
    assert scheme == "bio"
    assert fixed == [["O", "B-PER", "I-PER"], ["B-LOC"], ["B-LOC", "O"]]
    assert message.startswith("train: 2 tags in 2 sentences")
    assert prepare_tags([["NOUN", "VERB"]]) == ("plain", [["NOUN", "VERB"]], None)
    with pytest.raises(NlpLstmError, match="mixes BIO and BIOES"):
        prepare_tags([["S-PER", "O"], ["B-LOC", "O"]])

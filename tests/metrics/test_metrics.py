"""Metrics against hand-computed values, and against scikit-learn / rouge-score run directly."""

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from sklearn.metrics import f1_score

from nlp_lstm.metrics.classification import ClassificationCounts
from nlp_lstm.metrics.rouge import RougeCounts, lead_baseline, rouge_scores

# ---- classification -----------------------------------------------------------------------------

# 3 classes, 10 examples. Confusion (rows true, columns predicted), worked out by hand:
#   true 0: predicted 0,1,0,0 -> [3, 1, 0]
#   true 1: predicted 1,2     -> [0, 1, 1]
#   true 2: predicted 2,2,0,2 -> [1, 0, 3]
TARGETS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
PREDICTIONS = [0, 1, 0, 1, 2, 2, 2, 0, 2, 0]
LABELS = ["negative", "neutral", "positive"]


def test_multiclass_against_hand_computed_values():
    counts = ClassificationCounts(3)
    counts.update(torch.tensor(PREDICTIONS), torch.tensor(TARGETS))
    result = counts.compute(LABELS)
    assert result["confusion_matrix"] == [[3, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert result["accuracy"] == pytest.approx(0.7)
    # class 0: tp 3, fp 1, fn 1; class 1: tp 1, fp 1, fn 1; class 2: tp 3, fp 1, fn 1
    assert result["per_class"]["negative"] == pytest.approx(
        {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    )
    assert result["per_class"]["neutral"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert result["per_class"]["positive"]["support"] == 4
    assert result["macro_f1"] == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert result["labels"] == LABELS
    assert result["count"] == 10
    assert result["multi_label"] is False


def test_zero_division_gives_zero_and_absent_classes_do_not_count():
    # Class 2 occurs but is never predicted; class 3 never occurs at all.
    counts = ClassificationCounts(4)
    counts.update(np.array([0, 1, 1]), np.array([0, 1, 2]))
    result = counts.compute(["a", "b", "c", "d"])
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result["per_class"]["b"]["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # Mean over the classes seen in targets or predictions (a, b, c), as sklearn does by default.
    assert result["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert result["macro_f1"] == pytest.approx(f1_score([0, 1, 2], [0, 1, 1], average="macro", zero_division=0))
    empty = ClassificationCounts(2).compute(["x", "y"])
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0 and empty["count"] == 0


def test_counts_add_like_one_big_update_and_survive_all_reduce_layout():
    whole = ClassificationCounts(3)
    whole.update(PREDICTIONS, TARGETS)
    first, second = ClassificationCounts(3), ClassificationCounts(3)
    first.update(PREDICTIONS[:4], TARGETS[:4])
    second.update(PREDICTIONS[4:], TARGETS[4:])
    summed = first + second
    first += second
    assert first.compute(LABELS) == whole.compute(LABELS)
    assert summed.compute(LABELS) == whole.compute(LABELS)
    # What all_reduce(SUM) does to the per-rank tensors.
    rank_a, rank_b = ClassificationCounts(3), ClassificationCounts(3)
    rank_a.update(PREDICTIONS[::2], TARGETS[::2])
    rank_b.update(PREDICTIONS[1::2], TARGETS[1::2])
    reduced = rank_a.as_tensor() + rank_b.as_tensor()
    assert reduced.dtype == torch.int64
    rebuilt = ClassificationCounts.from_tensor(reduced, num_classes=3)
    assert rebuilt.compute(LABELS) == whole.compute(LABELS)


def test_multi_label_exact_match_and_macro_f1_over_labels():
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    predictions = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    counts = ClassificationCounts(3)  # multi-label inferred from the (N, L) shape
    counts.update(predictions.bool(), targets.float())  # bool predictions, multi-hot floats
    result = counts.compute(["sports", "politics", "science"])
    assert result["accuracy"] == pytest.approx(0.5)  # documents 1 and 3 are exactly right
    assert result["per_class"]["sports"]["f1"] == 1.0
    assert result["per_class"]["politics"]["f1"] == 1.0
    # science: tp 0, fp 1, fn 1, tn 2
    assert result["per_class"]["science"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert result["label_confusion"]["science"] == [[2, 1], [1, 0]]  # [[tn, fp], [fn, tp]]
    # (L, L): documents with true label i predicted as label j; the diagonal is tp.
    assert result["confusion_matrix"] == [[2, 1, 1], [1, 2, 1], [1, 0, 0]]
    assert result["multi_label"] is True
    # A rank that saw no documents still reduces to multi-label counts.
    idle_rank = ClassificationCounts(3)
    reduced = counts.as_tensor() + idle_rank.as_tensor()
    rebuilt = ClassificationCounts.from_tensor(reduced, num_classes=3)
    assert rebuilt.compute(["sports", "politics", "science"]) == result


def test_multi_label_macro_f1_averages_over_every_label_like_sklearn():
    # Label "c" never occurs in targets or predictions: sklearn (zero_division=0) still averages it,
    # with F1 0: (1 + 0 + 0) / 3. Averaging only the labels seen would give 1/2.
    targets = np.array([[1, 0, 0], [0, 1, 0]])
    predictions = np.array([[1, 0, 0], [0, 0, 0]])
    counts = ClassificationCounts(3)
    counts.update(predictions, targets)
    result = counts.compute(["a", "b", "c"])
    assert result["macro_f1"] == pytest.approx(1 / 3)
    assert result["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    # Few examples, several classes: some classes are missing from targets, predictions or both.
    num_classes, count = int(rng.integers(2, 7)), int(rng.integers(1, 12))
    names = [f"class{index}" for index in range(num_classes)]
    targets = rng.integers(0, num_classes, count)
    predictions = np.where(rng.random(count) < 0.5, targets, rng.integers(0, num_classes, count))
    counts = ClassificationCounts(num_classes)
    counts.update(predictions[: count // 2], targets[: count // 2])  # two batches: the counts add
    counts.update(predictions[count // 2 :], targets[count // 2 :])
    result = counts.compute(names)
    assert result["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))
    per_class = f1_score(targets, predictions, average=None, labels=range(num_classes), zero_division=0)
    assert [result["per_class"][name]["f1"] for name in names] == pytest.approx(per_class.tolist())

    label_targets = (rng.random((count, num_classes)) < 0.3).astype(int)
    flips = rng.random((count, num_classes)) < 0.3
    label_predictions = np.where(flips, 1 - label_targets, label_targets)
    label_predictions[:, -1] = 0  # the last label is never predicted (and maybe never true)
    counts = ClassificationCounts(num_classes)
    counts.update(label_predictions, label_targets)
    result = counts.compute(names)
    expected = f1_score(label_targets, label_predictions, average="macro", zero_division=0)
    assert result["macro_f1"] == pytest.approx(expected)
    assert result["accuracy"] == pytest.approx(float((label_predictions == label_targets).all(axis=1).mean()))


def test_classification_input_errors():
    counts = ClassificationCounts(3)
    with pytest.raises(ValueError, match="outside"):
        counts.update([0, 3], [0, 1])
    with pytest.raises(ValueError, match="same shape"):
        counts.update([0, 1], [0])
    with pytest.raises(ValueError, match=r"single-label counts take \(N,\) class ids"):
        ClassificationCounts(3, multi_label=False).update([[0, 1, 0]], [[0, 1, 0]])
    with pytest.raises(ValueError, match=r"multi-label counts take \(N, 3\)"):
        ClassificationCounts(3).update([[0, 1]], [[0, 1]])
    for bad in ([[0, 2, 1]], [[0, -1, 1]]):  # neither above 1 nor below 0
        with pytest.raises(ValueError, match="0/1 indicators"):
            ClassificationCounts(3).update(bad, [[0, 1, 1]])
        with pytest.raises(ValueError, match="0/1 indicators"):
            ClassificationCounts(3).update([[0, 1, 1]], bad)
    with pytest.raises(ValueError, match="outside"):
        ClassificationCounts(3).update([0, -1], [0, 1])
    counts.update([0], [0])  # now single-label
    with pytest.raises(ValueError, match="2 label names for 3 classes"):
        counts.compute(["a", "b"])
    with pytest.raises(ValueError, match="cannot add"):
        counts += ClassificationCounts(2)


# ---- ROUGE --------------------------------------------------------------------------------------


def test_rouge_against_hand_computed_values_with_stemming():
    # Stemmed tokens: prediction [the cat are run fast], reference [the cat ran fast].
    # ROUGE-1: overlap 3 -> P 3/5, R 3/4, F 2/3. ROUGE-2: "the cat" only -> P 1/4, R 1/3, F 2/7.
    # ROUGE-L: LCS "the cat fast" -> F 2/3. Without stemming ROUGE-1 would be 4/9.
    scores = rouge_scores(["The cats are running fast"], ["the cat ran fast"])
    # One line each, so summary-level rougeLsum equals rougeL.
    assert scores == {"rouge1": 66.67, "rouge2": 28.57, "rougeL": 66.67, "rougeLsum": 66.67, "count": 1}


def test_rouge_mean_over_examples_and_empty_prediction():
    scores = rouge_scores(
        ["The cats are running fast", "a perfect copy", ""],
        ["the cat ran fast", "a perfect copy", "something was expected"],
    )
    assert scores["rouge1"] == round(100 * (2 / 3 + 1 + 0) / 3, 2)
    assert scores["count"] == 3
    assert rouge_scores([""], ["reference"]) == {
        "rouge1": 0.0,
        "rouge2": 0.0,
        "rougeL": 0.0,
        "rougeLsum": 0.0,
        "count": 1,
    }
    assert RougeCounts().compute() == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rougeLsum": 0.0, "count": 0}


def test_rouge_counts_add_and_round_trip_tensor():
    predictions = ["the cat sat on the mat", "dogs bark loudly", "hello world"]
    references = ["a cat sat on a mat", "the dog barked", "hello there world"]
    whole = RougeCounts()
    whole.update(predictions, references)
    first, second = RougeCounts(), RougeCounts()
    first.update(predictions[:1], references[:1])
    second.update(predictions[1:], references[1:])
    first += second
    assert first.compute() == whole.compute()
    reduced = RougeCounts.from_tensor(first.as_tensor())
    assert reduced.compute() == whole.compute()
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        whole.update(["a", "b"], ["a"])


def test_rouge_lsum_is_summary_level_over_newline_separated_sentences():
    # Reference sentences r1 = "the cat sat on the mat", r2 = "a dog ran home"; the prediction says
    # them in the other order. Whole-text LCS (rougeL): the longer sentence, 6 of 10 tokens on both
    # sides -> F 0.6. Summary-level LCS (Lin 2004 sec. 3.2): each reference sentence's union LCS with
    # the predicted sentences: 6 + 4 = 10 of 10 -> F 1.0.
    reference = "The cat sat on the mat.\nA dog ran home."
    prediction = "A dog ran home.\nThe cat sat on the mat."
    scores = rouge_scores([prediction], [reference])
    assert scores["rougeL"] == 60.0 and scores["rougeLsum"] == 100.0
    # Partial overlap, against rouge-score itself (reference first): r1 hits "the cat sat", r2 hits
    # "dog home" (stemmed "ran" != "runs"); and without the newlines rougeLsum falls back to rougeL.
    direct = rouge_scorer.RougeScorer(["rougeL", "rougeLsum"], use_stemmer=True)
    pairs = [
        ("The dog runs home.\nThe cat sat.", reference),
        ("The dog runs home. The cat sat.", reference.replace("\n", " ")),
    ]
    for guess, truth in pairs:
        expected = direct.score(truth, guess)
        ours = rouge_scores([guess], [truth])
        assert ours["rougeLsum"] == round(100 * expected["rougeLsum"].fmeasure, 2)
        assert ours["rougeL"] == round(100 * expected["rougeL"].fmeasure, 2)
    split, joined = (rouge_scores([g], [t]) for g, t in pairs)
    assert split["rougeLsum"] > split["rougeL"]
    assert joined["rougeLsum"] == joined["rougeL"]
    # By hand for the split pair: hits 3 (r1) + 2 (r2) = 5; P 5/7, R 5/10 -> F 2PR/(P+R) = 10/17.
    assert split["rougeLsum"] == round(100 * 10 / 17, 2)


def test_rouge_tokenizer_drops_non_ascii_letters():
    # Documented limit of rouge-score's default tokenizer: only [a-z0-9] survive.
    assert rouge_scores(["日本語のテキスト"], ["日本語のテキスト"])["rouge1"] == 0.0


def test_lead_baseline():
    sources = ["one two  three\nfour five", "short", ""]
    assert lead_baseline(sources, 3) == ["one two three", "short", ""]
    with pytest.raises(ValueError):
        lead_baseline(sources, 0)

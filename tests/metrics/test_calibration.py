"""Calibration metrics: ECE and reliability bins by hand, Brier against scikit-learn, temperature
scaling on synthetic overconfident logits, per-label thresholds."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, f1_score

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.calibration import (
    CalibrationCounts,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    pick_thresholds,
    reliability_bins,
)

# Six examples, three classes; with 5 bins: confidences .9 and .85 (bin 4), .5 .45 .6 (bin 2: .6 sits
# on an edge and bins are (lo, hi]), .7 (bin 3).
HAND_PROBABILITIES = [
    [0.9, 0.05, 0.05],  # right
    [0.1, 0.85, 0.05],  # wrong (true class 2)
    [0.5, 0.3, 0.2],  # right
    [0.45, 0.35, 0.2],  # wrong (true class 1)
    [0.2, 0.2, 0.6],  # right
    [0.7, 0.2, 0.1],  # right
]
HAND_LABELS = [0, 2, 0, 1, 2, 0]


def test_ece_and_bins_on_six_examples_by_hand():
    bins = reliability_bins(HAND_PROBABILITIES, HAND_LABELS, bins=5)
    assert bins.edges == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert bins.count == [0, 0, 3, 1, 2]
    assert bins.confidence == pytest.approx([0.0, 0.0, (0.5 + 0.45 + 0.6) / 3, 0.7, (0.9 + 0.85) / 2])
    assert bins.accuracy == pytest.approx([0.0, 0.0, 2 / 3, 1.0, 0.5])
    # ECE = 3/6 |2/3 - 0.51667| + 1/6 |1 - 0.7| + 2/6 |0.5 - 0.875| = 0.075 + 0.05 + 0.125
    assert expected_calibration_error(HAND_PROBABILITIES, HAND_LABELS, bins=5) == pytest.approx(0.25)
    assert bins.ece == pytest.approx(0.25)
    assert bins.to_dict()["count"] == [0, 0, 3, 1, 2]


def test_multiclass_brier_by_hand():
    # Per example sum_c (p_c - onehot_c)^2: .015, 1.635, .38, .665, .24, .14 -> mean 3.075 / 6.
    assert brier_score(HAND_PROBABILITIES, HAND_LABELS) == pytest.approx(3.075 / 6)


def test_binary_brier_matches_scikit_learn_and_the_two_class_form_is_twice_it():
    rng = np.random.default_rng(0)
    positive = rng.uniform(size=200)
    labels = (rng.uniform(size=200) < positive).astype(int)
    assert brier_score(positive, labels) == pytest.approx(brier_score_loss(labels, positive))
    two_class = np.stack([1 - positive, positive], axis=1)
    assert brier_score(two_class, labels) == pytest.approx(2 * brier_score_loss(labels, positive))


def test_binary_ece_uses_the_predicted_class_probability():
    positive = torch.tensor([0.9, 0.2, 0.65, 0.3, 0.05, 0.55])
    labels = torch.tensor([1, 1, 0, 0, 0, 1])
    # Confidences max(p, 1 - p): .9 right, .8 wrong, .65 wrong, .7 right, .95 right, .55 right.
    bins = reliability_bins(positive, labels, bins=4)  # (.5, .75]: .65 .7 .55; (.75, 1]: .9 .8 .95
    assert bins.count == [0, 0, 3, 3]
    assert bins.accuracy == pytest.approx([0, 0, 2 / 3, 2 / 3])
    expected = 0.5 * abs(2 / 3 - (0.65 + 0.7 + 0.55) / 3) + 0.5 * abs(2 / 3 - (0.9 + 0.8 + 0.95) / 3)
    assert expected_calibration_error(positive, labels, bins=4) == pytest.approx(expected)
    two_class = torch.stack([1 - positive, positive], dim=1)
    assert expected_calibration_error(two_class, labels, bins=4) == pytest.approx(expected)


def test_counts_add_up_like_one_pass_and_survive_a_tensor_round_trip():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 4)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=300)
    whole = CalibrationCounts(10)
    whole.update(probabilities, labels)
    first, second = CalibrationCounts(10), CalibrationCounts(10)
    first.update(probabilities[:120], labels[:120])
    second.update(probabilities[120:], labels[120:])
    first += CalibrationCounts.from_tensor(second.as_tensor())  # what an all-reduce hands back
    assert first.count.tolist() == whole.count.tolist()
    assert first.expected_calibration_error() == pytest.approx(whole.expected_calibration_error())
    assert first.brier_score() == pytest.approx(whole.brier_score())
    assert whole.brier_score() == pytest.approx(((probabilities - np.eye(4)[labels]) ** 2).sum(axis=1).mean())
    with pytest.raises(NlpLstmError, match="over 5 bins"):
        first += CalibrationCounts(5)


def test_shape_mismatches_are_one_line_errors():
    with pytest.raises(NlpLstmError, match=r"probabilities \(3, 2\) and labels \(4,\) do not fit"):
        expected_calibration_error(np.full((3, 2), 0.5), [0, 1, 0, 1])
    with pytest.raises(NlpLstmError, match=r"class ids in \[0, 2\)"):
        brier_score(np.full((2, 2), 0.5), [0, 2])
    with pytest.raises(NlpLstmError, match="empty"):
        brier_score([], [])


# -- temperature scaling -----------------------------------------------------------------------


def _numpy_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_probabilities = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


@pytest.mark.parametrize("generating_temperature", [2.5, 0.6])
def test_temperature_recovers_the_generating_one(generating_temperature):
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 5, generator=generator) * 2.0
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator).squeeze(1)
    observed = true_logits * generating_temperature  # over- (T > 1) or under-confident (T < 1)
    temperature = fit_temperature(observed, labels)
    assert temperature == pytest.approx(generating_temperature, rel=0.05)
    # It is the NLL's minimum, checked with an independent numpy NLL.
    logits, ids = observed.numpy().astype(np.float64), labels.numpy()
    best = _numpy_nll(logits, ids, temperature)
    assert best <= _numpy_nll(logits, ids, temperature * 1.01) and best <= _numpy_nll(logits, ids, temperature / 1.01)


def test_binary_temperature_recovers_the_generating_one():
    generator = torch.Generator().manual_seed(1)
    true_logits = torch.randn(20000, generator=generator) * 2.0
    labels = torch.bernoulli(torch.sigmoid(true_logits), generator=generator)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature((true_logits * 3.0).unsqueeze(1), labels) == pytest.approx(3.0, rel=0.05)  # (N, 1)


def test_temperature_scaling_lowers_ece_on_overconfident_logits():
    generator = torch.Generator().manual_seed(2)
    true_logits = torch.randn(5000, 3, generator=generator) * 1.5
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator).squeeze(1)
    observed = true_logits * 3.0
    temperature = fit_temperature(observed, labels)
    before = expected_calibration_error(observed.softmax(-1), labels)
    after = expected_calibration_error((observed / temperature).softmax(-1), labels)
    assert before > 0.1 and after < before / 3


def test_temperature_stops_at_its_bound_on_separable_data():
    logits = torch.tensor([[3.0, -3.0], [-2.0, 2.0]])
    assert fit_temperature(logits, torch.tensor([0, 1]), min_temperature=0.05) == pytest.approx(0.05, rel=1e-3)
    with pytest.raises(NlpLstmError, match="do not fit"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(3, 2, 1))


# -- per-label thresholds ---------------------------------------------------------------------


def test_thresholds_on_a_hand_example():
    probabilities = np.array(
        [  # label 0            label 1   label 2   label 3
            [0.9, 0.7, 0.9, 0.4],
            [0.8, 0.7, 0.5, 0.3],
            [0.3, 0.1, 0.4, 0.2],
            [0.6, 0.4, 0.3, 0.9],
            [0.2, 0.9, 0.1, 0.1],
        ]
    )
    targets = np.array([[1, 1, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    # label 0, cuts at .9 .8 .6 .3 .2: F1 = 2/4, 2/5, 4/6, 6/7, 6/8 -> 0.3.
    # label 1: .9 gives 0; .7 takes both .7s (tp 2, 3 predicted): 4/5; .4: 4/6 -> 0.7.
    # label 2: .9: 2/3; .5: 2/4; .4: 2/5; .3: 4/6 = 2/3 again -> the tie goes to the higher 0.9.
    # label 3: no positive target -> the default.
    assert pick_thresholds(probabilities, targets) == [0.3, 0.7, 0.9, 0.5]


def test_thresholds_reach_the_best_f1_of_every_candidate():
    rng = np.random.default_rng(4)
    targets = rng.integers(0, 2, size=(80, 3))
    probabilities = np.clip(targets * 0.3 + rng.uniform(size=(80, 3)) * 0.7, 0, 1).round(2)  # ties included
    thresholds = pick_thresholds(probabilities, targets)
    for label, threshold in enumerate(thresholds):
        scores, truth = probabilities[:, label], targets[:, label]
        candidates = {t: f1_score(truth, scores >= t, zero_division=0) for t in np.unique(scores)}
        best = max(candidates.values())
        assert f1_score(truth, scores >= threshold, zero_division=0) == pytest.approx(best)
        assert threshold == max(t for t, value in candidates.items() if value == pytest.approx(best))


def test_thresholds_need_matching_two_dimensional_inputs():
    with pytest.raises(NlpLstmError, match="same shape"):
        pick_thresholds(np.zeros((4, 2)), np.zeros((4, 3)))
    assert pick_thresholds(torch.tensor([[0.2], [0.8]]), torch.tensor([[0], [1]])) == [pytest.approx(0.8)]


# -- the reliability diagram (nlp_lstm/plots.py) -------------------------------------------------


def test_reliability_diagram_writes_a_png_that_is_not_blank(tmp_path):
    from matplotlib.image import imread

    from nlp_lstm.plots import plot_reliability_diagram

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 4, generator=generator) * 1.5
    labels = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
    bins = reliability_bins((logits * 2.5).softmax(-1), labels)
    path = tmp_path / "plots" / "reliability.png"
    plot_reliability_diagram(bins, path, title="Overconfident")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(path)[..., :3]  # (H, W, 3) floats in [0, 1]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    non_white = (pixels < 0.95).any(axis=-1).mean()
    assert 0.05 < non_white < 0.9
    blue = (np.abs(pixels - np.array([31, 119, 180]) / 255).max(axis=-1) < 0.05).mean()  # tab:blue bars
    assert blue > 0.03
    plot_reliability_diagram(bins.to_dict(), tmp_path / "from_dict.png")  # metrics.json's form works too
    assert (tmp_path / "from_dict.png").stat().st_size > 1000


def test_reliability_diagram_refuses_empty_or_ragged_bins(tmp_path):
    from nlp_lstm.plots import plot_reliability_diagram

    empty = {"edges": [0.0, 0.5, 1.0], "confidence": [0.0, 0.0], "accuracy": [0.0, 0.0], "count": [0, 0]}
    with pytest.raises(ValueError, match="no examples"):
        plot_reliability_diagram(empty, tmp_path / "never.png")
    with pytest.raises(ValueError, match="M \\+ 1 edges"):
        plot_reliability_diagram({**empty, "edges": [0.0, 1.0]}, tmp_path / "never.png")
    assert not list(tmp_path.iterdir())

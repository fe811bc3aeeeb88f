"""Temperature scaling and the stacking of the BiLSTM with the linear part, fitted at the end of training, saved, and used by
predict and evaluate."""

import json

import datasets
import pytest
import torch

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.metrics.calibration import fit_temperature
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.stages.classification import calibrate
from tests.helpers import invoke, sentiment_rows, write_csv


def test_the_saved_temperature_is_fitted_on_validation_and_scales_every_score(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(300, seed=1))
    metrics = nlp_lstm.train(output_dir=tmp_path / "m", source=DataSource(train_file=str(train)),
                             tokenizer_settings={"kind": "spacy", "vocab_size": 60, "min_freq": 1},
                             model={"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0},
                             training=TrainConfig(epochs=8, batch_size=16, learning_rate=0.02, seed=3),
                             progress=False, device="cpu")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    temperature = saved["temperature"]
    assert temperature == metrics["temperature"] and temperature != 1.0
    model = nlp_lstm.load(tmp_path / "m", device="cpu")
    # Refit independently from the validation rows' logits: the same temperature.
    from nlp_lstm.data.sources import load_split

    validation = load_split(DataSource(train_file=str(train)), "validation")
    texts, labels = validation["text"], torch.tensor([model.labels.index(y) for y in validation["label"]])
    logits = []
    for indices, batch in model.batches(texts):
        rows = model.logits(batch).squeeze(-1).detach()
        logits += [(index, value) for index, value in zip(indices, rows.tolist())]
    logits = torch.tensor([value for _, value in sorted(logits)])
    assert abs(fit_temperature(logits, labels) - temperature) < 1e-3 * temperature
    # predict's score is sigmoid(logit / T) of the predicted class.
    positive = torch.sigmoid(logits / temperature)
    predictions = model.predict(texts)
    for prediction, p in zip(predictions, positive.tolist()):
        expected = p if prediction["label"] == model.labels[1] else 1 - p
        assert abs(prediction["score"] - round(expected, 4)) <= 1e-4
    for split in ("validation", "test"):
        assert 0 <= metrics[split]["ece"] <= 1 and 0 <= metrics[split]["brier"] <= 1
        assert "ece_before_scaling" in metrics[split]
    result = invoke("evaluate", "--model", tmp_path / "m", "--train-file", train, "--format", "json",
                    "--plots-dir", tmp_path / "plots", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "ece", "brier"} <= set(report)
    assert abs(report["ece"] - metrics["test"]["ece"]) < 1e-9
    assert (tmp_path / "plots" / "reliability_diagram.png").is_file()
    assert (tmp_path / "m" / "plots" / "reliability_diagram.png").is_file()


def _stacked_network(task: str, num_labels: int):
    """A classifier whose BiLSTM says nothing (head weights and bias zero) and whose linear part has
    16 word n-gram features."""
    network = TextClassifier(ClassifierConfig(vocab_size=10, num_labels=num_labels, task=task, embedding_dim=4,
                                              hidden_size=4, dropout=0.0, ngram_features=16))  # fmt: skip
    with torch.no_grad():
        network.head.weight.zero_()
        network.head.bias.zero_()
    return network


def _validation(rows):
    """Rows of (feature id, label): one token and one n-gram feature of TF-IDF value 1 per text."""
    return datasets.Dataset.from_dict({"input_ids": [[3] for _ in rows], "length": [1 for _ in rows],
                                       "ngram_ids": [[r[0]] for r in rows], "ngram_weights": [[1.0] for _ in rows],
                                       "labels": [r[1] for r in rows]})  # fmt: skip


def test_the_linear_part_leads_when_it_alone_is_right_and_is_switched_off_when_it_misleads():
    # The BiLSTM knows only a prior (its head's bias: every text leans positive), the labels are
    # balanced, and the linear part is right 4 times in 5 (not separable, so the temperature cannot
    # make any mix perfect): the more it counts against that prior, the lower the NLL, so the whole
    # share goes to it; a backwards linear part only hurts, so it gets none.
    rows = [(5, 1), (6, 0)] * 20 + [(5, 0), (6, 1)] * 5
    for sign, expected in [(1.0, 1.0), (-1.0, 0.0)]:  # the linear part right, then backwards
        network = _stacked_network("binary", 2)
        with torch.no_grad():  # feature 5 -> positive, feature 6 -> negative (times `sign`), nothing else
            network.head.bias.fill_(0.5)
            network.ngrams.table[5] = sign * 0.3
            network.ngrams.table[6] = -sign * 0.3
        before = network.ngrams.table.clone()
        _, _, share = calibrate(network, _validation(rows), labels=["neg", "pos"], device=torch.device("cpu"))
        assert share == expected
        torch.testing.assert_close(network.ngrams.table, before * expected)  # saved as the share says
        assert network.head.bias.item() == pytest.approx(0.5 * (1 - expected))


def test_a_mix_wins_when_each_part_knows_something_the_other_does_not():
    # The linear part knows features 5 (positive) and 6 (negative) and says nothing on feature 7;
    # the BiLSTM (its bias) knows that feature-7 texts lean positive. Neither part alone is best: the
    # share is the argmin over the grid of the NLL worked out here, strictly between 0 and 1.
    rows = [(5, 1)] * 20 + [(7, 1)] * 14 + [(7, 0)] * 6 + [(6, 0)] * 20
    network = _stacked_network("binary", 2)
    with torch.no_grad():
        network.head.bias.fill_(0.8)
        network.ngrams.table[5], network.ngrams.table[6] = 2.0, -2.0
    _, _, share = calibrate(network, _validation(rows), labels=["neg", "pos"], device=torch.device("cpu"))

    def nll(a: float) -> float:  # the best temperature's NLL, by a fine grid over T
        logits = torch.tensor([(1 - a) * 0.8 + a * {5: 2.0, 6: -2.0, 7: 0.0}[f] for f, _ in rows], dtype=torch.float64)
        labels = torch.tensor([y for _, y in rows], dtype=torch.float64)
        return min(torch.nn.functional.binary_cross_entropy_with_logits(logits / t, labels).item()
                   for t in torch.logspace(-2, 2, 4001, dtype=torch.float64).tolist())

    expected = min([i / 10 for i in range(11)], key=nll)
    assert 0.0 < expected < 1.0
    assert share == expected


def test_multilabel_models_get_one_share_per_label():
    # Label 0 follows feature 5, label 1 is the opposite of what the linear part says about it.
    # Multi-label shares are chosen without a temperature (such models predict at T = 1).
    rows = [(5, [1.0, 1.0]), (6, [0.0, 0.0])] * 20
    network = _stacked_network("multilabel", 2)
    with torch.no_grad():
        network.ngrams.table[5] = torch.tensor([0.3, -0.3])
        network.ngrams.table[6] = torch.tensor([-0.3, 0.3])
    _, thresholds, share = calibrate(network, _validation(rows), labels=["a", "b"], device=torch.device("cpu"))
    assert share == [1.0, 0.0]
    assert network.ngrams.table[5].tolist() == pytest.approx([0.3, 0.0])
    assert len(thresholds) == 2

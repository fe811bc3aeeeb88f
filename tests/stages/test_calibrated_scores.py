"""Temperature scaling and the n-gram bag's weight, fitted at the end of training, saved, and used by
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


def _bag_network(task: str, num_labels: int):
    """A classifier whose BiLSTM says nothing (head weights and bias zero): its logits are the bag's."""
    network = TextClassifier(ClassifierConfig(vocab_size=10, num_labels=num_labels, task=task, embedding_dim=4,
                                              hidden_size=4, dropout=0.0, ngram_buckets=16))  # fmt: skip
    with torch.no_grad():
        network.head.weight.zero_()
        network.head.bias.zero_()
    return network


def _validation(rows):
    return datasets.Dataset.from_dict({"input_ids": [r[0] for r in rows], "length": [len(r[0]) for r in rows],
                                       "labels": [r[1] for r in rows]})  # fmt: skip


def test_the_bag_leads_when_it_alone_is_right_and_is_switched_off_when_it_misleads():
    # The BiLSTM knows only a prior (its head's bias: every text leans positive), the labels are
    # balanced, and the bag is right 4 times in 5 (not separable, so the temperature cannot make any
    # weight perfect): the more the bag counts against that prior, the lower the NLL, so the largest
    # weight wins; a backwards bag only hurts, so it gets 0.
    rows = [([5], 1), ([6], 0)] * 20 + [([5], 0), ([6], 1)] * 5
    for sign, expected in [(1.0, 4.0), (-1.0, 0.0)]:  # the bag right, then the bag backwards
        network = _bag_network("binary", 2)
        with torch.no_grad():  # token 5 -> positive, token 6 -> negative (times `sign`), nothing else
            network.head.bias.fill_(0.5)
            network.ngrams.table.weight[5] = sign * 0.3
            network.ngrams.table.weight[6] = -sign * 0.3
        before = network.ngrams.table.weight.clone()
        _, _, weight = calibrate(network, _validation(rows), labels=["neg", "pos"], device=torch.device("cpu"))
        assert weight == expected
        torch.testing.assert_close(network.ngrams.table.weight, before * expected)  # saved as the weight says


def test_multilabel_bags_get_one_weight_per_label():
    # Label 0 follows token 5, label 1 is the opposite of what the bag says about it. Multi-label
    # weights are chosen without a temperature: for label 0 the bag is always right, so its NLL falls
    # as the weight grows and the largest wins.
    rows = [([5], [1.0, 1.0]), ([6], [0.0, 0.0])] * 20
    network = _bag_network("multilabel", 2)
    with torch.no_grad():
        network.ngrams.table.weight[5] = torch.tensor([0.3, -0.3])
        network.ngrams.table.weight[6] = torch.tensor([-0.3, 0.3])
    _, thresholds, weight = calibrate(network, _validation(rows), labels=["a", "b"], device=torch.device("cpu"))
    assert weight == [4.0, 0.0]
    assert network.ngrams.table.weight[5].tolist() == pytest.approx([1.2, 0.0])
    assert len(thresholds) == 2

"""Temperature scaling fitted at the end of training, saved, and used by predict and evaluate."""

import json

import torch

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.metrics.calibration import fit_temperature
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

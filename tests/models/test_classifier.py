import json

import pytest
import torch

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.models.classifier import TextClassifier
from tests.helpers import sentiment_rows, write_csv

SMALL = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0, "pooling": "max"}


@pytest.mark.parametrize("pooling", ["max", "mean", "last", "attention", "concat"])
def test_padding_and_batch_order_never_change_logits(pooling):
    model = TextClassifier(ClassifierConfig(num_labels=3, vocab_size=30, **{**SMALL, "pooling": pooling})).eval()
    short = torch.tensor([[5, 6, 7]])
    long = torch.tensor([[8, 9, 10, 11, 12, 13]])
    alone = model(short, torch.tensor([3]), torch.zeros(1, 3, dtype=torch.bool))
    padded = torch.tensor([[8, 9, 10, 11, 12, 13], [5, 6, 7, 0, 0, 0]])
    mask = padded == 0
    batch = model(padded, torch.tensor([6, 3]), mask)
    swapped = model(padded.flip(0), torch.tensor([3, 6]), mask.flip(0))
    torch.testing.assert_close(batch[1:], alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(swapped.flip(0), batch, rtol=0, atol=1e-6)
    assert model(long, torch.tensor([6]), torch.zeros(1, 6, dtype=torch.bool)).shape == (1, 3)


def test_binary_task_has_one_logit_and_two_scores():
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=30, **SMALL))
    logits = model(torch.tensor([[4, 5]]), torch.tensor([2]), torch.zeros(1, 2, dtype=torch.bool))
    assert logits.shape == (1, 1)
    scores = model.scores(logits)
    torch.testing.assert_close(scores.sum(-1), torch.ones(1))


def test_train_learns_beats_majority_and_reloads_identically(tmp_path):
    train_file = write_csv(tmp_path / "train.csv", sentiment_rows(400, seed=1))
    test_file = write_csv(tmp_path / "test.csv", sentiment_rows(100, seed=2))
    output = tmp_path / "model"
    metrics = nlp_lstm.train(
        output_dir=output,
        source=DataSource(train_file=str(train_file), test_file=str(test_file), validation_fraction=0.2),
        tokenizer_settings={"kind": "spacy", "min_freq": 1},
        model=SMALL,
        training=TrainConfig(epochs=6, batch_size=16, learning_rate=1e-2, seed=3),
        progress=False,
    )
    # Held-out accuracy far above the majority class (about 0.5 here).
    assert metrics["test"]["accuracy"] >= 0.9
    for name in ("README.md", "config.json", "model.safetensors", "tokenizer/tokenizer.json", "metrics.json",
                 "train_log.jsonl", "plots/training_curves.png", "plots/confusion_matrix.png"):
        assert (output / name).is_file(), name
    config = json.loads((output / "config.json").read_text())
    assert config["kind"] == "classifier" and config["labels"] == ["neg", "pos"]
    texts = ["a really great film", "the plot was awful", "   "]
    first = nlp_lstm.load(output).predict(texts)
    second = nlp_lstm.load(output).predict(texts)
    assert first == second
    assert [row["label"] for row in first[:2]] == ["pos", "neg"]
    evaluated = nlp_lstm.evaluate(output, DataSource(test_file=str(test_file)), split="test")
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_multilabel_training_predicts_label_sets(tmp_path):
    from tests.helpers import write_jsonl

    rows = []
    for i, row in enumerate(sentiment_rows(300, seed=7)):
        labels = [row["label"]] + (["long"] if len(row["text"].split()) > 8 else [])
        rows.append({"text": row["text"], "label": labels})
    output = tmp_path / "multi"
    metrics = nlp_lstm.train(
        output_dir=output, source=DataSource(train_file=str(write_jsonl(tmp_path / "m.jsonl", rows))),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model=SMALL,
        training=TrainConfig(epochs=8, batch_size=16, learning_rate=1e-2, seed=3), progress=False,
    )
    assert json.loads((output / "config.json").read_text())["model"]["task"] == "multilabel"
    assert metrics["test"]["macro_f1"] > 0.8
    [row] = nlp_lstm.load(output).predict(["the film was really a very very very good plot and story"])
    assert "pos" in row["labels"] and "neg" not in row["labels"]

"""Two tiny trained models for the serving tests, trained once per test session (seconds each)."""

from __future__ import annotations

import pytest

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from tests.helpers import sentiment_rows, write_csv, write_jsonl
from tests.serve.corpora import SMALL, credit_rows


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny classifier and summarizer on disk, and each loaded in this process for reference.

    Their quality does not matter: every test compares the server with the same model run here.
    """
    root = tmp_path_factory.mktemp("serve")
    nlp_lstm.train(
        output_dir=root / "classifier",
        source=DataSource(train_file=str(write_csv(root / "train.csv", sentiment_rows(200, seed=1))), validation_fraction=0.2),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model=SMALL,
        training=TrainConfig(epochs=4, batch_size=16, learning_rate=1e-2, seed=3), progress=False,
    )
    nlp_lstm.train_summarizer(
        output_dir=root / "summarizer",
        source=DataSource(train_file=str(write_jsonl(root / "docs.jsonl", credit_rows(32, seed=1))),
                          text_column="document", summary_column="summary", label_column=None),
        tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
        model={**SMALL, "max_source_length": 12, "max_target_length": 6},
        training=TrainConfig(epochs=2, batch_size=8, learning_rate=0.01, seed=3), decoding={"beam_size": 2, "max_length": 5}, progress=False, device="cpu",
    )
    return {"root": root, "classifier_dir": root / "classifier", "summarizer_dir": root / "summarizer",
            "classifier": nlp_lstm.load(root / "classifier", device="cpu"),
            "summarizer": nlp_lstm.load(root / "summarizer", device="cpu")}

"""Float feature sequences (time series) as first-class inputs: the seed recipe's counterpart.

`fit_sequences` trains `LSTM(hidden) -> Linear(1) + sigmoid` (or a multi-class head) on sequences of
feature vectors of any length, through the same training loop as text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np

from nlp_lstm.config import TrainConfig
from nlp_lstm.devices import pick_device
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.training.loop import fit, seed_everything
from nlp_lstm.training.tasks import ClassificationTask


def fit_sequences(
    features: Sequence[Any],
    labels: Sequence[Any],
    *,
    hidden_size: int = 128,
    bidirectional: bool = False,
    pooling: str = "last",
    training: TrainConfig | None = None,
    validation_fraction: float = 0.1,
    device: str = "auto",
    progress: bool = False,
    run_dir: str | Path | None = None,
) -> ClassifierPredictor:
    """Train a classifier on `features[i]`, a (T_i, D) array, with label `labels[i]`.

    Returns a `ClassifierPredictor`; call `.predict_features(sequences)` for label and score per sequence.
    """
    if len(features) != len(labels) or not len(features):
        raise NlpLstmError(f"need one label per sequence and at least one sequence; got {len(features)} and {len(labels)}")
    arrays = [np.asarray(x, dtype=np.float32) for x in features]
    if any(a.ndim != 2 or a.shape[1] != arrays[0].shape[1] or a.shape[0] == 0 for a in arrays):
        raise NlpLstmError("every sequence must be a non-empty (time, features) array with the same feature size")
    names = sorted({str(label) for label in labels})
    if len(names) < 2:
        raise NlpLstmError(f"labels hold one class only ({names[0]!r}); a classifier needs at least two")
    index = {name: i for i, name in enumerate(names)}
    data = datasets.Dataset.from_dict({
        "features": [a.tolist() for a in arrays],
        "length": [len(a) for a in arrays],
        "labels": [index[str(label)] for label in labels],
    })
    training = training or TrainConfig(epochs=10, batch_size=32, learning_rate=1e-3, weight_decay=0.0, schedule="constant")
    split = data.train_test_split(test_size=validation_fraction, seed=training.seed)
    config = ClassifierConfig(
        num_labels=len(names), task="binary" if len(names) == 2 else "multiclass", input_size=arrays[0].shape[1],
        hidden_size=hidden_size, bidirectional=bidirectional, pooling=pooling, dropout=0.0,
        max_length=max(len(a) for a in arrays),
    )
    seed_everything(training.seed)
    model = TextClassifier(config)
    with tempfile.TemporaryDirectory() as scratch:
        result = fit(
            model, task=ClassificationTask(names, features=True), train_data=split["train"],
            validation_data=split["test"], config=training, run_dir=Path(run_dir or scratch),
            device=pick_device(device), progress=progress,
        )
    model.load_state_dict(result.best_state)
    return ClassifierPredictor(model, None, labels=names, device=pick_device(device))

import numpy as np

import nlp_lstm
from nlp_lstm.config import TrainConfig


def marker_task(count: int, length: int, seed: int):
    """The label is the sign of a marker early in a noisy 100-step sequence: needs 90+ steps of memory."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for _ in range(count):
        x = rng.normal(0, 0.2, size=(length, 4)).astype(np.float32)
        x[:, 0] = 0.0  # channel 0 is silent but for the marker
        label = int(rng.integers(0, 2))
        start = rng.integers(0, 5)
        x[start : start + 5, 0] = 1.0 if label else -1.0  # a 5-step marker among the first 10 steps
        features.append(x)
        labels.append(label)
    return features, labels


def test_seed_recipe_learns_long_memory_task():
    features, labels = marker_task(512, 100, seed=0)
    model = nlp_lstm.fit_sequences(
        features, labels, hidden_size=16,
        training=TrainConfig(epochs=30, batch_size=32, learning_rate=1e-2, weight_decay=0.0, schedule="constant", patience=30),
        device="cpu",
    )
    test_x, test_y = marker_task(100, 100, seed=1)
    predicted = [int(row["label"]) for row in model.predict_features(test_x)]
    accuracy = float(np.mean(np.array(predicted) == np.array(test_y)))
    assert accuracy >= 0.9, accuracy

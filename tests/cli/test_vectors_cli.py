"""`train classifier --embeddings`: word vectors from a file make a self-contained model that learns,
and the vectors' mistakes are one-line errors with exit code 2."""

import json

import numpy as np

import nlp_lstm
from tests.helpers import FILLER, NEGATIVE, POSITIVE, invoke, sentiment_rows, write_csv


def vectors_file(path, dim: int = 8):
    """Positive words near +1 on the first axis, negative near -1: vectors that already separate."""
    rng = np.random.default_rng(0)
    rows = []
    for word in [*FILLER, *POSITIVE, *NEGATIVE, "unseenword"]:
        vector = rng.normal(0, 0.1, dim)
        vector[0] = 1.0 if word in POSITIVE or word == "unseenword" else -1.0 if word in NEGATIVE else 0.0
        rows.append(" ".join([word, *(f"{v:.5f}" for v in vector)]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_vectors_train_a_self_contained_model_that_knows_a_word_only_the_vectors_had(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(300, seed=1))
    vectors = vectors_file(tmp_path / "vectors.txt")
    result = invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "m", "--embeddings",
                    vectors, "--epochs", "8", "--hidden-size", "8", "--word-ngrams", "0", "--dropout", "0",
                    "--learning-rate", "0.02", "--batch-size", "16", "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "word vectors cover" in result.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["embedding_dim"] == 8 and config["model"]["embeddings"].endswith("vectors.txt")
    vectors.unlink()  # the model directory holds the rows it uses
    model = nlp_lstm.load(tmp_path / "m", device="cpu")
    assert model.tokenizer.token_to_id("unseenword") != model.tokenizer.unk_id  # kept: among the file's words
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8  # the sentiment word decides; the model found it
    assert model.predict(["unseenword"])[0]["label"] == "pos"  # only its vector says so


def test_vector_mistakes_are_one_line_errors(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(60, seed=1))
    vectors = vectors_file(tmp_path / "vectors.txt")
    german = tmp_path / "de.txt"
    german.write_text("der 1 2\ndie 3 4\n", encoding="utf-8")
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("good 1 2 3\nbad 1 2\n", encoding="utf-8")
    empty = tmp_path / "empty.vec"
    empty.write_text("", encoding="utf-8")
    cases = [
        (tmp_path / "nope.txt", [], "does not exist"),
        (empty, [], "is empty"),
        (ragged, [], "line 2 has 2 values"),
        (vectors, ["--embedding-dim", "50"], "--embedding-dim 50 does not match the 8-dimensional"),
        (german, [], "cover none of the"),
    ]
    for path, extra, message in cases:
        result = invoke("train", "classifier", "--train-file", train, "--output-dir", tmp_path / "m",
                        "--embeddings", path, *extra, "--quiet", "--threads", "1")
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output

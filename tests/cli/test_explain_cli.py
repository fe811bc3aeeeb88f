"""`nlp-lstm explain`: the terminal view, JSON, the HTML file, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re

import pytest

import nlp_lstm
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError
from tests.helpers import assert_usage_error, invoke, sentiment_rows, write_csv, write_jsonl
from tests.serve.corpora import SMALL, credit_rows


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    nlp_lstm.train(
        output_dir=root / "classifier",
        source=DataSource(train_file=str(write_csv(root / "train.csv", sentiment_rows(120, seed=2))), validation_fraction=0.25),
        tokenizer_settings={"kind": "spacy", "min_freq": 1}, model=SMALL,
        training=TrainConfig(epochs=2, batch_size=16, learning_rate=1e-2, seed=3), progress=False, device="cpu",
    )
    nlp_lstm.train_summarizer(
        output_dir=root / "summarizer",
        source=DataSource(train_file=str(write_jsonl(root / "docs.jsonl", credit_rows(16, seed=1))),
                          text_column="document", summary_column="summary", label_column=None),
        tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
        model={**SMALL, "max_source_length": 12, "max_target_length": 6},
        training=TrainConfig(epochs=1, batch_size=8, learning_rate=0.01, seed=3),
        decoding={"beam_size": 2, "max_length": 5}, progress=False, device="cpu",
    )
    return root


def test_the_terminal_view_shows_each_word_with_a_signed_number(models):
    result = invoke("explain", "-m", models / "classifier", "--threads", "1", "the film was great, really.")
    assert result.exit_code == 0, result.output
    assert re.search(r"label (pos|neg) \(predicted\)", result.stdout)
    for word in ("film", "great", "really"):
        assert re.search(rf"│ {word} +│ [+-]\d\.\d{{3}} │", result.stdout), word
    assert "completeness" in result.stdout and "decided by" in result.stdout


def test_json_holds_the_numbers_and_html_is_one_offline_file(models, tmp_path):
    page = tmp_path / "why.html"
    result = invoke("explain", "-m", models / "classifier", "--format", "json", "--html", page, "--label", "neg",
                    "--steps", "16", "a bad plot", "great film")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["label"] for row in rows] == ["neg", "neg"]
    assert [w["word"] for w in rows[0]["words"]] == ["a", "bad", "plot"]
    for row in rows:
        lstm, linear = row["lstm"], row["linear"]
        assert lstm["steps"] <= 16
        assert row["score"] == pytest.approx(lstm["score"] + linear["score"])
        assert sum(w["total"] for w in row["words"]) == pytest.approx(
            lstm["score"] - lstm["baseline_score"] + linear["score"] - linear["bias"], abs=abs(lstm["residual"]) + 1e-6)
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "great" in html and "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch


def test_a_summarizer_explains_its_output_words(models):
    result = invoke("explain", "-m", models / "summarizer", "--format", "json", "the old movie by anna was long")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert [w["word"] for w in row["source_words"]] == "the old movie by anna was long".split()
    for output in row["outputs"]:
        assert len(output["attention"]) == 7 and sum(output["attention"]) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= output["p_gen"] <= 1.0 and 0.0 <= output["copy"] <= 1.0 + 1e-6
    view = invoke("explain", "-m", models / "summarizer", "the old movie by anna was long")
    assert view.exit_code == 0 and "p_gen" in view.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["--label", "neutral", "great"], ["no label 'neutral'", "pos"]),
    (["  "], ["text 0 is empty"]),
    (["--steps", "0", "great"], ["steps=0 is invalid", "1 to 4096"]),
    (["--steps", "100000", "great"], ["steps=100000 is invalid"]),
])
def test_bad_input_is_one_line_and_exit_2(models, args, fragments):
    assert_usage_error(invoke("explain", "-m", models / "classifier", *args), *fragments)


def test_a_label_for_a_summarizer_is_refused(models):
    assert_usage_error(invoke("explain", "-m", models / "summarizer", "--label", "x", "a text"), "--label is for classifiers")


def test_a_kind_that_cannot_be_explained_is_refused(models, monkeypatch):
    class LanguageModel:
        kind = "language_model"

    monkeypatch.setattr("nlp_lstm.inference.predict.load", lambda *args, **kwargs: LanguageModel())
    with pytest.raises(NlpLstmError, match="holds a language_model, which explain cannot take apart"):
        nlp_lstm.explain(models / "classifier", ["a text"])

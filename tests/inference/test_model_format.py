"""Model directories saved before the restructure (format 1) still load and predict exactly as then.

`tests/fixtures/format1/` holds a tiny classifier and summarizer written by the main branch before
the model configs held their own length limits; `expected.json` holds what that code predicted.
"""

import json
from pathlib import Path

import pytest

from tests.helpers import ROOT

import nlp_lstm
from nlp_lstm.model_dir import read_model_config

FIXTURES = ROOT / "tests" / "fixtures" / "format1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def test_a_format_1_classifier_loads_with_its_limits_and_predicts_as_before():
    model_file = read_model_config(FIXTURES / "classifier")
    assert model_file.format_version == 1
    assert model_file.model.max_length == 20  # was the top-level "max_length"
    assert model_file.temperature == 1.0  # no calibration then
    expected = EXPECTED["classifier"]
    with pytest.warns(UserWarning, match="empty"):
        predictions = nlp_lstm.load(FIXTURES / "classifier", device="cpu").predict(expected["texts"])
    assert predictions == expected["predictions"]


def test_a_format_1_summarizer_loads_with_its_limits_and_decodes_as_before():
    model_file = read_model_config(FIXTURES / "summarizer")
    assert (model_file.model.max_source_length, model_file.model.max_target_length) == (30, 5)
    assert model_file.decoding.beam_size == 2
    expected = EXPECTED["summarizer"]
    summarizer = nlp_lstm.load(FIXTURES / "summarizer", device="cpu")
    assert summarizer.summarize(expected["texts"], beam_size=2, max_length=5) == expected["summaries"]

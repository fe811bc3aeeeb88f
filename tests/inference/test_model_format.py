"""Model directories saved before the restructure (format 1) still load and predict exactly as then,
and so do format-2 classifiers, written before the n-gram bag.

`tests/fixtures/format1/` holds a tiny classifier and summarizer written by the main branch before
the model configs held their own length limits; `expected.json` holds what that code predicted.
"""

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT

import nlp_lstm
from nlp_lstm.errors import NlpLstmError
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


def classifier_of_format(tmp_path, version: int, **model):
    """The format-1 fixture rewritten as format `version` (the length limit inside "model"), with `model` keys."""
    directory = tmp_path / "classifier"
    shutil.copytree(FIXTURES / "classifier", directory)
    config = json.loads((directory / "config.json").read_text())
    config["format_version"] = version
    config["model"]["max_length"] = config.pop("max_length")
    config["model"].update(model)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_format_2_classifier_has_no_linear_part_and_predicts_as_before(tmp_path):
    # Format 2 is format 1 with the length limit inside "model"; neither had an n-gram part.
    directory = classifier_of_format(tmp_path, 2)
    model_file = read_model_config(directory)
    assert (model_file.format_version, model_file.model.word_ngrams, model_file.model.has_linear_part) == (2, 0, False)
    expected = EXPECTED["classifier"]
    with pytest.warns(UserWarning, match="empty"):
        predictions = nlp_lstm.load(directory, device="cpu").predict(expected["texts"])
    assert predictions == expected["predictions"]


def test_a_format_1_summarizer_loads_with_its_limits_and_decodes_as_before():
    model_file = read_model_config(FIXTURES / "summarizer")
    assert (model_file.model.max_source_length, model_file.model.max_target_length) == (30, 5)
    assert model_file.decoding.beam_size == 2
    expected = EXPECTED["summarizer"]
    summarizer = nlp_lstm.load(FIXTURES / "summarizer", device="cpu")
    assert summarizer.summarize(expected["texts"], beam_size=2, max_length=5) == expected["summaries"]


def test_a_format_3_classifier_with_a_hashed_bag_is_refused_with_the_fix(tmp_path):
    directory = classifier_of_format(tmp_path, 3, ngram_buckets=1024)
    with pytest.raises(NlpLstmError, match="hashed n-gram bag.*retrain"):
        read_model_config(directory)

"""The model-kind registry (`nlp_lstm.kinds`) and what dispatches on it agree with each other."""

from __future__ import annotations

import pytest
import torch

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.load import PREDICTORS
from nlp_lstm.inference.onnx_export import EXPORTERS
from nlp_lstm.inference.onnx_runtime import ONNX_MODELS
from nlp_lstm.kinds import KINDS, KindSpec, kind_spec, register
from nlp_lstm.model_card import model_card
from nlp_lstm.model_dir import ModelFile
from nlp_lstm.serve.endpoints import ENDPOINTS
from nlp_lstm.stages.kinds import STAGE_KINDS
from nlp_lstm.stages.pipeline import PIPELINE_KINDS


def test_the_four_kinds_are_registered_once_each():
    assert list(KINDS) == ["classifier", "summarizer", "language_model", "tagger"]
    with pytest.raises(ValueError, match="registered twice"):
        register(KINDS["classifier"])


def test_every_kind_has_a_predictor_of_that_kind_and_every_table_names_registered_kinds():
    assert set(PREDICTORS) == set(KINDS)
    assert all(predictor.kind == kind for kind, predictor in PREDICTORS.items())
    for table in (EXPORTERS, ONNX_MODELS, ENDPOINTS, STAGE_KINDS, PIPELINE_KINDS):
        assert set(table) <= set(KINDS), table
    assert set(EXPORTERS) == set(ONNX_MODELS) == {"classifier", "summarizer", "tagger"}  # what exports also runs
    assert all(hasattr(PREDICTORS[kind], "predict_batch") for kind in ENDPOINTS)  # a served kind runs batches
    assert {kind: endpoint.path for kind, endpoint in ENDPOINTS.items()} == {
        "classifier": "/v1/classify", "summarizer": "/v1/summarize", "tagger": "/v1/tag"}


FROM_THE_DATA = {"tagger": {"tags": ["B-X", "I-X", "O"]}}  # what training fills in beside vocab_size


FROM_THE_DATA = {"tagger": {"tags": ["B-X", "I-X", "O"]}}  # what training fills in beside vocab_size


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_builds_its_module_from_its_default_config(kind):
    spec = KINDS[kind]
    config = spec.config(vocab_size=50, **FROM_THE_DATA.get(kind, {}))
    with torch.device("meta"):
        module = spec.module(config)
    assert isinstance(module, torch.nn.Module) and len(module.state_dict()) > 0


def test_an_unknown_kind_names_the_file_and_the_known_kinds():
    with pytest.raises(NlpLstmError, match=r"x/config.json: unknown model kind 'parser'; expected one of "
                                           r"classifier, summarizer, language_model, tagger"):
        kind_spec("parser", where="x/config.json")


def test_a_kind_registered_elsewhere_gets_a_model_card_from_its_spec(monkeypatch):
    """What a new kind supplies is enough for its card: no branch names the kind."""
    spec = KindSpec(name="toy_tagger", config=KINDS["classifier"].config, module=KINDS["classifier"].module,
                    command="tag", pipeline_tag="token-classification", description="a toy tagger",
                    metrics=("f1",), usage="nlp-lstm tag --model DIR")
    monkeypatch.setitem(KINDS, "toy_tagger", spec)
    card = model_card(ModelFile(kind="toy_tagger", model=spec.config()), {"test": {"span_f1": 0.5}}, data="toy")
    assert "pipeline_tag: token-classification" in card and '- "f1"' in card
    assert "# toy tagger (nlp-lstm)" in card and "This is a toy tagger," in card
    assert "| span_f1 | 0.500 |" in card and "nlp-lstm tag --model DIR" in card

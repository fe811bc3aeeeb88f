"""The app in-process (`create_app` on loaded models, through Starlette's TestClient) and its helpers:
internal errors, multi-label results, the long-text clip, model naming, the missing ONNX runtime,
the listening socket."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import socket
import sys

import pytest
import torch
from fastapi.testclient import TestClient

from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.serve import ServeSettings, create_app, parse_model_specs
from nlp_lstm.serve.runners import clip_text, load_models
from nlp_lstm.serve.server import bind
from tests.helpers import sentiment_rows
from tests.serve.corpora import credit_rows


def test_an_internal_error_is_a_short_500_and_the_server_goes_on(trained, caplog):
    classifier = copy.copy(trained["classifier"])
    classifier.model = copy.deepcopy(classifier.model)
    failing = {"on": True}

    def explode(module, inputs):
        if failing["on"]:
            raise RuntimeError("simulated kernel failure")

    classifier.model.register_forward_pre_hook(explode)
    with caplog.at_level(logging.ERROR, logger="nlp_lstm.serve"), TestClient(create_app({"c": classifier})) as client:
        broken = client.post("/v1/classify", json={"texts": ["a great film"]})
        failing["on"] = False
        healed = client.post("/v1/classify", json={"texts": ["a great film"]})
    assert broken.status_code == 500
    assert broken.json() == {"error": "internal error in model 'c' (RuntimeError); the traceback is in the server log"}
    assert healed.status_code == 200 and healed.json()["results"][0]["label"] == trained["classifier"].predict(["a great film"])[0]["label"]
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and "simulated kernel failure" in str(logged[0].exc_info[1])  # the traceback, once


def test_multilabel_results_carry_every_probability_and_the_labels_over_the_threshold(trained):
    base = trained["classifier"]
    config = dataclasses.replace(base.model.config, num_labels=3, task="multilabel", word_ngrams=0)
    torch.manual_seed(5)
    network = TextClassifier(config).eval()
    with torch.no_grad():
        network.head.bias.copy_(torch.tensor([3.0, -3.0, 0.0]))  # one label surely on, one surely off
    multi = copy.copy(base)
    multi.model, multi.labels, multi.threshold = network, ["a", "b", "c"], 0.5
    multi.temperature, multi.thresholds = 1.0, None  # as a multi-label model is saved: thresholds, no temperature
    texts = ["a great film", "the plot was awful and boring and sad"]
    with TestClient(create_app({"multi": multi})) as client:
        results = client.post("/v1/classify", json={"texts": texts}).json()["results"]
    for text, result in zip(texts, results):
        ids = base.tokenizer.encode_batch([text])[0]  # one text alone: no padding, no batching
        with torch.no_grad():
            logits = network(torch.tensor([ids]), torch.tensor([len(ids)]), torch.zeros(1, len(ids), dtype=torch.bool))
        expected = torch.sigmoid(logits)[0].tolist()
        assert result["scores"] == pytest.approx(dict(zip("abc", expected)), abs=1e-4)
        assert result["labels"] == [label for label, p in zip("abc", expected) if p >= 0.5]
        assert "a" in result["labels"] and "b" not in result["labels"]
        assert result["label"] == "abc"[max(range(3), key=expected.__getitem__)]


LONG_TEXTS = [
    "great " * 5000,
    "  the film,  was   really\tgood!\n\nand (the) plot: dreadful... " * 300,
    "word" * 3000 + " and then some words",  # the first cut falls inside one long word
    "x" * 20000,  # no space at all: tokenized whole
]


@pytest.mark.parametrize("kind", ["spacy", "sentencepiece"])
@pytest.mark.parametrize("limit", [1, 7, 64])
def test_clip_keeps_exactly_the_tokens_the_model_would_read(kind, limit):
    tokenizer = fit_tokenizer([row["text"] for row in sentiment_rows(200, seed=3)] + ["the film, was (good)!"],
                              kind=kind, vocab_size=60, min_freq=1)
    for text in LONG_TEXTS + ["a short text", ""]:
        prefix, truncated = clip_text(text, tokenizer, limit)
        whole = tokenizer.encode_batch([text])[0]
        assert text.startswith(prefix)
        assert tokenizer.encode_batch([prefix])[0][:limit] == whole[:limit]
        if truncated is None:  # not cut: the caller counts the tokens of the whole text
            assert prefix == text
        else:
            assert truncated is True and len(whole) > limit and len(prefix) < len(text)


def test_model_names_come_from_name_equals_dir_or_the_directory(tmp_path):
    run_model = tmp_path / "runs" / "sentiment" / "model"
    specs = parse_model_specs([f"fast={tmp_path / 'x'}", str(run_model), str(tmp_path / "plain")])
    assert specs == {"fast": tmp_path / "x", "sentiment": run_model, "plain": tmp_path / "plain"}
    assert list(specs) == ["fast", "sentiment", "plain"]  # the order given: the first of a kind is the default
    with pytest.raises(NlpLstmError, match="two models are named 'sentiment'"):
        parse_model_specs([f"sentiment={tmp_path}", str(run_model)])
    with pytest.raises(NlpLstmError, match="no model given"):
        parse_model_specs([])


def test_the_onnx_runtime_when_absent_names_nlp_lstm_export(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "nlp_lstm.inference.onnx", None)  # import fails as if never installed
    with pytest.raises(NlpLstmError, match="nlp-lstm export"):
        load_models({"c": trained["classifier_dir"]}, runtime="onnx")


def test_bf16_output_serves_summarizers_with_the_bfloat16_output_layer_and_leaves_classifiers(trained):
    from nlp_lstm.inference.bfloat16 import BFloat16Linear, bfloat16_output

    documents = [row["document"] for row in credit_rows(5, seed=7)]
    reviews = ["a great film", "dull and far too long"]
    models = {"s": trained["summarizer_dir"], "c": trained["classifier_dir"]}
    app = create_app(models, bf16_output=True)
    served = app.state.registry.models
    assert isinstance(served["s"].model.model.generator, BFloat16Linear)
    assert isinstance(served["c"].model.model, TextClassifier)  # a classifier is served as it is
    with TestClient(app) as client, TestClient(create_app(models)) as plain:
        summaries = client.post("/v1/summarize", json={"texts": documents}).json()["results"]
        # The model's own decoding settings (beam 2, 5 tokens), decoded in-process in the same mode.
        expected = bfloat16_output(trained["summarizer"]).summarize(documents, beam_size=2, max_length=5)
        assert [row["summary"] for row in summaries] == expected
        classified = client.post("/v1/classify", json={"texts": reviews}).json()["results"]
        assert classified == plain.post("/v1/classify", json={"texts": reviews}).json()["results"]
    # The loaded summarizer handed in is left as it was.
    assert isinstance(trained["summarizer"].model.generator, torch.nn.Linear)


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"max_batch_size": 0}, "--max-batch-size 0"),
    ({"max_wait_ms": -1}, "--max-wait-ms -1"),
    ({"max_queue": 4, "max_texts_per_request": 5}, "--max-queue 4 is below --max-texts-per-request 5"),
])
def test_bad_settings_name_their_option(settings, fragment):
    with pytest.raises(NlpLstmError, match=fragment):
        ServeSettings(**settings)


def test_the_listening_socket_lets_asyncio_turn_nagle_off():
    # With proto 0, asyncio left Nagle on for accepted connections: every response then waited ~40 ms
    # for the client's delayed ACK.
    listener = bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda reader, writer: accepted.set_result(writer.get_extra_info("socket")),
                                            sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        option = (await asyncio.wait_for(accepted, 10)).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        return option

    assert asyncio.run(accepted_nodelay()) != 0


class PredictOnly:
    """A runtime with only the shared interface (`kind`, `labels`, `predict`), as the ONNX one has."""

    kind = "classifier"

    def __init__(self, classifier):
        self._classifier = classifier
        self.labels, self.tokenizer, self.max_length = classifier.labels, classifier.tokenizer, classifier.max_length

    def predict(self, texts, *, batch_size=64):
        return self._classifier.predict(texts, batch_size=batch_size)


def test_a_runtime_without_torch_internals_is_served_through_its_predict(trained):
    texts = ["a great film", "the plot was awful " * 200]  # the second over the model's 256 tokens
    with TestClient(create_app({"p": PredictOnly(trained["classifier"])})) as client:
        results = client.post("/v1/classify", json={"texts": texts}).json()["results"]
    expected = trained["classifier"].predict(texts)
    assert [(r["label"], r["score"]) for r in results] == [(e["label"], e["score"]) for e in expected]
    assert [r["scores"] for r in results] == [{e["label"]: e["score"]} for e in expected]  # all it knows
    assert [r["truncated"] for r in results] == [False, True]

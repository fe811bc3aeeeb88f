"""`POST /v1/tag`: the server answers what `load(DIR).tag` answers, per text, through the batcher."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import nlp_lstm
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference import tagger as tagger_module
from nlp_lstm.serve import create_app
from tests.tagger_helpers import train_tagger_dir


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return train_tagger_dir(tmp_path_factory.mktemp("serve_tagger") / "ner", steps=60)


def test_tag_answers_what_the_library_answers(tagger_dir):
    texts = ["Anna went to Paris", "", "Bob met  Carl in Rome today"]
    local = nlp_lstm.load(tagger_dir, device="cpu").tag(texts)
    with TestClient(create_app({"ner": tagger_dir}, device="cpu")) as client:
        response = client.post("/v1/tag", json={"texts": texts})
        models = client.get("/v1/models").json()["models"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "ner"
    for served, expected in zip(body["results"], local):
        assert served.pop("truncated") is False
        expected.pop("text")  # the client has its texts
        assert served == expected
    assert body["results"][2]["spans"][0]["start_char"] == local[2]["spans"][0]["start_char"]
    [info] = models
    assert info["kind"] == "tagger" and info["labels"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert info["max_input_tokens"] == tagger_module.MAX_INPUT_TOKENS


def test_pretokenized_requests_have_no_offsets(tagger_dir):
    with TestClient(create_app({"ner": tagger_dir}, device="cpu")) as client:
        response = client.post("/v1/tag", json={"texts": ["Anna  went\tto Paris"], "pretokenized": True})
    [result] = response.json()["results"]
    assert result["tokens"] == ["Anna", "went", "to", "Paris"]
    assert "offsets" not in result and all("start_char" not in span for span in result["spans"])
    assert result["tags"] == nlp_lstm.load(tagger_dir, device="cpu").tag([["Anna", "went", "to", "Paris"]])[0]["tags"]


def test_the_wrong_endpoint_names_the_right_one(tagger_dir):
    with TestClient(create_app({"ner": tagger_dir}, device="cpu")) as client:
        wrong = client.post("/v1/classify", json={"texts": ["x"], "model": "ner"})
        nothing = client.post("/v1/classify", json={"texts": ["x"]})
        extra = client.post("/v1/tag", json={"texts": ["x"], "beam_size": 2})
    assert wrong.status_code == 400 and "use /v1/tag" in wrong.json()["error"]
    assert nothing.status_code == 400 and "/v1/tag" in nothing.json()["error"]
    assert extra.status_code == 422


def test_the_explain_endpoint_gives_a_taggers_marginals_and_runners_up(tagger_dir):
    text = "Anna went to Paris"
    with TestClient(create_app({"ner": tagger_dir}, device="cpu")) as client:
        response = client.post("/v1/explain", json={"texts": [text]})
        refused = client.post("/v1/explain", json={"texts": [text], "label": "B-PER"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "tagger"
    [result] = body["results"]
    [expected] = nlp_lstm.load(tagger_dir, device="cpu").explain([text])
    assert result["words"] == expected["words"] and result["text"] == text and result["truncated"] is False
    assert refused.status_code == 422 and "label and steps are for classifiers" in refused.json()["error"]


def test_a_tagger_that_reads_a_feature_column_is_refused_at_start_in_one_line(tmp_path):
    """/v1/tag carries texts only: such a model would answer every request with an error, so `serve`
    refuses it before starting, naming the way that works."""
    directory = train_tagger_dir(tmp_path / "predicates", steps=2, feature_embedding_dim=4)
    with pytest.raises(NlpLstmError, match=r"model 'srl' reads a per-token feature column.*features="):
        create_app({"srl": directory}, device="cpu")

"""The page at `/` and `POST /v1/explain`, in-process (`create_app` through Starlette's TestClient):
what the page is served, the answers it shows compared with the same explanation run here, the API
key, and each bad request's 4xx in the API's error format."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from nlp_lstm.serve import create_app

KEY = "page-test-key"


@pytest.fixture(scope="module")
def client(trained):
    with TestClient(create_app({"cls": trained["classifier"], "sum": trained["summarizer"]})) as client:
        yield client


def test_the_page_and_its_files_are_served_from_the_package_with_nothing_external(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for name, kind in (("page.css", "text/css"), ("page.js", "text/javascript")):
        assert f"/page/{name}" in html
        served = client.get(f"/page/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert not re.search(r"https?://", served.text)  # no CDN, no font service
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    for control in ("model", "text", "label", "key"):  # every input has its label
        assert f'<label for="{control}">' in html and f'id="{control}"' in html
    assert client.get("/page/secret.py").status_code == 404
    assert client.get("/docs").status_code == 404  # still off: Swagger UI would load from a CDN


def test_explain_answers_what_the_library_answers(client, trained):
    text = "the film was great, really great!"
    answer = client.post("/v1/explain", json={"texts": [text], "model": "cls", "steps": 32})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "cls" and body["kind"] == "classifier"
    [result] = body["results"]
    [expected] = trained["classifier"].explain(text, steps=32)
    assert result["label"] == expected["label"] and result["scores"] == expected["scores"]
    assert [w["word"] for w in result["words"]] == [w["word"] for w in expected["words"]]
    assert [w["total"] for w in result["words"]] == pytest.approx([w["total"] for w in expected["words"]], abs=1e-5)
    chosen = client.post("/v1/explain", json={"texts": [text], "model": "cls", "label": "neg"}).json()["results"][0]
    assert chosen["label"] == "neg"

    summary = client.post("/v1/explain", json={"texts": ["the old movie by anna was long"], "model": "sum"})
    assert summary.status_code == 200, summary.text
    [result] = summary.json()["results"]
    [expected] = trained["summarizer"].explain("the old movie by anna was long")
    assert result["summary"] == expected["summary"] and len(result["outputs"]) == len(expected["outputs"])


def test_a_thousand_word_text_is_explained_over_what_the_model_reads(client, trained):
    text = " ".join(["a great film"] * 334)  # 1,002 words
    answer = client.post("/v1/explain", json={"texts": [text], "model": "cls"})
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert result["truncated"] and result["text"] == text
    assert len(result["words"]) == trained["classifier"].max_length  # one word per token for a word tokenizer


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"texts": ["a"], "model": "nope"}, 404, "unknown model 'nope'; served: cls, sum"),
    ({"texts": ["a"], "model": "cls", "label": "maybe"}, 422, "no label 'maybe'; its labels are"),
    ({"texts": ["  "], "model": "cls"}, 422, "text 0 is empty"),
    ({"texts": ["a"], "model": "cls", "steps": 0}, 422, "steps"),
    ({"texts": ["a"], "model": "cls", "steps": 100000}, 422, "steps"),
    ({"texts": ["a"], "model": "sum", "label": "pos"}, 422, "label and steps are for classifiers"),
    ({"texts": []}, 422, "texts"),
    ({"txts": ["a"]}, 422, "unknown field 'txts'"),
])
def test_bad_requests_get_a_4xx_in_the_error_format(client, body, status, fragment):
    answer = client.post("/v1/explain", json=body)
    assert answer.status_code == status, answer.text
    assert list(answer.json()) == ["error"] and fragment in answer.json()["error"]


def test_with_a_key_the_page_opens_and_its_calls_need_the_key(trained):
    with TestClient(create_app({"cls": trained["classifier"]}, api_key=KEY)) as client:
        assert client.get("/").status_code == 200
        assert client.get("/page/page.js").status_code == 200
        assert client.post("/v1/explain", json={"texts": ["a"]}).status_code == 401
        assert client.get("/v1/models").status_code == 401
        keyed = client.post("/v1/explain", json={"texts": ["a great film"]}, headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and keyed.json()["kind"] == "classifier"

"""Probes of the server as an attacker or a careless client would send them (issue 23): a stuck
model, a text that breaks the tokenizer among honest ones, files changed under a served model,
SIGTERM past the drain limit, silent and slow connections, the API key and what `/v1/models` shows.

Servers run on loopback only (`tests/serve/test_server.py`'s `Server`), loops are bounded.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.serve import ServeSettings, create_app, read_api_key
from nlp_lstm.serve.batching import MicroBatcher
from nlp_lstm.serve.runners import HIDDEN_PATH, without_paths
from nlp_lstm.serve.server import exposure_warning
from tests.helpers import sentiment_rows
from tests.serve.corpora import credit_rows
from tests.serve.test_server import Server, assert_matches_predict

KEY = "s3cret-key-for-tests"
BAD = "x\ud800y"  # a lone surrogate: valid JSON ("x\\ud800y"), no character; spaCy raises on it


class Gated:
    """A classifier stand-in whose `predict` blocks on `gate` (a model stuck on one batch)."""

    kind = "classifier"
    labels = ["no", "yes"]

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def predict(self, texts, batch_size=None):
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return [{"label": "yes", "score": 1.0} for _ in texts]


def post_json(client: httpx.Client, path: str, body) -> httpx.Response:
    """POST `body` as ASCII JSON: a lone surrogate travels as its `\\ud800` escape (httpx's own
    encoder writes UTF-8, which cannot hold one)."""
    return client.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


# --------------------------------------------------------------------------------------------
# Item 1: /ready names a model whose worker is stuck
# --------------------------------------------------------------------------------------------


def test_ready_answers_503_naming_a_model_stuck_on_one_batch_and_recovers():
    stuck, free = Gated(), Gated()
    free.gate.set()
    app = create_app({"slow": stuck, "fast": free}, settings=ServeSettings(stuck_batch_s=0.2, max_wait_ms=0))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        answer: dict = {}
        request = threading.Thread(target=lambda: answer.update(r=client.post("/v1/classify", json={"texts": ["a"], "model": "slow"})))
        request.start()
        assert stuck.entered.wait(30)
        ready = wait_for(lambda: (r := client.get("/ready")).status_code == 503 and r, "/ready to report the stuck batch")
        assert list(ready.json()) == ["error"]
        assert "model 'slow'" in ready.json()["error"] and "'fast'" not in ready.json()["error"], ready.json()
        assert "--stuck-batch-s" in ready.json()["error"]
        queue = {m["name"]: m["queue"] for m in client.get("/v1/models").json()["models"]}
        assert queue["slow"]["running_batch_s"] > 0.2 and queue["fast"]["running_batch_s"] == 0.0
        assert client.get("/health").json() == {"status": "ok"}  # liveness: the process still answers
        stuck.gate.set()
        request.join(30)
        assert answer["r"].status_code == 200
        assert client.get("/ready").json() == {"status": "ready", "models": ["slow", "fast"]}


# --------------------------------------------------------------------------------------------
# Item 2: one failing text fails only its own request
# --------------------------------------------------------------------------------------------


def test_a_failing_request_in_a_shared_batch_fails_alone():
    calls: list[list[str]] = []
    gate = threading.Event()

    def run(items):
        calls.append(list(items))
        if items == ["first"]:
            assert gate.wait(30)
        if "bad" in items:
            raise ValueError("cannot run 'bad'")
        return [item.upper() for item in items]

    batcher = MicroBatcher(run, max_batch_size=8, max_wait=0.0).start()
    try:
        first = batcher.submit(["first"])
        wait_for(lambda: calls, "the first batch")
        queued = [batcher.submit(["x", "y"]), batcher.submit(["bad"]), batcher.submit(["z"])]  # one batch, after the gate
        gate.set()
        assert first.result(30) == ["FIRST"]
        assert queued[0].result(30) == ["X", "Y"] and queued[2].result(30) == ["Z"]
        with pytest.raises(ValueError, match="cannot run 'bad'"):
            queued[1].result(30)
        assert calls == [["first"], ["x", "y", "bad", "z"], ["x", "y"], ["bad"], ["z"]]  # the batch, then each alone
    finally:
        batcher.close(timeout=30)


def test_lone_surrogates_get_422_naming_the_text_and_honest_concurrent_requests_all_succeed(launched, trained):
    server = launched["main"].wait_ready()
    rows = sentiment_rows(40, seed=31)
    bodies = [{"texts": [row["text"]]} for row in rows]
    for position in (3, 17, 30):  # 3 bad requests among 40 honest ones, sent at once
        bodies.insert(position, {"texts": ["a fine film", BAD]})
    answers: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(len(bodies))

    def client(index):
        with httpx.Client(base_url=server.url, timeout=60, headers=server.auth) as own:
            barrier.wait()
            answers[index] = post_json(own, "/v1/classify", bodies[index])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == len(bodies)
    for index, body in enumerate(bodies):
        response = answers[index]
        if BAD in body["texts"]:
            assert response.status_code == 422, response.text
            assert list(response.json()) == ["error"]
            assert response.json()["error"].startswith("texts[1] holds a lone surrogate (U+D800) at character 1")
        else:
            assert response.status_code == 200, (index, response.text)
            assert_matches_predict(response.json()["results"], body["texts"], trained["classifier"])
    summarized = post_json(server.client, "/v1/summarize", {"texts": [BAD]})
    assert summarized.status_code == 422 and "texts[0] holds a lone surrogate" in summarized.json()["error"]
    paired = server.client.post("/v1/classify", content=b'{"texts": ["smile \\ud83d\\ude00"]}',
                                headers={"Content-Type": "application/json"})
    assert paired.status_code == 200, paired.text  # a surrogate pair is one character (an emoji): fine


# --------------------------------------------------------------------------------------------
# The servers: keyed, one read timeout; and one that waits a minute for company (for SIGTERM)
# --------------------------------------------------------------------------------------------


class KeyedServer(Server):
    auth = {"Authorization": f"Bearer {KEY}"}

    def wait_ready(self) -> "KeyedServer":
        if self.client is None and self._found.wait(120) and self.url:
            self.client = httpx.Client(base_url=self.url, timeout=60, headers=self.auth)
        super().wait_ready()
        return self


@pytest.fixture(scope="module")
def served_copies(trained, tmp_path_factory):
    """Copies of the two models (the tests edit and delete their files); the classifier's config
    names the language model it was initialised from, by an absolute path."""
    root = tmp_path_factory.mktemp("copies")
    classifier, summarizer = root / "classifier", root / "summarizer"
    shutil.copytree(trained["classifier_dir"], classifier)
    shutil.copytree(trained["summarizer_dir"], summarizer)
    config = json.loads((classifier / "config.json").read_text())
    config["model"]["init_from"] = str(root / "private-lm-dir")
    (classifier / "config.json").write_text(json.dumps(config))
    key_file = root / "key.txt"
    key_file.write_text(KEY + "\n")
    return {"classifier": classifier, "summarizer": summarizer, "key_file": key_file,
            "config": {"cls": json.loads((classifier / "config.json").read_text()),
                       "sum": json.loads((summarizer / "config.json").read_text())},
            "metrics": {"cls": json.loads((classifier / "metrics.json").read_text())}}


@pytest.fixture(scope="module")
def launched(served_copies, trained):
    servers = {
        "main": KeyedServer("--model", f"cls={served_copies['classifier']}", "--model", f"sum={served_copies['summarizer']}",
                            "--api-key-file", str(served_copies["key_file"]), "--max-wait-ms", "100",
                            "--read-timeout-s", "1", "--timeout-keep-alive", "1", "--limit-concurrency", "200"),
        # A batch waits 60 s for company, so requests are still in flight past the 1 s drain limit.
        "slow": Server("--model", f"cls={trained['classifier_dir']}", "--max-wait-ms", "60000", "--drain-timeout-s", "1"),
    }
    yield servers
    for running in servers.values():
        if running.process.poll() is None:
            assert running.stop() == 0, running.log
        assert "Traceback" not in running.log, running.log


# --------------------------------------------------------------------------------------------
# Item 6: what is served was read at load
# --------------------------------------------------------------------------------------------


def test_editing_or_deleting_a_served_models_files_changes_nothing_served(launched, served_copies, trained):
    server = launched["main"].wait_ready()
    texts = [row["document"] for row in credit_rows(4, seed=5)]
    before = server.models()
    assert before["sum"]["config"] == served_copies["config"]["sum"]
    assert before["cls"]["metrics"] == served_copies["metrics"]["cls"]
    summarizer = served_copies["summarizer"]
    config = json.loads((summarizer / "config.json").read_text())
    config["decoding"] = {**config.get("decoding", {}), "beam_size": 1, "max_length": 1}
    (summarizer / "config.json").write_text(json.dumps(config))
    (served_copies["classifier"] / "metrics.json").unlink()
    edited = server.client.post("/v1/summarize", json={"texts": texts})
    assert [r["summary"] for r in edited.json()["results"]] == trained["summarizer"].summarize(texts, beam_size=2, max_length=5)
    (summarizer / "config.json").unlink()
    after = server.models()
    for name in ("cls", "sum"):
        assert {k: v for k, v in after[name].items() if k != "queue"} == {k: v for k, v in before[name].items() if k != "queue"}
    deleted = server.client.post("/v1/summarize", json={"texts": texts})
    assert [r["summary"] for r in deleted.json()["results"]] == trained["summarizer"].summarize(texts, beam_size=2, max_length=5)


# --------------------------------------------------------------------------------------------
# Item 11: the API key, no filesystem paths, no CDN pages
# --------------------------------------------------------------------------------------------


def test_the_api_key_is_required_except_on_health_and_ready(launched):
    server = launched["main"].wait_ready()
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
            for method, path in (("POST", "/v1/classify"), ("GET", "/v1/models"), ("GET", "/openapi.json")):
                response = anonymous.request(method, path, json={"texts": ["a"]}, headers=headers)
                assert response.status_code == 401, (headers, path, response.text)
                assert response.json() == {"error": "missing or wrong API key; send the header Authorization: Bearer <key>"}
                assert response.headers["WWW-Authenticate"] == "Bearer"
        assert anonymous.get("/health").json() == {"status": "ok"}
        assert anonymous.get("/ready").status_code == 200
        keyed = anonymous.post("/v1/classify", json={"texts": ["a fine film"]}, headers={"Authorization": f"bearer {KEY}"})
        assert keyed.status_code == 200, keyed.text


def test_models_show_no_filesystem_path_and_the_cdn_pages_are_off(launched, served_copies):
    server = launched["main"].wait_ready()
    response = server.client.get("/v1/models")
    assert "private-lm-dir" not in response.text and str(served_copies["classifier"]) not in response.text
    shown = server.models()["cls"]["config"]
    assert shown["model"]["init_from"] == HIDDEN_PATH
    expected = served_copies["config"]["cls"]
    expected["model"]["init_from"] = HIDDEN_PATH
    assert shown == expected  # everything else as saved
    for page in ("/docs", "/redoc"):
        missing = server.client.get(page)
        assert missing.status_code == 404 and "see /openapi.json" in missing.json()["error"]
    assert "/v1/classify" in server.client.get("/openapi.json").json()["paths"]
    assert "/openapi.json" in server.log and "/docs" not in server.log


def test_without_paths_hides_path_keys_and_absolute_paths_only():
    value = {"init_from": "runs/lm/model", "a": ["/etc/x", "~/x", "C:\\x", "\\\\host\\share", "n/a", "pos"], "b": 3}
    assert without_paths(value) == {"init_from": HIDDEN_PATH, "a": [HIDDEN_PATH] * 4 + ["n/a", "pos"], "b": 3}


def test_the_api_key_comes_from_the_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("NLP_LSTM_API_KEY", raising=False)
    assert read_api_key(None) is None
    monkeypatch.setenv("NLP_LSTM_API_KEY", " from-env ")
    assert read_api_key(None) == "from-env"
    (tmp_path / "key").write_text("from-file\n")
    assert read_api_key(tmp_path / "key") == "from-file"  # the option wins over the environment
    monkeypatch.setenv("NLP_LSTM_API_KEY", "  ")
    with pytest.raises(NlpLstmError, match="NLP_LSTM_API_KEY is set but empty"):
        read_api_key(None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(NlpLstmError, match="--api-key-file .*empty is empty"):
        read_api_key(tmp_path / "empty")
    with pytest.raises(NlpLstmError, match="--api-key-file .*nope does not exist"):
        read_api_key(tmp_path / "nope")


def test_a_server_other_machines_can_reach_without_a_key_warns():
    assert exposure_warning("0.0.0.0", "0.0.0.0", 8080, api_key=None).startswith(
        "warning: serving on 0.0.0.0 without an API key: anyone who can reach port 8080")
    assert exposure_warning("::", "::", 8080, api_key=None) is not None
    assert exposure_warning("0.0.0.0", "0.0.0.0", 8080, api_key="k") is None
    for loopback in ("127.0.0.1", "::1"):
        assert exposure_warning(loopback, loopback, 8080, api_key=None) is None


# --------------------------------------------------------------------------------------------
# Item 10: silent, slow-header and short-body connections are closed
# --------------------------------------------------------------------------------------------


def raw_connection(server: Server) -> socket.socket:
    host, port = re.match(r"http://([\d.]+):(\d+)", server.url).groups()
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.settimeout(30)  # far past the server's 1 s: a recv that times out means it never closed
    return connection


def read_until_closed(connection: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start, received = time.monotonic(), b""
    while chunk := connection.recv(65536):
        received += chunk
    return received, time.monotonic() - start


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "headers never end"])
def test_a_connection_without_a_whole_request_head_is_closed_within_the_read_timeout(launched, sent):
    server = launched["main"].wait_ready()
    with raw_connection(server) as connection:
        connection.sendall(sent)
        received, seconds = read_until_closed(connection)
    assert received == b"" and seconds < 10  # --read-timeout-s 1; 10 s leaves room for a loaded machine


def test_a_body_that_never_arrives_gets_408_and_the_connection_closes(launched):
    server = launched["main"].wait_ready()
    with raw_connection(server) as connection:
        connection.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"texts\": [")
        received, seconds = read_until_closed(connection)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received
    assert json.loads(body) == {"error": "the request body did not arrive within 1 s; send the whole body at once"}
    assert seconds < 10


def test_an_idle_keep_alive_connection_is_closed_after_timeout_keep_alive(launched):
    server = launched["main"].wait_ready()
    with raw_connection(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        received, seconds = read_until_closed(connection)
    assert received.startswith(b"HTTP/1.1 200") and b'{"status":"ok"}' in received and seconds < 10


# --------------------------------------------------------------------------------------------
# Item 9: SIGTERM with more in flight than the drain limit allows
# --------------------------------------------------------------------------------------------


def test_requests_still_in_flight_after_the_drain_limit_get_a_json_503_and_one_log_line(launched):
    server = launched["slow"].wait_ready()
    with httpx.Client(base_url=server.url, timeout=60) as first:  # runs at once: it comes after a quiet spell;
        assert first.post("/v1/classify", json={"texts": ["a first request"]}).status_code == 200  # the next wait
    answers: dict[int, httpx.Response] = {}

    def client(index):
        with httpx.Client(base_url=server.url, timeout=60) as own:
            answers[index] = own.post("/v1/classify", json={"texts": [f"text number {index}"]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: server.models()["cls"]["queue"]["queued"] == 3, "three queued requests")
    started = time.monotonic()
    code = server.stop()  # SIGTERM; the batch would wait a minute, the drain limit is 1 s
    for thread in threads:
        thread.join(60)
    assert code == 0, server.log
    assert time.monotonic() - started < 40  # nowhere near the minute the batch would have waited
    for response in answers.values():
        assert response.status_code == 503, response.text
        assert response.json() == {"error": "the server is shutting down; retry on another instance"}
        assert response.headers["Retry-After"] == "1"
    assert len(answers) == 3
    assert "Traceback" not in server.log and "Internal Server Error" not in server.log, server.log
    assert [line for line in server.lines if "ERROR" in line] == [
        next(line for line in server.lines if "Cancel 3 running task(s)" in line)], server.log

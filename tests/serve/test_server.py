"""`nlp-lstm serve` as a real server: uvicorn in a subprocess on a free loopback port, spoken to with httpx.

Two tiny models (`trained`, tests/serve/conftest.py) serve; every answer is compared with the same
model run in this process. Also: each error case, a full queue (503), SIGTERM with requests in
flight, and start-up errors. The app in-process (internal errors, multi-label) is in test_app.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import assert_usage_error, invoke, sentiment_rows
from tests.serve.corpora import credit_rows

ROOT = Path(__file__).resolve().parents[2]  # the checkout these tests run from
START_TIMEOUT = 120  # s: a loaded 2-core machine needs ~10 s to import torch and load the models


class Server:
    """`python -m nlp_lstm.cli.main serve ARGS --port 0` in a subprocess; its output kept line by line."""

    def __init__(self, *args: str) -> None:
        """Start the process; `wait_ready` blocks until it serves (several servers start side by side)."""
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this checkout first
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nlp_lstm.cli.main", "serve", "--port", "0", "--threads", "1", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self.client: httpx.Client | None = None
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def wait_ready(self) -> "Server":
        assert self._found.wait(START_TIMEOUT), f"the server printed no address:\n{self.log}"
        assert self.url is not None, f"the server exited before serving:\n{self.log}"
        self.client = self.client or httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the socket listens before uvicorn starts; /ready says when the batchers run
            try:
                if self.client.get("/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.process.poll() is None, f"never ready:\n{self.log}"
            time.sleep(0.1)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if self.url is None and (found := re.search(r"on (http://127\.0\.0\.1:\d+)", line)):
                self.url = found.group(1)
                self._found.set()
        self._found.set()  # exited

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 60 s if it never exits)."""
        if self.client is not None:
            self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server ignored SIGTERM:\n{self.log}") from None

    def models(self) -> dict:
        return {model["name"]: model for model in self.client.get("/v1/models").json()["models"]}


@pytest.fixture(scope="module")
def launched(trained):
    """Both servers the module uses, started side by side (each takes seconds to import torch)."""
    servers = {
        "main": Server("--model", f"cls={trained['classifier_dir']}", "--model", f"sum={trained['summarizer_dir']}",
                       "--max-wait-ms", "100", "--max-texts-per-request", "8", "--max-body-bytes", "1500000"),
        # Two texts fit in its queue, and a batch waits 3 s for company (after a first request: one
        # that comes after a quiet spell runs at once): the rest of a burst finds it full.
        "busy": Server("--model", str(trained["classifier_dir"]), "--max-queue", "2", "--max-texts-per-request", "1",
                       "--max-wait-ms", "3000"),
    }
    yield servers
    for name, running in servers.items():
        if running.process.poll() is None:
            assert running.stop() == 0, running.log
        assert "Traceback" not in running.log, running.log


@pytest.fixture(scope="module")
def server(launched):
    return launched["main"].wait_ready()


def post(server: Server, path: str, body) -> httpx.Response:
    return server.client.post(path, json=body)


def assert_matches_predict(results: list[dict], texts: list[str], classifier) -> None:
    """Each result is the in-process prediction of its own text (label, and score to rounding)."""
    expected = classifier.predict(texts)
    assert [r["label"] for r in results] == [e["label"] for e in expected]
    assert [r["score"] for r in results] == pytest.approx([e["score"] for e in expected], abs=2e-4)


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def test_health_ready_models_and_schema(server, trained):
    assert server.client.get("/health").json() == {"status": "ok"}
    assert server.client.get("/ready").json() == {"status": "ready", "models": ["cls", "sum"]}
    models = server.models()
    for name, directory, kind in (("cls", trained["classifier_dir"], "classifier"), ("sum", trained["summarizer_dir"], "summarizer")):
        assert models[name]["kind"] == kind and models[name]["default"] is True
        assert models[name]["config"] == json.loads((directory / "config.json").read_text())
        assert models[name]["metrics"] == json.loads((directory / "metrics.json").read_text())
    assert models["cls"]["labels"] == ["neg", "pos"] and models["sum"]["labels"] is None
    assert models["cls"]["max_input_tokens"] == trained["classifier"].max_length
    assert models["sum"]["max_input_tokens"] == 12
    assert "/v1/classify" in server.client.get("/openapi.json").json()["paths"]  # /docs is off (tests/serve/test_hardening.py)


@pytest.mark.filterwarnings("ignore:empty or whitespace-only text")
def test_classify_gives_every_label_probability_as_predict_does(server, trained):
    texts = [row["text"] for row in sentiment_rows(6, seed=9)] + ["", "a wonderful film"]
    response = post(server, "/v1/classify", {"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "cls" and len(body["results"]) == len(texts)
    assert_matches_predict(body["results"], texts, trained["classifier"])
    for result in body["results"]:
        assert set(result["scores"]) == {"neg", "pos"}
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=2e-4)
        assert result["scores"][result["label"]] == result["score"] == max(result["scores"].values())
        assert result["truncated"] is False and "labels" not in result


def test_concurrent_requests_each_get_their_own_results(server, trained):
    rows = sentiment_rows(60, seed=11)
    requests = [[row["text"] for row in rows[i : i + 1 + i % 4]] for i in range(0, 48, 2)]  # 24 requests, 1-4 texts
    before = server.models()["cls"]["queue"]
    answers: dict[int, dict] = {}
    barrier = threading.Barrier(len(requests))

    def client(index):
        with httpx.Client(base_url=server.url, timeout=60) as own:
            barrier.wait()
            answers[index] = own.post("/v1/classify", json={"texts": requests[index], "model": "cls"}).json()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index, texts in enumerate(requests):
        assert_matches_predict(answers[index]["results"], texts, trained["classifier"])
    after = server.models()["cls"]["queue"]
    assert after["requests"] - before["requests"] == len(requests)
    assert after["texts"] - before["texts"] == sum(map(len, requests))
    assert after["batches"] - before["batches"] < len(requests)  # requests within 100 ms shared a forward pass


def test_summarize_matches_in_process_decoding(server, trained):
    texts = [row["document"] for row in credit_rows(5, seed=7)]
    summarizer = trained["summarizer"]
    default = post(server, "/v1/summarize", {"texts": texts})
    assert default.status_code == 200, default.text
    assert default.json()["model"] == "sum"
    # The model's own decoding settings (config.json: beam 2, 5 tokens) apply when the request sets none.
    assert [r["summary"] for r in default.json()["results"]] == summarizer.summarize(texts, beam_size=2, max_length=5)
    greedy = post(server, "/v1/summarize", {"texts": texts, "model": "sum", "beam_size": 1, "max_length": 3})
    assert [r["summary"] for r in greedy.json()["results"]] == summarizer.summarize(texts, beam_size=1, max_length=3)
    assert all(r["truncated"] is False for r in greedy.json()["results"])


@pytest.mark.filterwarnings("ignore:1 text\\(s\\) longer than")
def test_a_long_text_is_truncated_as_the_model_does_and_flagged(server, trained):
    words = [row["text"] for row in sentiment_rows(40000, seed=13)]
    long_text = " ".join(words)[:1_000_000]  # 1 MB, ~190k tokens; the model reads its first max_length
    classified = post(server, "/v1/classify", {"texts": [long_text, "a lovely film"]})
    assert classified.status_code == 200, classified.text
    results = classified.json()["results"]
    assert [r["truncated"] for r in results] == [True, False]
    assert_matches_predict(results, [long_text, "a lovely film"], trained["classifier"])

    document = " ".join(row["document"] for row in credit_rows(20000, seed=3))[:1_000_000]
    summarized = post(server, "/v1/summarize", {"texts": [document], "beam_size": 2, "max_length": 5}).json()["results"]
    assert summarized[0]["truncated"] is True
    assert summarized[0]["summary"] == trained["summarizer"].summarize([document], beam_size=2, max_length=5)[0]


# --------------------------------------------------------------------------------------------
# Errors: each one a 4xx with {"error": "..."} naming the problem, and the server lives on
# --------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("/v1/classify", b'{"texts": ["a", ', 400, "malformed JSON"),
    ("/v1/classify", b'{"model": "cls"}', 422, "missing field 'texts'"),
    ("/v1/classify", b'{"texts": "one text"}', 422, "texts must be a list of strings"),
    ("/v1/classify", b'{"texts": ["fine", 7]}', 422, "texts[1] must be a string, not a number"),
    ("/v1/classify", b'{"texts": ["fine", null]}', 422, "texts[1] must be a string, not null"),
    ("/v1/classify", b'{"txts": ["a"]}', 422, "unknown field 'txts'"),
    ("/v1/classify", b'["a"]', 422, "not a JSON object"),
    ("/v1/classify", b"", 422, "the request body is empty"),
    ("/v1/classify", json.dumps({"texts": ["a"] * 9}).encode(), 413, "9 texts in one request; the limit is 8"),
    ("/v1/classify", b'{"texts": ["a"], "model": "nope"}', 404, "unknown model 'nope'; served: cls, sum"),
    ("/v1/classify", b'{"texts": ["a"], "model": "sum"}', 400, "'sum' is a summarizer"),
    ("/v1/summarize", b'{"texts": ["a"], "model": "cls"}', 400, "'cls' is a classifier"),
    ("/v1/summarize", b'{"texts": ["a"], "beam_size": 0}', 422, "beam_size"),
    ("/v1/summarize", b'{"texts": ["a"], "max_length": 100000}', 422, "max_length"),
    ("/v1/nothing", b'{"texts": ["a"]}', 404, "no such path /v1/nothing"),
]


@pytest.mark.parametrize(("path", "body", "status", "fragment"), BAD_REQUESTS, ids=[c[3] for c in BAD_REQUESTS])
def test_bad_requests_get_one_error_line(server, path, body, status, fragment):
    response = server.client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and fragment in response.json()["error"], response.text
    assert "Traceback" not in response.text
    assert server.client.get("/health").status_code == 200


def test_wrong_method_and_body_over_the_limit(server):
    wrong = server.client.get("/v1/classify")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["error"]
    big = {"texts": ["word " * 320_000]}  # 1.6 MB > --max-body-bytes 1500000
    declared = server.client.post("/v1/classify", json=big)
    assert declared.status_code == 413 and "1500000-byte limit" in declared.json()["error"]
    data = json.dumps(big).encode()
    streamed = server.client.post("/v1/classify", content=iter([data[i : i + 65536] for i in range(0, len(data), 65536)]),
                                  headers={"Content-Type": "application/json"})  # chunked: no Content-Length
    assert streamed.status_code == 413 and "1500000-byte limit" in streamed.json()["error"]
    assert post(server, "/v1/classify", {"texts": ["still fine"]}).status_code == 200


def test_a_full_queue_answers_503_and_sigterm_drains_what_it_accepted(launched, trained):
    busy = launched["busy"].wait_ready()
    texts = [row["text"] for row in sentiment_rows(10, seed=21)]
    assert post(busy, "/v1/classify", {"texts": ["a first request, run at once"]}).status_code == 200
    answers: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(len(texts) + 1)

    def client(index):
        with httpx.Client(base_url=busy.url, timeout=60) as own:
            barrier.wait()
            answers[index] = own.post("/v1/classify", json={"texts": [texts[index]]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    barrier.wait()
    deadline = time.monotonic() + 30
    while len(answers) < len(texts) - 2:  # the refusals come back at once; two wait out the 3 s window
        assert time.monotonic() < deadline, (answers, busy.log)
        time.sleep(0.02)
    queue = busy.models()["classifier"]["queue"]  # a bare DIR is named after the directory
    assert queue["queued"] >= 1, queue  # still waiting for the model when SIGTERM arrives
    code = busy.stop()  # SIGTERM while the accepted requests are still in flight
    for thread in threads:
        thread.join(60)
    refused = [i for i, r in answers.items() if r.status_code == 503]
    served = [i for i, r in answers.items() if r.status_code == 200]
    assert len(refused) + len(served) == len(texts) and len(served) >= 2 and refused, answers
    for index in refused:
        assert answers[index].headers["Retry-After"] == "1"
        assert list(answers[index].json()) == ["error"] and "busy" in answers[index].json()["error"]
    for index in served:
        assert_matches_predict(answers[index].json()["results"], [texts[index]], trained["classifier"])
    assert queue["rejected"] == len(refused) and queue["requests"] == 1 + len(served)
    assert code == 0, busy.log
    assert "Finished server process" in busy.log and "Traceback" not in busy.log
    with pytest.raises(httpx.ConnectError):
        httpx.get(busy.url + "/health", timeout=5)


# --------------------------------------------------------------------------------------------
# Start-up errors: one line, exit 2 (in-process CLI)
# --------------------------------------------------------------------------------------------


def test_a_bad_model_directory_is_one_line_and_exit_2(tmp_path):
    assert_usage_error(invoke("serve", "--model", tmp_path / "missing", "--port", "0"), "does not exist")


def test_a_port_in_use_is_one_line_and_exit_2(trained):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = invoke("serve", "--model", trained["classifier_dir"], "--port", port)
    assert_usage_error(result, f"port {port} on 127.0.0.1 is in use", "--port")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--max-queue", "4", "--max-texts-per-request", "8"], "--max-queue 4 is below --max-texts-per-request 8"),
    (["--runtime", "tensorflow"], "unknown --runtime 'tensorflow'"),
    (["--bf16-output"], "--bf16-output is for summarizers and none of the served models is one"),
    (["--runtime", "onnx", "--bf16-output"], "--bf16-output is for the PyTorch runtime; drop it with --runtime onnx"),
])
def test_bad_settings_are_one_line_and_exit_2(trained, args, fragment):
    assert_usage_error(invoke("serve", "--model", trained["classifier_dir"], "--port", "0", *args), fragment)


def test_two_models_of_one_name_are_refused(trained):
    result = invoke("serve", "--model", f"a={trained['classifier_dir']}", "--model", f"a={trained['summarizer_dir']}")
    assert_usage_error(result, "two models are named 'a'", "NAME=DIR")

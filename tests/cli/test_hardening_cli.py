"""Probes of issue 23 through the CLI: input texts that are not valid UTF-8 or start with a byte-order
mark."""

import json
import os
import subprocess
import sys

from tests.helpers import ROOT, assert_usage_error, invoke

CLASSIFIER = ROOT / "tests" / "fixtures" / "format1" / "classifier"
SUMMARIZER = ROOT / "tests" / "fixtures" / "format1" / "summarizer"


def classify_json(*args, input=None) -> list[dict]:
    result = invoke("classify", "--model", CLASSIFIER, "--format", "json", *args, input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- issue 23, item 2: text arguments that are not valid UTF-8 ----------------------------------
def test_text_argument_that_is_not_utf8_is_a_usage_error():
    # What Python makes of argv bytes b"caf\xe9 \xff" under a UTF-8 locale (surrogateescape).
    argument = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    result = invoke("classify", "--model", CLASSIFIER, "fine text", argument)
    assert_usage_error(result, "text argument 2", "caf\\xe9 \\xff", "not valid UTF-8 (byte 3)", "--input-file")
    result = invoke("summarize", "--model", SUMMARIZER, argument)
    assert_usage_error(result, "text argument 1", "not valid UTF-8 (byte 3)")


def test_text_argument_bytes_through_a_real_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nlp_lstm.cli.main", "classify", "--model", str(CLASSIFIER), b"caf\xe9 \xff"],
        capture_output=True, env=env, timeout=300,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: text argument 1 (caf\\xe9 \\xff)"), stderr


def test_valid_utf8_arguments_are_classified_unchanged():
    rows = classify_json("café ☕", "naïve 😀")
    assert [row["text"] for row in rows] == ["café ☕", "naïve 😀"]


# --- issue 23, item 15: a UTF-8 byte-order mark is not part of the first text --------------------
def test_byte_order_mark_is_stripped_from_input_file_and_stdin(tmp_path):
    texts = ["the film was great", "awful boring story"]
    expected = classify_json(*texts)
    path = tmp_path / "with_bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(texts).encode("utf-8") + b"\n")
    assert classify_json("--input-file", path) == expected
    assert classify_json(input=b"\xef\xbb\xbf" + "\r\n".join(texts).encode("utf-8")) == expected
    # Only a leading mark is a byte-order mark: one inside a text is kept.
    inner = classify_json("--input-file", path.write_text("a\ufeffb\n", encoding="utf-8") and path)
    assert inner[0]["text"] == "a\ufeffb"

"""Probes of issue 23 against the data path: texts that made tokenization slow or raise, data files whose
errors were misreported, and label columns a classifier cannot be trained on."""

import gzip
import itertools
import json
import random
import time
from pathlib import Path

import pytest
import spacy

from nlp_lstm.data.spacy_rules import MAX_CHUNK, MAX_SYMBOL_RUN, bound_chunks
from nlp_lstm.data.tokenizers import fit_tokenizer

REPO = Path(__file__).resolve().parents[2]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Prices rose 3.5% in 2004 (the report said) -- \"really\"?!",
    "Emoji make text fun 😀 🎉 really fun 😀",
    "See https://example.com/a/b?c=d&e=f#top for $5.99, or e-mail me@example.org!!!",
] * 5


@pytest.fixture(scope="module")
def spacy_tokenizer():
    return fit_tokenizer(iter(CORPUS), kind="spacy", vocab_size=200, min_freq=1, lowercase=False)


@pytest.fixture(scope="module")
def sentencepiece_tokenizer():
    return fit_tokenizer(iter(CORPUS), kind="sentencepiece", vocab_size=60)


# --- issue 23, item 1: tokenization costs time linear in the text's length ---------------------
def _adversarial(name: str, size: int) -> str:
    if name == "mixed punctuation":
        rng = random.Random(0)  # distinct pieces: spaCy's cache cannot hide the cost
        return "".join(rng.choice("(\"$😀)'[%") for _ in range(size))
    if name == "url":
        return "http://example.com/" + "".join(f"a{i}/b?c=d&" for i in range(size))[: size - 19]
    return name * size


@pytest.mark.parametrize("name", ["(", "$", '"', "😀", "url", "mixed punctuation"])
def test_adversarial_text_tokenizes_in_linear_time(spacy_tokenizer, name):
    # 10 KB first: before the fix, "(" * 10_000 took 11 s and "$" * 10_000 21 s (quadratic), so
    # this fails in seconds rather than hanging on the 100 KB text (which then took about 20 minutes).
    for size in (10_000, 100_000):
        text = _adversarial(name, size)
        start = time.perf_counter()
        tokens = spacy_tokenizer.tokenize(text)
        elapsed = time.perf_counter() - start
        limit = 5.0 if name == "mixed punctuation" else 2.0  # the mix: 0.5 s per 100 KB on an idle box
        assert elapsed < limit, f"{size} characters of {name!r} took {elapsed:.1f} s"
        # Sensible output: nothing lost or invented (spaCy's tokens cover the text, spaces aside) ...
        assert "".join(tokens) == text
        # ... and a run of one punctuation character is one token per character, as spaCy gives it.
        if len(name) == 1:
            assert tokens == [name] * size
        if name == "url":  # pieces of at most MAX_CHUNK characters
            assert max(len(t) for t in tokens) <= MAX_CHUNK and len(tokens) >= size // MAX_CHUNK


def test_ids_of_adversarial_text_are_linear_too(spacy_tokenizer, sentencepiece_tokenizer):
    text = "$" * 100_000
    for tokenizer in (spacy_tokenizer, sentencepiece_tokenizer):
        start = time.perf_counter()
        ids = tokenizer.encode_batch([text, "fun 😀"])
        assert time.perf_counter() - start < 2.0
        assert len(ids) == 2 and len(ids[0]) >= 1


def _corpus_texts(limit: int) -> list[str]:
    texts = []
    with gzip.open(REPO / "data" / "vader_sentiment.jsonl.gz", "rt", encoding="utf-8") as file:
        for line in itertools.islice(file, limit):
            texts.append(json.loads(line)["text"])
    return texts


def test_ordinary_text_is_tokenized_exactly_as_by_spacy(spacy_tokenizer):
    """The bound only touches long punctuation runs and chunks: real text gives spaCy's own tokens."""
    raw = spacy.blank("en").tokenizer
    long_url = "https://example.com/" + "path/" * ((MAX_CHUNK - 30) // 5) + "?q=1"  # under MAX_CHUNK: one token
    probes = _corpus_texts(3000) + CORPUS + [
        long_url,
        "wow" + "!" * (MAX_SYMBOL_RUN * 3) + " ok",  # a long run of one character: the same tokens
        "(" * (MAX_SYMBOL_RUN * 2 + 3) + "x" + ")" * (MAX_SYMBOL_RUN + 5),
        "..." + "?" * MAX_SYMBOL_RUN,
    ]
    for text in probes:
        expected = [token.text for token in raw(text) if not token.is_space]
        assert spacy_tokenizer.tokenize(text) == expected, text
    assert spacy_tokenizer.tokenize(long_url) == [long_url]


def test_bound_changes_only_long_runs_and_chunks():
    assert bound_chunks("a" * MAX_CHUNK) == "a" * MAX_CHUNK
    assert bound_chunks("a" * (MAX_CHUNK + 1)) == "a" * MAX_CHUNK + " a"
    assert bound_chunks("x" + "-" * MAX_SYMBOL_RUN) == "x" + "-" * MAX_SYMBOL_RUN
    assert bound_chunks("-" * (2 * MAX_SYMBOL_RUN + 1) + "x") == "-" * MAX_SYMBOL_RUN + " " + "-" * MAX_SYMBOL_RUN + " -x"
    assert bound_chunks("tab\there  two  spaces") == "tab\there  two  spaces"


# --- issue 23, item 2: a lone surrogate never makes tokenization raise -------------------------
@pytest.mark.parametrize("kind", ["spacy", "sentencepiece"])
def test_lone_surrogates_are_replaced_not_raised(kind, spacy_tokenizer, sentencepiece_tokenizer):
    tokenizer = spacy_tokenizer if kind == "spacy" else sentencepiece_tokenizer
    texts = ["x\ud800y", "fun \udcff😀", "\udfff"]
    replaced = ["x\ufffdy", "fun \ufffd😀", "\ufffd"]
    assert tokenizer.encode_batch(texts) == tokenizer.encode_batch(replaced)
    assert tokenizer.tokenize_batch(texts) == tokenizer.tokenize_batch(replaced)
    assert [pieces for pieces, _ in tokenizer.tokenize_and_encode_batch(texts)] == tokenizer.tokenize_batch(replaced)


@pytest.mark.parametrize("kind", ["spacy", "sentencepiece"])
def test_fitting_on_texts_with_lone_surrogates(kind):
    tokenizer = fit_tokenizer(iter(CORPUS + ["bad \ud800 text"] * 3), kind=kind, vocab_size=60, **(
        {"min_freq": 1} if kind == "spacy" else {}))
    assert tokenizer.encode("bad \ud800 text") == tokenizer.encode("bad \ufffd text")


# --- issue 23: a library call asked to be quiet is quiet -----------------------------------------
def test_train_with_progress_false_prints_no_datasets_bars(tmp_path, capfd):
    import datasets

    import nlp_lstm
    from nlp_lstm.data.sources import DataSource
    from nlp_lstm.stages.classification import default_training
    from tests.helpers import sentiment_rows, write_csv

    if datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is not None:
        pytest.skip("HF_DATASETS_DISABLE_PROGRESS_BARS is set in the environment: datasets' bars follow it")
    disabled_before = datasets.utils.are_progress_bars_disabled()
    datasets.enable_progress_bars()  # as in a fresh process (a CLI test in this process turns them off)
    try:
        # The probe sees the bars when they are on: a fresh file prints "Generating train split".
        datasets.load_dataset("csv", data_files=str(write_csv(tmp_path / "probe.csv", sentiment_rows(5))), split="train")
        assert "Generating train split" in capfd.readouterr().err
        train = write_csv(tmp_path / "train.csv", sentiment_rows(80, seed=3))
        nlp_lstm.train(output_dir=tmp_path / "model", source=DataSource(train_file=str(train)),
                       tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1},
                       model={"embedding_dim": 8, "hidden_size": 8},
                       training=default_training(epochs=1, batch_size=32),
                       progress=False, device="cpu")
        err = capfd.readouterr().err
        for bar in ("Generating train split", "Filter", "Encoding", "Map", "%|"):
            assert bar not in err, err
        assert not datasets.utils.are_progress_bars_disabled()  # the switch is restored
    finally:
        if disabled_before:
            datasets.disable_progress_bars()


# --- issue 23, item 12: data errors name the real problem and place, in one line -----------------
def _rows(count: int) -> list[str]:
    return [json.dumps({"text": f"film number {i}", "label": "pos" if i % 2 else "neg"}) for i in range(count)]


def _logged(stderr: str) -> list[str]:
    """stderr's lines less datasets' progress bars (on in this process; the CLI turns them off)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "examples" not in line]


@pytest.mark.parametrize("name, count, bad_line, streaming", [
    ("small.jsonl", 300, 151, False),
    ("big.jsonl.gz", 60_000, 45_000, False),  # past the reader's first 1 MB block ("row 0" before)
    ("stream.jsonl", 300, 151, True),
])
def test_broken_json_line_is_reported_by_its_line_number(tmp_path, capfd, name, count, bad_line, streaming):
    from nlp_lstm.data.files import load_file
    from nlp_lstm.errors import NlpLstmError

    lines = _rows(count)
    lines[bad_line - 1] = '{"text": "broken, "label": "pos"}'
    content = ("\n".join(lines) + "\n").encode("utf-8")
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    capfd.readouterr()
    with pytest.raises(NlpLstmError) as raised:
        load_file(path, streaming=streaming)
    message = str(raised.value)
    assert f"line {bad_line} is not valid JSON" in message and str(path) in message and "\n" not in message
    assert "row" not in message
    assert _logged(capfd.readouterr().err) == []  # no second line logged by the datasets library


@pytest.mark.parametrize("damage", ["truncated", "zeroed middle", "not parquet"])
def test_damaged_parquet_is_not_called_invalid_utf8(tmp_path, capfd, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nlp_lstm.data.files import load_file
    from nlp_lstm.errors import NlpLstmError

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": [f"film {i}" for i in range(2000)], "label": ["pos", "neg"] * 1000}), good)
    data = good.read_bytes()
    path = tmp_path / "bad.parquet"
    path.write_bytes({"truncated": data[: len(data) // 2],
                      "zeroed middle": data[: len(data) // 2] + b"\0" * 64 + data[len(data) // 2 + 64:],
                      "not parquet": bytes(range(256)) * 8}[damage])
    capfd.readouterr()
    with pytest.raises(NlpLstmError) as raised:
        load_file(path)
    message = str(raised.value)
    assert "UTF-8" not in message and "as parquet" in message and "damaged or not parquet" in message
    assert _logged(capfd.readouterr().err) == []


def test_label_column_mixing_strings_and_numbers(tmp_path):
    from nlp_lstm.data.columns import label_names
    from nlp_lstm.data.encode import encode_classification
    from nlp_lstm.data.sources import DataSource, load_splits
    from nlp_lstm.errors import NlpLstmError

    path = tmp_path / "mixed.jsonl"
    labels = ["pos" if i % 3 else 1 for i in range(90)]
    path.write_text("".join(json.dumps({"text": f"t {i}", "label": label}) + "\n" for i, label in enumerate(labels)))
    train = load_splits(DataSource(train_file=str(path)), splits=("train",))["train"]
    names = label_names(train, "label")
    assert names == ["1", "pos"]
    tokenizer = fit_tokenizer(iter(CORPUS), kind="spacy", vocab_size=50, min_freq=1)
    encoded = encode_classification(train, tokenizer, text_column="text", label_column="label", label_names=names)
    assert sorted(set(encoded["labels"])) == [0, 1]
    path.write_text(json.dumps({"text": "a", "label": "pos"}) + "\n" + json.dumps({"text": "b", "label": {"x": 1}}) + "\n")
    with pytest.raises(NlpLstmError, match="mixes single labels with dicts"):
        load_splits(DataSource(train_file=str(path), validation_fraction=0, test_fraction=0), splits=("train",))


# --- issue 23, item 5: many labels are refused before training; no held-out row left -------------
def test_more_labels_than_a_classifier_takes_are_refused_before_training():
    import datasets

    from nlp_lstm.data.columns import MAX_LABELS, label_names
    from nlp_lstm.errors import NlpLstmError

    at_cap = datasets.Dataset.from_dict({"label": [f"L{i}" for i in range(MAX_LABELS)] * 2})
    assert len(label_names(at_cap, "label")) == MAX_LABELS
    over = datasets.Dataset.from_dict({"label": [f"L{i}" for i in range(50_000)]})
    with pytest.raises(NlpLstmError, match=f"has 50,000 distinct labels, more than the {MAX_LABELS:,}"):
        label_names(over, "label")


def test_no_held_out_row_left_is_one_clear_error(tmp_path):
    import nlp_lstm
    from nlp_lstm.data.sources import DataSource
    from nlp_lstm.errors import NlpLstmError

    path = tmp_path / "unique.jsonl"  # every label unique: no validation row has a training label
    path.write_text("".join(json.dumps({"text": f"text {i}", "label": f"L{i}"}) + "\n" for i in range(200)))
    with pytest.raises(NlpLstmError, match=r"no row of the validation split is left: none of its 20 row\(s\)"):
        nlp_lstm.train(output_dir=tmp_path / "model", source=DataSource(train_file=str(path)),
                       tokenizer_settings={"kind": "spacy", "vocab_size": 100, "min_freq": 1}, progress=False,
                       device="cpu")

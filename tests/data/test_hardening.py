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
from nlp_lstm.data.tokenize import fit_tokenizer

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

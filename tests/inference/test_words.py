"""Pieces back onto the words the user typed: offsets of both tokenizers, Unicode and punctuation."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from nlp_lstm.data.tokenizers import fit_tokenizer, load_tokenizer
from nlp_lstm.data.word_ngrams import CHAR_PREFIX, char_grams, text_grams
from nlp_lstm.inference.words import ngram_occurrences, spread, word_spans
from tests.helpers import ROOT

UNICODE = "Café naïve — ﬁne!!  Ünïcödé 😀 x"


def words_of(text):
    return [text[start:end] for start, end in word_spans(text)]


def test_words_split_punctuation_and_keep_unicode_letters_whole():
    assert words_of(UNICODE) == ["Café", "naïve", "—", "ﬁne", "!", "!", "Ünïcödé", "😀", "x"]
    assert words_of("Not bad at all, I would buy it again.") == \
        ["Not", "bad", "at", "all", ",", "I", "would", "buy", "it", "again", "."]
    assert words_of("cafe\u0301 ok") == ["cafe\u0301", "ok"]  # a combining accent stays with its letter
    assert words_of("   ") == []


def test_sentencepiece_pieces_land_on_the_words_they_came_from():
    tokenizer = load_tokenizer(ROOT / "vocab" / "sentiment")  # NFKC and case folding: "ﬁ" -> "fi", "Ü" -> "ü"
    spans = tokenizer.spans(UNICODE)
    assert len(spans) == len(tokenizer.encode(UNICODE))
    pieces = [UNICODE[start:end].strip() for start, end in spans]
    assert "".join(pieces) == UNICODE.replace(" ", "")  # every character once, in order
    counts = spread([(start, end, 1.0) for start, end in spans], word_spans(UNICODE))
    by_word = dict(zip(words_of(UNICODE), counts))
    # Each word gets as many pieces as cover it: hand-checked against the pieces listed below.
    listed = tokenizer.tokenize(UNICODE)
    assert listed[:3] == ["▁ca", "f", "é"] and by_word["Café"] == pytest.approx(3.0)
    assert by_word["—"] == pytest.approx(2.0)  # a lone "▁" before it, and "—" itself
    assert by_word["ﬁne"] == pytest.approx(1.0)
    assert by_word["😀"] == pytest.approx(2.0)
    assert sum(counts) == pytest.approx(len(spans))  # nothing lost
    # "!!" is one piece over two words: half each.
    assert counts[4] == pytest.approx(0.5) and counts[5] == pytest.approx(0.5)


def test_an_empty_piece_goes_to_the_word_it_starts():
    tokenizer = load_tokenizer(ROOT / "vocab" / "sentiment")
    text = "İstanbul ＡＢＣ"  # "İ" lowercases to two characters; fullwidth letters normalise
    spans = tokenizer.spans(text)
    assert spans[0] == (0, 0)  # sentencepiece's lone "▁"
    counts = spread([(start, end, 1.0) for start, end in spans], word_spans(text))
    assert counts == [pytest.approx(5.0), pytest.approx(3.0)]


def test_spacy_word_offsets_follow_the_text():
    tokenizer = fit_tokenizer(["Don't stop (1968) naïve café!!"], kind="spacy", min_freq=1)
    text = "Don't  stop (1968) naïve café!!"
    spans = tokenizer.spans(text)
    assert [text[s:e] for s, e in spans] == ["Do", "n't", "stop", "(", "1968", ")", "naïve", "café", "!", "!"]
    long = "(" * 40 + "x"  # spaCy is given it cut by spaces (`bound_chunks`); the offsets are still the text's
    spans = tokenizer.spans(long)
    assert len(spans) == len(tokenizer.encode(long))
    assert "".join(long[s:e] for s, e in spans) == long and all(e - s >= 1 for s, e in spans)


@pytest.mark.parametrize("text", ["Not bad at all, I would buy it again.", UNICODE, "İstanbul ΣΑΣ ok"])
def test_ngram_occurrences_are_the_ngrams_the_features_count(text):
    found = ngram_occurrences(text, order=2, char_order=4, char_prefix=CHAR_PREFIX)
    tokens = re.findall(r"\w+|[^\w\s]", text.lower())
    expected = Counter(text_grams(tokens, 2)) + Counter(CHAR_PREFIX + g for g in char_grams(text.lower(), 4))
    assert Counter({gram: len(places) for gram, places in found.items()}) == expected
    for places in found.values():
        for place in places:
            for start, end in place:
                assert 0 <= start < end <= len(text)
    # A word n-gram's spans are the words it joins, as typed.
    assert [text[s:e] for s, e in found[tokens[0]][0]][0].lower().startswith(tokens[0][0])

"""Raw text -> words with their character offsets, by spaCy's rule tokenizer of a language (what a
tagger reads when it is given text rather than tokens)."""

from __future__ import annotations

from collections.abc import Sequence

from nlp_lstm.data.spacy_rules import bound_chunks, spacy_tokenizer
from nlp_lstm.data.tokenize import clean_text

PIPE_BATCH_SIZE = 256


def split_words(texts: Sequence[str], language: str) -> list[tuple[list[str], list[tuple[int, int]]]]:
    """Per text, its words (spaCy's tokens, whitespace tokens dropped) and each word's `(start, end)`
    character offsets in the text (end exclusive): `text[start:end] == word`.

    spaCy is given `bound_chunks(text)` (linear time on any text), which only inserts spaces, so each
    word is found in the text itself in order. Lone surrogates become U+FFFD (`clean_text`), one
    character for one, so offsets still index the text given.
    """
    cleaned = [clean_text(text) for text in texts]
    tokenizer = spacy_tokenizer(language)
    results = []
    for text, doc in zip(cleaned, tokenizer.pipe((bound_chunks(text) for text in cleaned), batch_size=PIPE_BATCH_SIZE)):
        words, offsets, cursor = [], [], 0
        for token in doc:
            if token.is_space:
                continue
            word = token.text
            start = text.find(word, cursor)
            if start < 0:  # not expected (bound_chunks only adds spaces); keep one offset per word
                start = cursor
            cursor = start + len(word)
            words.append(word)
            offsets.append((start, cursor))
        results.append((words, offsets))
    return results

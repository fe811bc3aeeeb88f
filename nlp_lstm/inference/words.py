"""The words a user typed, and values per token (a sentencepiece piece, a spaCy word, an n-gram)
spread onto them by character offsets: what `explain` shows.

A word is what the linear part's n-grams count as one (`data/word_ngrams.TOKEN_PATTERN`): a run of
letters and digits, or one punctuation mark or symbol, so "bad," is "bad" and ",", and "!" can carry
its own sign. Combining marks (a decomposed "é") stay with the letter before them.

Spreading: a token covering characters `[start, end)` gives each word it overlaps a share of its value
in proportion to the characters they share; values add up, so the words' values sum to the tokens'.
A token covering no word character (sentencepiece's lone "▁" before a word it could not join) goes
to the next word (the one it starts), or to the last word at the end of the text.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Sequence

from nlp_lstm.data.word_ngrams import CHAR_MIN, TOKEN_PATTERN

_WORD = re.compile(TOKEN_PATTERN)
_CHUNK = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """`(start, end)` character spans of the words of `text` (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        combining = all(unicodedata.category(c).startswith("M") for c in text[start:end])
        if combining and spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def spread(tokens: Iterable[tuple[int, int, float]], words: Sequence[tuple[int, int]]) -> list[float]:
    """Per word, the sum of the shares of `(start, end, value)` tokens it overlaps (module docstring)."""
    totals = [0.0] * len(words)
    if not words:
        return totals
    starts = [start for start, _ in words]
    for start, end, value in tokens:
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        shares = []
        for index in range(first, len(words)):
            word_start, word_end = words[index]
            if word_start >= end:
                break
            overlap = min(end, word_end) - max(start, word_start)
            if overlap > 0:
                shares.append((index, overlap))
        if not shares:  # no word character: the word this token starts, else the last
            shares = [(min(bisect.bisect_left(starts, start), len(words) - 1), 1)]
        covered = sum(overlap for _, overlap in shares)
        for index, overlap in shares:
            totals[index] += value * overlap / covered
    return totals


def lowered_offsets(text: str) -> tuple[str, list[int]]:
    """`text.lower()` and, per character of it, the index of the character of `text` it came from
    ("İ".lower() is two characters; each character lowers to the same length in any context)."""
    lowered = text.lower()
    origin = [index for index, character in enumerate(text) for _ in range(len(character.lower()))]
    if len(origin) != len(lowered):  # not expected; keep every index inside the text
        origin = [min(i * len(text) // max(len(lowered), 1), max(len(text) - 1, 0)) for i in range(len(lowered))]
    return lowered, origin


def ngram_occurrences(text: str, *, order: int, char_order: int, char_prefix: str) -> dict[str, list[list[tuple[int, int]]]]:
    """Every word and character n-gram of `text` (as `WordNgrams.blocks` counts them) -> its
    occurrences, each a list of the character spans in `text` it covers (one per word of a word
    n-gram; one for a character n-gram, the padding spaces left out)."""
    lowered, origin = lowered_offsets(text)

    def back(start: int, end: int) -> tuple[int, int]:  # a span of `lowered` -> a span of `text`
        return origin[start], origin[end - 1] + 1

    found: dict[str, list[list[tuple[int, int]]]] = {}
    tokens = [(match.group(), back(*match.span())) for match in _WORD.finditer(lowered)]
    for n in range(1, order + 1):
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            found.setdefault(" ".join(token for token, _ in window), []).append([span for _, span in window])
    if char_order >= CHAR_MIN:
        for match in _CHUNK.finditer(lowered):
            padded, base = f" {match.group()} ", match.start()
            for n in range(CHAR_MIN, char_order + 1):
                for i in range(max(1, len(padded) - n + 1)):
                    # padded[i : i + n] covers the chunk's characters i-1 .. i+n-2 (its spaces cover none)
                    start, end = max(i - 1, 0), min(i + n - 1, len(padded) - 2)
                    span = [back(base + start, base + end)] if end > start else []
                    found.setdefault(char_prefix + padded[i : i + n], []).append(span)
                if len(padded) <= n:
                    break
    return found

"""Summaries a person can read: whole words, and the case of the words they came from.

A summarizer whose tokenizer lower-cases (the default: case-folding halves the pieces a name needs)
generates lower-cased pieces, and a subword model can stop a word half-way ("... film by n ku" for
"by Stanley Kubrick"). ROUGE ignores both; a reader does not. `readable_summary` repairs the text
after decoding, from two sources of truth:

- the words of the training texts and summaries (`Lexicon`, saved with the model as `lexicon.json`),
  each with its most frequent written form ("kubrick" -> "Kubrick", "american" -> "American");
- the source text itself, for words the training data never had (a name copied from the source).

A generated word is whole when either knows it (or it is a number). A word that is not:
1. completes to the source word it begins (a copy cut short: "ku" -> "Kubrick"), or else
2. shortens to its longest prefix that is a word (a stray piece glued on: "byn" -> "by"), or else
3. is dropped.
Words then take their written form (the lexicon's, else the source's), and the summary its first
capital when most training summaries start with one. Only words change: ROUGE, which lower-cases,
sees the same or repaired words.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from nlp_lstm.artifacts import atomic_write_json, read_json

FILE_NAME = "lexicon.json"
_EDGE = "\"'()[]{}.,;:!?“”‘’«»…"  # punctuation stripped from a word's ends before it is looked up


def _key(word: str) -> str:
    return unicodedata.normalize("NFKC", word.strip(_EDGE)).lower()


@dataclass
class Lexicon:
    """Known words (lower-cased key -> most frequent written form) and the training summaries' habit."""

    forms: dict[str, str]
    capitalize_first: bool

    def save(self, directory: str | Path) -> None:
        atomic_write_json(Path(directory) / FILE_NAME, {"capitalize_first": self.capitalize_first,
                                                         "words": sorted(self.forms.values())})


def build_lexicon(texts: Iterable[str], summaries: Iterable[str]) -> Lexicon:
    """Count every written form of every word of the training `texts` and `summaries`."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    starts, capitalized = 0, 0
    for text, is_summary in chain(((t, False) for t in texts), ((s, True) for s in summaries)):
        if not text:
            continue
        if is_summary:
            starts += 1
            capitalized += text[:1].isupper()
        for word in text.split():
            core = unicodedata.normalize("NFKC", word.strip(_EDGE))
            if core:
                counts[core.lower()][core] += 1
    forms = {key: max(written.items(), key=lambda item: (item[1], item[0].islower()))[0]
             for key, written in counts.items()}
    return Lexicon(forms=forms, capitalize_first=capitalized > starts / 2)


def load_lexicon(directory: str | Path) -> Lexicon | None:
    path = Path(directory) / FILE_NAME
    if not path.is_file():
        return None  # a model saved before the lexicon: summaries are given as decoded
    data = read_json(path, what="summary lexicon")
    words = data.get("words", [])
    return Lexicon(forms={_key(word): word for word in words}, capitalize_first=bool(data.get("capitalize_first")))


def _source_forms(source: str) -> dict[str, str]:
    """Lower-cased key -> the written form of each source word; a form seen mid-sentence wins over a
    sentence-initial capital."""
    forms: dict[str, tuple[bool, str]] = {}
    sentence_start = True
    for word in source.split():
        core = unicodedata.normalize("NFKC", word.strip(_EDGE))
        if core:
            key = core.lower()
            if key not in forms or (forms[key][0] and not sentence_start):
                forms[key] = (sentence_start, core)
        sentence_start = word.endswith((".", "!", "?"))
    return {key: form for key, (_, form) in forms.items()}


def readable_summary(summary: str, source: str, lexicon: Lexicon, *, restore_case: bool) -> str:
    """`summary` with whole words only and, when `restore_case` (a lower-casing tokenizer), the
    written forms of its words (see the module doc)."""
    source_forms = _source_forms(source)

    def known(key: str) -> bool:
        return key in lexicon.forms or key in source_forms or key.replace(",", "").replace(".", "").isdigit()

    words = []
    for word in summary.split():
        core = word.strip(_EDGE)
        key = _key(word)
        if not key:
            words.append(word)
            continue
        if not known(key):
            completion = next((k for k in source_forms if len(key) >= 2 and k.startswith(key)), None)
            prefix = next((key[:end] for end in range(len(key) - 1, 0, -1) if known(key[:end])), None)
            key = completion or prefix
            if key is None:
                continue  # no word in it: dropped
            start = word.find(core[:1]) if core else 0
            word, core = word[:start] + key + word[start + len(core):], key
        if restore_case:
            form = lexicon.forms.get(key) or source_forms.get(key)
            if form is not None:
                word = word.replace(core, form, 1)
        words.append(word)
    text = " ".join(words)
    if restore_case and lexicon.capitalize_first and text:
        text = text[0].upper() + text[1:]
    return text

"""Summaries a person can read: whole words, and the case of the words they came from.

A summarizer whose tokenizer lower-cases (the default: case-folding halves the pieces a name needs)
generates lower-cased pieces, and a subword model can stop a word half-way ("... film by n ku" for
"by Stanley Kubrick"). ROUGE ignores both; a reader does not. `readable_summary` repairs the text
after decoding, from two sources of truth:

- the words of the training texts and summaries (`Lexicon`, saved with the model as `lexicon.json`),
  each with its most frequent written form ("kubrick" -> "Kubrick", "american" -> "American");
- the source text itself, for words the training data never had (a name copied from the source).

A generated word is whole when either knows it (or it is a number). A word that is not, or a short
rare one that the source does not have but begins a longer source word with (a copy cut short):
1. completes to the source word it begins ("ku" -> "Kubrick"), or else
2. shortens to its longest prefix that is a word (a stray piece glued on: "byn" -> "by"), or else
3. is dropped.
Words then take their written form: the source's where the source has the word mid-sentence (so
"river" stays "river" in "the second-longest river"), else the lexicon's, which counts forms
mid-sentence only and keeps the lower-case form of a word that is lower-cased a third of the time
or more ("River" in names does not make every river a River). The summary takes a first capital
when most training summaries start with one. Only words change: ROUGE, which lower-cases, sees the
same or repaired words.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from nlp_lstm.artifacts import atomic_write_json, read_json
from nlp_lstm.errors import NlpLstmError

FILE_NAME = "lexicon.json"
_EDGE = "\"'()[]{}.,;:!?“”‘’«»…"  # punctuation stripped from a word's ends before it is looked up
_FRAGMENT_LENGTH, _FRAGMENT_COUNT = 3, 20  # a word this short and this rare may be a copy cut short


def _key(word: str) -> str:
    return unicodedata.normalize("NFKC", word.strip(_EDGE)).lower()


@dataclass
class Lexicon:
    """Known words (lower-cased key -> written form, and how often the word occurs) and the training
    summaries' habit of a first capital."""

    forms: dict[str, str]
    counts: dict[str, int]
    capitalize_first: bool

    def save(self, directory: str | Path) -> None:
        words = sorted([self.forms[key], self.counts.get(key, 1)] for key in self.forms)
        atomic_write_json(Path(directory) / FILE_NAME, {"capitalize_first": self.capitalize_first, "words": words})


def build_lexicon(texts: Iterable[str], summaries: Iterable[str]) -> Lexicon:
    """Count every written form of every word of the training `texts` and `summaries`."""
    written: dict[str, Counter[str]] = defaultdict(Counter)  # mid-sentence forms only
    totals: Counter[str] = Counter()
    starts, capitalized = 0, 0
    for text, is_summary in chain(((t, False) for t in texts), ((s, True) for s in summaries)):
        if not text:
            continue
        if is_summary:
            starts += 1
            capitalized += text[:1].isupper()
        for (sentence_start, core) in _words(text):
            totals[core.lower()] += 1
            if not sentence_start:
                written[core.lower()][core] += 1
    forms = {}
    for key in totals:
        seen = written.get(key)
        if not seen:
            forms[key] = key  # only ever sentence-initial: no evidence of a capital
        elif seen[key] * 3 >= sum(seen.values()):
            forms[key] = key
        else:
            forms[key] = max(seen.items(), key=lambda item: (item[1], item[0]))[0]
    return Lexicon(forms=forms, counts=dict(totals), capitalize_first=capitalized > starts / 2)


def _words(text: str) -> Iterator[tuple[bool, str]]:
    """(at a sentence start, word without edge punctuation, NFKC) for each word of `text`."""
    sentence_start = True
    for word in text.split():
        core = unicodedata.normalize("NFKC", word.strip(_EDGE))
        if core:
            yield sentence_start, core
        sentence_start = word.endswith((".", "!", "?"))


def load_lexicon(directory: str | Path) -> Lexicon | None:
    path = Path(directory) / FILE_NAME
    if not path.is_file():
        return None  # a model saved before the lexicon: summaries are given as decoded
    data = read_json(path, what="summary lexicon")
    try:
        words = [(str(form), int(count)) for form, count in data.get("words", [])]
    except (TypeError, ValueError):
        raise NlpLstmError(f"{path} is not a summary lexicon (words must be [form, count] pairs); "
                           "retrain the model or copy its whole directory") from None
    return Lexicon(forms={_key(form): form for form, _ in words}, counts={_key(form): count for form, count in words},
                   capitalize_first=bool(data.get("capitalize_first")))


def _source_forms(source: str) -> tuple[dict[str, None], dict[str, str]]:
    """The source's words (lower-cased keys, in order), and the written form of those seen mid-sentence."""
    keys: dict[str, None] = {}
    forms: dict[str, str] = {}
    for sentence_start, core in _words(source):
        keys[core.lower()] = None
        if not sentence_start:
            forms.setdefault(core.lower(), core)
    return keys, forms


def readable_summary(summary: str, source: str, lexicon: Lexicon, *, restore_case: bool) -> str:
    """`summary` with whole words only and, when `restore_case` (a lower-casing tokenizer), the
    written forms of its words (see the module doc)."""
    source_keys, source_forms = _source_forms(source)

    def known(key: str) -> bool:
        return key in lexicon.forms or key in source_keys or key.replace(",", "").replace(".", "").isdigit()

    def fragment(key: str) -> bool:  # short, rare, not in the source: likely a copy cut short
        return (key not in source_keys and len(key) <= _FRAGMENT_LENGTH
                and lexicon.counts.get(key, 0) < _FRAGMENT_COUNT)

    words = []
    for word in summary.split():
        core = word.strip(_EDGE)
        key = _key(word)
        if not key:
            words.append(word)
            continue
        completion = next((k for k in source_keys if len(key) >= 2 and k.startswith(key) and k != key), None)
        if not known(key) or (fragment(key) and completion):
            prefix = next((key[:end] for end in range(len(key) - 1, 0, -1) if known(key[:end])), None)
            key = completion or prefix
            if key is None:
                continue  # no word in it: dropped
            start = word.find(core[:1]) if core else 0
            word, core = word[:start] + key + word[start + len(core):], key
        if restore_case:
            form = source_forms.get(key) or lexicon.forms.get(key)
            if form is not None:
                word = word.replace(core, form, 1)
        words.append(word)
    text = " ".join(words)
    if restore_case and lexicon.capitalize_first and text:
        text = text[0].upper() + text[1:]
    return text

"""The tokenizers' front door: `fit_tokenizer` (texts -> a spaCy or sentencepiece tokenizer) and
`load_tokenizer` (a saved `tokenizer.json` + `vocab.txt` / `spm.model`, every value checked before it
is trusted: sizes capped, setting types checked, the files' agreement)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from nlp_lstm.artifacts import MAX_JSON_BYTES, read_capped_bytes
from nlp_lstm.data.specials import SPECIALS
from nlp_lstm.data.tokenize import (SPM_FILE, TOKENIZER_FILE, TOKENIZER_KINDS, VOCAB_FILE, Tokenizer, fit_sentencepiece,
                                    fit_spacy, from_files)
from nlp_lstm.errors import NlpLstmError

# The types of the settings `fit_tokenizer` saves in tokenizer.json, checked when it is loaded
# (`"lowercase": "no"` must not read as true). A vocabulary file is a few MB at the largest vocab.
SETTING_TYPES = {"lowercase": bool, "lang": str, "vocab_size": int, "min_freq": int, "model_type": str,
                 "max_sentences": int}
MAX_VOCAB_FILE_BYTES = 256 * 2**20


def fit_tokenizer(
    texts: Iterable[str],
    *,
    kind: str = "spacy",
    vocab_size: int = 20000,
    min_freq: int = 2,
    lowercase: bool = True,
    lang: str = "en",
    model_type: str = "unigram",
    max_sentences: int = 200_000,
) -> Tokenizer:
    """Fit a tokenizer on `texts` (any iterable; consumed once, streamed).

    Args:
        kind: "spacy" (words) or "sentencepiece" (subwords).
        vocab_size: the most ids, the 4 specials included. sentencepiece may give fewer on a small
            corpus (soft limit); spaCy keeps at most `vocab_size - 4` words.
        min_freq: spaCy only: a word needs this many occurrences to enter the vocabulary.
        lowercase: lowercase words (spaCy) / case-fold in the model's normaliser (sentencepiece).
        lang: spaCy only: the language of `spacy.blank(lang)`.
        model_type: sentencepiece only: "unigram" or "bpe".
        max_sentences: sentencepiece only: train on at most the first this many non-empty texts
            (sentencepiece holds its sample in memory). spaCy counts the whole stream.
    """
    if kind not in TOKENIZER_KINDS:
        raise NlpLstmError(f"unknown tokenizer kind {kind!r}; use one of {', '.join(TOKENIZER_KINDS)}")
    if vocab_size <= len(SPECIALS):
        raise NlpLstmError(f"vocab_size must be larger than the {len(SPECIALS)} special tokens, got {vocab_size}")
    if isinstance(texts, str):
        raise TypeError("fit_tokenizer takes an iterable of texts, not one string")
    if kind == "spacy":
        if min_freq < 1:
            raise NlpLstmError(f"min_freq must be at least 1, got {min_freq}")
        return fit_spacy(texts, vocab_size=vocab_size, min_freq=min_freq, lowercase=lowercase, lang=lang)
    return fit_sentencepiece(
        texts, vocab_size=vocab_size, lowercase=lowercase, model_type=model_type, max_sentences=max_sentences
    )


def load_tokenizer(directory) -> Tokenizer:
    """Load a tokenizer saved by `Tokenizer.save`. Raises NlpLstmError naming the bad file."""
    directory = Path(directory)
    config_path = directory / TOKENIZER_FILE
    if not directory.is_dir():
        raise NlpLstmError(f"tokenizer directory {directory} does not exist; fit one with `nlp-lstm vocab` or check the path")
    if not config_path.is_file():
        raise NlpLstmError(f"{config_path} is missing; give a directory made by `nlp-lstm vocab` (or re-create it)")
    try:
        config = json.loads(read_capped_bytes(config_path, limit=MAX_JSON_BYTES, what="tokenizer file"))
        kind, settings = config["kind"], config["settings"]
        if not isinstance(settings, dict):
            raise TypeError("settings is not an object")
        for key, value in settings.items():
            if key in SETTING_TYPES and (type(value) is not SETTING_TYPES[key]):
                raise TypeError(f"settings.{key} must be a {SETTING_TYPES[key].__name__}, got {value!r}")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise NlpLstmError(f"{config_path} is corrupt ({type(error).__name__}: {error}); re-create it with `nlp-lstm vocab`") from None
    if kind not in TOKENIZER_KINDS:
        raise NlpLstmError(f"{config_path} names an unknown tokenizer kind {kind!r}; known kinds: {', '.join(TOKENIZER_KINDS)}")
    file_name = VOCAB_FILE if kind == "spacy" else SPM_FILE
    model_path = directory / file_name
    if not model_path.is_file():
        raise NlpLstmError(f"{model_path} is missing (needed by the {kind} tokenizer in {config_path}); re-create it with `nlp-lstm vocab`")
    content = read_capped_bytes(model_path, limit=MAX_VOCAB_FILE_BYTES, what="tokenizer file")
    if not content:
        raise NlpLstmError(f"{model_path} is empty; re-create it with `nlp-lstm vocab`")
    tokenizer = from_files(kind, settings, {file_name: content}, where=str(directory))
    expected = config.get("vocab_size")
    if expected is not None and expected != tokenizer.vocab_size:
        raise NlpLstmError(
            f"{model_path} holds {tokenizer.vocab_size} tokens but {config_path} says {expected}; "
            "the files do not belong together: re-create them with `nlp-lstm vocab`"
        )
    return tokenizer

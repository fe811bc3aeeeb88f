"""Word and character n-gram TF-IDF features: the input of the classifier's linear part
(`nn/ngram_linear.py`).

A linear model over word unigrams and bigrams with TF-IDF weights is the strong baseline of text
classification (TF-IDF + logistic regression; Wang & Manning 2012). The classifier keeps one beside its
BiLSTM, so this module computes exactly those features, from the raw text the user gave (not from the
BiLSTM's subword pieces: a word bigram such as "not bad" is one feature here), plus character n-grams
within words, which carry morphology and misspellings ("possibl", "sugges" for hedging cues) as
fastText's subwords do.

Two blocks of features. Words: for a text with tokens w_1..w_n (lower-cased, `TOKEN_PATTERN`), every
n-gram of 1..`order` tokens. Characters: every n-gram of `CHAR_MIN`..`char_order` characters of each
whitespace-separated word padded with a space on each side (" word "). Each n-gram in the vocabulary gets

    value(g) = (1 + ln tf(g)) * idf(g),     idf(g) = ln((1 + D) / (1 + df(g))) + 1

(sublinear tf, smoothed idf: D training texts, df(g) of them contain g), and the values of each block
of one text are divided by that block's L2 norm. The same features as scikit-learn's
`TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, order), sublinear_tf=True)` beside
`TfidfVectorizer(analyzer="char_wb", ngram_range=(CHAR_MIN, char_order), sublinear_tf=True)`, stacked:
tests compare them. The vocabulary keeps the n-grams in at least `min_df` training texts, at most
`max_features` of each block (the most frequent).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from nlp_lstm.artifacts import atomic_write_bytes, atomic_write_json, read_capped_bytes, read_json
from nlp_lstm.errors import NlpLstmError

# Words and single punctuation marks: "!" and ":" carry sentiment, and one-letter words ("I", "a")
# tell a statement from a question; scikit-learn's default `\b\w\w+\b` drops both.
TOKEN_PATTERN = r"\w+|[^\w\s]"
CHAR_MIN = 2
CHAR_PREFIX = "#c:"  # marks a character n-gram in the vocabulary (no word n-gram can start so)
FILE_NAME = "word_ngrams.json"  # the settings
VOCABULARY_FILE = "word_ngrams.tsv"  # one line per feature, "idf<TAB>n-gram", in id order
MAX_VOCABULARY_BYTES = 256 * 2**20  # a cap on what loading reads (1M features take about 25 MB)
MAX_FEATURES = 500_000  # bounds the linear part's table whatever the corpus size


class WordNgrams:
    """A fitted n-gram vocabulary with idf weights; `transform` gives sparse TF-IDF rows.

    The vocabulary lists the word n-grams first, then the character n-grams (`CHAR_PREFIX` + gram).
    """

    def __init__(self, vocabulary: Sequence[str], idf: Sequence[float] | np.ndarray, *, order: int, min_df: int,
                 char_order: int = 0) -> None:
        if len(vocabulary) != len(idf):
            raise NlpLstmError(f"word n-gram vocabulary has {len(vocabulary)} entries but {len(idf)} idf values; "
                               f"the {FILE_NAME} file is damaged: retrain the model")
        self.vocabulary = list(vocabulary)
        self.index = {gram: position for position, gram in enumerate(self.vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.order, self.min_df, self.char_order = order, min_df, char_order
        self._pattern = re.compile(TOKEN_PATTERN)

    def __len__(self) -> int:
        return len(self.vocabulary)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(json.dumps([self.order, self.min_df, self.char_order, self.vocabulary]).encode())
        digest.update(self.idf.tobytes())
        return digest.hexdigest()[:16]

    def blocks(self, text: str) -> tuple[list[str], list[str]]:
        """The word n-grams and the (prefixed) character n-grams of `text`, with repeats."""
        text = (text or "").lower()
        words = text_grams(self._pattern.findall(text), self.order)
        return words, [CHAR_PREFIX + gram for gram in char_grams(text, self.char_order)]

    def transform(self, texts: Iterable[str]) -> tuple[list[list[int]], list[list[float]]]:
        """Texts -> per text the feature indices and their TF-IDF values, each block L2-normalised.

        A text with no known n-gram gets empty lists: its linear logits are the bias alone.
        """
        all_ids, all_values = [], []
        for text in texts:
            ids: list[int] = []
            values: list[float] = []
            for block in self.blocks(text):
                counts = Counter(gram for gram in block if gram in self.index)
                block_ids = [self.index[gram] for gram in counts]
                weights = np.array([1.0 + math.log(count) for count in counts.values()], dtype=np.float32)
                weights *= self.idf[block_ids] if block_ids else 0.0
                norm = float(np.sqrt(np.dot(weights, weights)))
                if norm > 0:
                    ids += block_ids
                    values += (weights / norm).tolist()
            all_ids.append(ids)
            all_values.append(values)
        return all_ids, all_values

    def save(self, directory: str | Path) -> None:
        """Settings as JSON; the vocabulary as text (an n-gram holds no tab or newline: its tokens and
        words hold no whitespace), each idf written exactly (the shortest repr of its float32)."""
        directory = Path(directory)
        lines = "".join(f"{float(idf)!r}\t{gram}\n" for idf, gram in zip(self.idf, self.vocabulary))
        atomic_write_bytes(directory / VOCABULARY_FILE, lines.encode("utf-8"))
        atomic_write_json(directory / FILE_NAME, {
            "order": self.order, "char_order": self.char_order, "char_min": CHAR_MIN, "min_df": self.min_df,
            "token_pattern": TOKEN_PATTERN, "char_prefix": CHAR_PREFIX, "features": len(self.vocabulary),
        })


def text_grams(tokens: list[str], order: int) -> list[str]:
    grams = list(tokens)
    for n in range(2, order + 1):
        grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return grams


def char_grams(text: str, order: int) -> list[str]:
    """Character n-grams of `CHAR_MIN`..`order` within each whitespace-separated word, the word padded
    with one space on each side; a word shorter than n gives itself once (scikit-learn's `char_wb`)."""
    grams = []
    if order < CHAR_MIN:
        return grams
    for word in text.split():
        word = f" {word} "
        for n in range(CHAR_MIN, order + 1):
            grams += [word[i : i + n] for i in range(max(1, len(word) - n + 1))]
            if len(word) <= n:
                break
    return grams


def fit_word_ngrams(texts: Iterable[str], *, order: int = 2, char_order: int = 0, min_df: int = 1,
                    max_features: int = MAX_FEATURES) -> WordNgrams:
    """Count document frequencies over the training texts and keep the vocabulary (see the module doc)."""
    if order < 1:
        raise NlpLstmError(f"word n-gram order must be at least 1, got {order}")
    pattern = re.compile(TOKEN_PATTERN)
    frequency: list[Counter[str]] = [Counter(), Counter()]
    documents = 0
    for text in texts:
        documents += 1
        text = (text or "").lower()
        frequency[0].update(set(text_grams(pattern.findall(text), order)))
        frequency[1].update({CHAR_PREFIX + gram for gram in char_grams(text, char_order)})
    vocabulary: list[tuple[str, int]] = []
    for block in frequency:
        kept = [(gram, df) for gram, df in block.items() if df >= min_df]
        if len(kept) > max_features:
            kept = sorted(kept, key=lambda item: (-item[1], item[0]))[:max_features]
        vocabulary += sorted(kept)  # a stable order, whatever the counting order
    if not vocabulary:
        raise NlpLstmError("the training texts have no words for the word n-gram features; check --text-column, "
                           "or turn the linear part off with --word-ngrams 0")
    idf = [math.log((1 + documents) / (1 + df)) + 1.0 for _, df in vocabulary]
    return WordNgrams([gram for gram, _ in vocabulary], idf, order=order, min_df=min_df, char_order=char_order)


def load_word_ngrams(directory: str | Path) -> WordNgrams:
    directory = Path(directory)
    data = read_json(directory / FILE_NAME, what="word n-gram features")
    where = directory / VOCABULARY_FILE
    if not where.is_file():
        raise NlpLstmError(f"{where} is missing; copy the whole model directory, or retrain the model")
    lines = read_capped_bytes(where, limit=MAX_VOCABULARY_BYTES, what="word n-gram vocabulary").decode(
        "utf-8", errors="replace").splitlines()
    try:
        if (data["token_pattern"], data["char_prefix"], data["char_min"]) != (TOKEN_PATTERN, CHAR_PREFIX, CHAR_MIN):
            raise NlpLstmError(f"{directory / FILE_NAME} was written with another tokenization "
                               f"({data['token_pattern']!r}); retrain the model with this version")
        pairs = [line.split("\t", 1) for line in lines]
        if len(pairs) != int(data["features"]) or any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"{len(pairs)} lines for {data['features']} features")
        return WordNgrams([gram for _, gram in pairs], [float(idf) for idf, _ in pairs], order=int(data["order"]),
                          min_df=int(data["min_df"]), char_order=int(data["char_order"]))
    except (KeyError, TypeError, ValueError) as error:
        raise NlpLstmError(f"{where} is not the word n-gram vocabulary of {directory / FILE_NAME} ({error}); "
                           "copy the whole model directory, or retrain the model") from None

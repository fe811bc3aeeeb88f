"""Pretrained word vectors (GloVe, word2vec, fastText) -> a word tokenizer and an embedding table.

Formats, by file name:
    *.txt, *.vec (optionally .gz)  one word and its values per line, separated by spaces; an optional
                                   first line "COUNT DIM" (word2vec / fastText) is skipped
    *.bin                          word2vec binary: "COUNT DIM\\n", then per word its bytes, a space and
                                   DIM little-endian float32 values
    *.npy                          a (COUNT, DIM) matrix, memory-mapped, with its words one per line in
                                   the file beside it named *.vocab.txt (same stem), in the same order
Files are read once as a stream (or memory-mapped), keeping only the rows a model will use: the
training words, plus the first `top` words of the file (vector files list frequent words first), so a
test word never seen in training still has its pretrained vector (Kim 2014 keeps every vector word
for this reason).

The vocabulary is a spaCy word tokenizer's (`SpacyTokenizer`), lower-cased when the vectors are (GloVe
6B is; fastText's are not), so the words looked up are normalised as the vectors' were.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from nlp_lstm.data.specials import PAD_ID, SPECIALS
from nlp_lstm.data.tokenize import SpacyTokenizer
from nlp_lstm.errors import NlpLstmError

SUFFIXES = (".txt", ".vec", ".txt.gz", ".vec.gz", ".bin", ".npy")
TOP_WORDS = 100_000  # vector words kept beyond the training words (their rows are all a model stores)
MAX_TRAINING_WORDS = 200_000  # the most frequent training words kept, with or without a vector
_CASE_PROBE = 10_000  # the vectors are taken as lower-cased when none of their first words has a capital


@dataclass
class Coverage:
    """How many distinct training words have a vector: as written, only lower-cased, or none."""

    found: int
    lowercased: int
    missing: int

    def describe(self) -> str:
        total = max(1, self.found + self.lowercased + self.missing)
        return (f"word vectors cover {self.found + self.lowercased:,} of {total:,} training words "
                f"({100 * (self.found + self.lowercased) / total:.1f}%: {self.found:,} as written, "
                f"{self.lowercased:,} lower-cased, {self.missing:,} missing)")


@dataclass
class PretrainedEmbedding:
    """What a classifier starts from: its tokenizer, the initial embedding table, and the coverage."""

    tokenizer: SpacyTokenizer
    weight: np.ndarray  # (vocab_size, dim) float32; row i is token i's vector
    coverage: Coverage


def check_vectors_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise NlpLstmError(f"word vectors file {path} does not exist; pass a GloVe/word2vec/fastText file "
                           f"({', '.join(SUFFIXES)}): README.md, 'Pretrained word vectors', says how to get one")
    if not path.is_file():
        raise NlpLstmError(f"word vectors {path} is a directory; pass the vectors file itself ({', '.join(SUFFIXES)})")
    if not path.name.endswith(SUFFIXES):
        raise NlpLstmError(f"word vectors file {path} has an unknown format; use one of {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise NlpLstmError(f"word vectors file {path} is empty; download it again")
    return path


def vector_dim(path: str | Path) -> int:
    """The dimension of the vectors in `path`, from its first row (or header) alone."""
    for _, values in _rows(check_vectors_path(path)):
        return len(values)
    raise NlpLstmError(f"word vectors file {path} has no vectors; download it again")


def _rows(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(word, values) per row of the file, in file order, streamed (`.npy`: memory-mapped)."""
    if path.name.endswith(".npy"):
        yield from _npy_rows(path)
    elif path.name.endswith(".bin"):
        yield from _binary_rows(path)
    else:
        yield from _text_rows(path)


def _text_rows(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    dim = None
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                parts = line.rstrip("\n\r").rstrip(" ").split(" ")
                if number == 1 and len(parts) == 2 and all(part.isdigit() for part in parts):
                    continue  # the word2vec / fastText header "COUNT DIM"
                if len(parts) < 2:  # a blank line, or a word without values
                    continue
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim:
                    raise NlpLstmError(f"{path} line {number} has {len(parts) - 1} values where earlier rows have "
                                       f"{dim}; the file is damaged or not a vectors file: download it again")
                try:
                    values = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise NlpLstmError(f"{path} line {number} has a value that is not a number; "
                                       "the file is damaged or not a vectors text file") from None
                yield parts[0], values
    except (OSError, EOFError, UnicodeDecodeError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise NlpLstmError(f"cannot read word vectors {path} ({error}); download it again") from None


def _binary_rows(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with open(path, "rb") as handle:
        stream = io.BufferedReader(handle, buffer_size=1 << 20)
        header = stream.readline().split()
        if len(header) != 2 or not all(part.isdigit() for part in header):
            raise NlpLstmError(f"{path} does not start with the word2vec binary header 'COUNT DIM'; "
                               "is it a text file? name it .txt or .vec")
        count, dim = int(header[0]), int(header[1])
        for row in range(count):
            word = bytearray()
            while (byte := stream.read(1)) != b" ":
                if not byte:
                    raise NlpLstmError(f"{path} ends inside row {row + 1} of {count}; download it again")
                if byte != b"\n" or word:
                    word += byte
            data = stream.read(4 * dim)
            if len(data) < 4 * dim:
                raise NlpLstmError(f"{path} ends inside row {row + 1} of {count}; download it again")
            yield word.decode("utf-8", errors="replace"), np.frombuffer(data, dtype="<f4").astype(np.float32)


def _npy_rows(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    vocabulary = path.with_name(path.name.removesuffix(".npy") + ".vocab.txt")
    if not vocabulary.is_file():
        raise NlpLstmError(f"{path} needs its words in {vocabulary} (one per line, in the matrix's row order)")
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise NlpLstmError(f"cannot read {path} as a .npy matrix ({error})") from None
    if matrix.ndim != 2:
        raise NlpLstmError(f"{path} holds an array of shape {matrix.shape}; word vectors are a (words, dim) matrix")
    with open(vocabulary, encoding="utf-8", errors="replace") as words:
        for row, word in enumerate(words):
            if row >= matrix.shape[0]:
                raise NlpLstmError(f"{vocabulary} lists more words than {path} has rows ({matrix.shape[0]})")
            yield word.rstrip("\n\r"), np.asarray(matrix[row], dtype=np.float32)


def load_pretrained_embedding(path: str | Path, texts: Iterable[str], *, lang: str = "en", top: int = TOP_WORDS,
                              seed: int = 0) -> PretrainedEmbedding:
    """A word tokenizer over the training words and the vectors' first `top` words, and its
    embedding table initialised from the vectors (see the module doc).

    Rows for words without a vector are drawn from a normal distribution with the vectors' own
    standard deviation (so they are neither louder nor quieter than the rest); `<pad>` is zero.

    Raises:
        NlpLstmError: a missing, empty or damaged file, rows of different lengths, or vectors that
            cover none of the training words (almost surely the wrong language or normalisation).
    """
    path = check_vectors_path(path)
    counts: Counter[str] = Counter()  # training words as written (case kept)
    reader = SpacyTokenizer(list(SPECIALS), {"lowercase": False, "lang": lang})
    texts = iter(texts)
    while chunk := list(islice(texts, 1000)):  # streamed: only the counts are held
        for words in reader.tokenize_batch(chunk):
            counts.update(words)
    training = [word for word, _ in counts.most_common(MAX_TRAINING_WORDS) if "\n" not in word and word not in SPECIALS]
    wanted = set(training) | {word.lower() for word in training}
    found: dict[str, np.ndarray] = {}
    top_words: list[str] = []
    probe_has_capitals = False
    for row, (word, values) in enumerate(_rows(path)):
        if row < _CASE_PROBE and word != word.lower():
            probe_has_capitals = True
        if row < top:
            top_words.append(word)
            found[word] = values
        elif word in wanted:
            found[word] = values
    if not found:
        raise NlpLstmError(f"word vectors file {path} has no vectors; download it again")
    lowercase = not probe_has_capitals
    coverage = Coverage(found=sum(word in found for word in training),
                        lowercased=sum(word not in found and word.lower() in found for word in training),
                        missing=sum(word not in found and word.lower() not in found for word in training))
    if coverage.found + coverage.lowercased == 0:
        raise NlpLstmError(f"the word vectors in {path} cover none of the {len(training):,} training words: "
                           "they are almost surely for another language or normalisation; pick vectors for the "
                           "data's language")
    vocabulary: list[str] = []
    seen = set(SPECIALS)
    for word in (*((word.lower() if lowercase else word) for word in training), *top_words):
        if word not in seen and "\n" not in word and word.strip() == word and word:
            seen.add(word)
            vocabulary.append(word)
    tokenizer = SpacyTokenizer([*SPECIALS, *vocabulary], {"kind": "spacy", "vocab_size": len(SPECIALS) + len(vocabulary),
                                                          "min_freq": 1, "lowercase": lowercase, "lang": lang})
    dim = len(next(iter(found.values())))
    known = np.stack(list(found.values()))
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, float(known.std()), size=(tokenizer.vocab_size, dim)).astype(np.float32)
    weight[PAD_ID] = 0.0
    for index, word in enumerate(vocabulary, start=len(SPECIALS)):
        vector = found.get(word)
        if vector is None and not lowercase:
            vector = found.get(word.lower())
        if vector is not None:
            weight[index] = vector
    return PretrainedEmbedding(tokenizer=tokenizer, weight=weight, coverage=coverage)

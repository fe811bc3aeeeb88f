"""Pretrained word vectors (nlp_lstm/data/vectors.py): every file format gives the same vectors, the
vocabulary keeps training words and the file's first words, and bad files are one-line errors."""

import gzip
import struct

import numpy as np
import pytest

from nlp_lstm.data.specials import PAD_ID, SPECIALS
from nlp_lstm.data.vectors import load_pretrained_embedding, vector_dim
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.stages.classification import with_vector_size

WORDS = ["the", "film", "good", "bad", "not", "great", "zebra"]
VECTORS = np.arange(len(WORDS) * 3, dtype=np.float32).reshape(len(WORDS), 3) / 10 - 1.0
TEXTS = ["The film was good", "not a bad film", "Great!"]


def write_text(path, *, header: bool, words=WORDS, vectors=VECTORS):
    lines = [f"{len(words)} {vectors.shape[1]}"] if header else []
    lines += [" ".join([word, *(repr(float(v)) for v in row)]) for word, row in zip(words, vectors)]
    content = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_binary(path):
    with open(path, "wb") as handle:
        handle.write(f"{len(WORDS)} {VECTORS.shape[1]}\n".encode())
        for word, row in zip(WORDS, VECTORS):
            handle.write(word.encode() + b" " + struct.pack("<3f", *row) + b"\n")
    return path


def write_npy(path):
    np.save(path, VECTORS)
    path.with_name(path.name.removesuffix(".npy") + ".vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("make", [
    lambda d: write_text(d / "v.txt", header=False), lambda d: write_text(d / "v.vec", header=True),
    lambda d: write_text(d / "v.txt.gz", header=False), lambda d: write_binary(d / "v.bin"),
    lambda d: write_npy(d / "v.npy")], ids=["txt", "vec-header", "txt.gz", "bin", "npy"])
def test_every_format_gives_the_same_rows(tmp_path, make):
    path = make(tmp_path)
    assert vector_dim(path) == 3
    embedding = load_pretrained_embedding(path, TEXTS, top=2)
    tokenizer, weight = embedding.tokenizer, embedding.weight
    assert weight.shape == (tokenizer.vocab_size, 3)
    assert not weight[PAD_ID].any()
    for word in ("the", "film", "good", "bad", "not", "great"):  # training words (lower-cased vectors)
        np.testing.assert_array_equal(weight[tokenizer.token_to_id(word)], VECTORS[WORDS.index(word)])
    # Among the file's first 2 words ("the", "film"): nothing new. "zebra" is neither trained nor top: no row.
    assert tokenizer.token_to_id("zebra") == tokenizer.unk_id
    # Coverage of the training words as written: The, film, was, good, not, a, bad, Great, !
    coverage = embedding.coverage
    assert (coverage.found, coverage.lowercased, coverage.missing) == (4, 2, 3)


def test_a_word_only_the_vectors_know_gets_its_vector_and_words_without_one_get_the_vectors_scale(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False)
    embedding = load_pretrained_embedding(path, TEXTS, top=len(WORDS))
    tokenizer, weight = embedding.tokenizer, embedding.weight
    zebra = tokenizer.token_to_id("zebra")  # never in training: kept because it is among the top words
    np.testing.assert_array_equal(weight[zebra], VECTORS[WORDS.index("zebra")])
    assert tokenizer.settings["lowercase"] is True  # no capital in the vectors: they are lower-cased
    assert tokenizer.encode("The ZEBRA") == [tokenizer.token_to_id("the"), zebra]
    missing = [tokenizer.token_to_id(w) for w in ("was", "a", "!")]
    assert all(i >= len(SPECIALS) for i in missing)
    assert 0.1 < float(np.std(weight[missing])) < 3 * float(VECTORS.std())  # random, on the vectors' scale


def test_cased_vectors_keep_case_and_fall_back_to_the_lower_cased_vector(tmp_path):
    words = ["The", "film", "good"]
    path = write_text(tmp_path / "v.txt", header=False, words=words, vectors=VECTORS[:3])
    embedding = load_pretrained_embedding(path, ["The film was Good"], top=3)
    tokenizer = embedding.tokenizer
    assert tokenizer.settings["lowercase"] is False
    np.testing.assert_array_equal(embedding.weight[tokenizer.token_to_id("Good")], VECTORS[2])  # via "good"


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), ("", "is empty"), ("the 1 2 3\nfilm 1 2\n", "line 2 has 2 values"),
    ("the 1 x 3\n", "not a number"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "v.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(NlpLstmError, match=message):
        load_pretrained_embedding(path, TEXTS)


def test_vectors_of_another_language_are_refused(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False, words=["der", "die", "das"], vectors=VECTORS[:3])
    with pytest.raises(NlpLstmError, match="cover none of the 9 training words.*another language"):
        load_pretrained_embedding(path, TEXTS)


def test_the_embedding_size_follows_the_vectors_and_a_different_one_is_refused(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False)
    assert with_vector_size(path, {"hidden_size": 8})["embedding_dim"] == 3
    with pytest.raises(NlpLstmError, match="--embedding-dim 50 does not match the 3-dimensional vectors"):
        with_vector_size(path, {"embedding_dim": 50})
    with pytest.raises(NlpLstmError, match="unknown format"):
        vector_dim(tmp_path / "v.csv") if (tmp_path / "v.csv").write_text("x") else None

"""Tagger vocabularies with pretrained vectors, and length batches."""

import torch

from nlp_lstm.data.specials import PAD_ID
from nlp_lstm.data.tagging import fit_with_vectors, length_batches


def test_vectors_give_rows_to_training_words_and_to_unseen_vector_words(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the 1 0 0\nparis 0 1 0\nberlin 0 0 1\n", encoding="utf-8")
    sentences = [(["Paris", "is", "the", "capital"], ["B-LOC", "O", "O", "O"])] * 2
    vocab, weight, coverage = fit_with_vectors(sentences, path, min_count=2)
    assert vocab.lowercase  # the vectors are lower-cased
    assert {"paris", "the", "is", "capital", "berlin"} <= set(vocab.words)
    assert weight.shape == (len(vocab.words), 3)
    assert weight[vocab.word_id("Paris")].tolist() == [0.0, 1.0, 0.0]
    assert weight[vocab.word_id("BERLIN")].tolist() == [0.0, 0.0, 1.0]  # never seen in training
    assert weight[PAD_ID].abs().sum() == 0
    assert coverage.found + coverage.lowercased == 2  # Paris (lower-cased) and the


def test_length_batches_cover_every_row_once_with_similar_lengths():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8]
    batches = length_batches(lengths, 3)
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    assert [[lengths[i] for i in batch] for batch in batches] == [[1, 2, 3], [3, 5, 7], [8, 9]]
    shuffled = length_batches(lengths, 3, generator=torch.Generator().manual_seed(1))
    assert sorted(i for batch in shuffled for i in batch) == list(range(8))
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 4 for b in shuffled)

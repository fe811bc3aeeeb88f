"""The n-gram bag beside the BiLSTM (nlp_lstm/nn/ngrams.py), against features and sums worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.nn.ngrams import NgramBag, ngram_indices

V, BUCKETS = 10, 100


def bigram(a: int, b: int) -> int:
    """The bigram's index as the module docstring states it, in Python integers."""
    return V + (a * 1_000_003 + b * 19_260_817) % BUCKETS


def test_features_are_the_unigrams_and_the_bigrams_of_real_neighbours():
    ids = torch.tensor([[5, 7, 9, 0], [3, 0, 0, 0]])
    pad_mask = torch.tensor([[False, False, False, True], [False, True, True, True]])
    indices, mask = ngram_indices(ids, pad_mask, vocab_size=V, buckets=BUCKETS)
    assert indices.shape == mask.shape == (2, 7)
    real = [[int(i) for i, m in zip(row, keep) if m] for row, keep in zip(indices, mask)]
    assert real == [[5, 7, 9, bigram(5, 7), bigram(7, 9)], [3]]
    assert all(V <= index < V + BUCKETS for index in real[0][3:])


def test_logits_are_ten_times_the_sum_of_the_feature_weights_over_the_root_of_their_count():
    bag = NgramBag(V, BUCKETS, 2).eval()
    with torch.no_grad():
        bag.table.weight.copy_(torch.arange((V + BUCKETS) * 2, dtype=torch.float32).view(-1, 2) / 10)
    ids, pad_mask = torch.tensor([[5, 7, 9]]), torch.zeros(1, 3, dtype=torch.bool)
    features = [5, 7, 9, bigram(5, 7), bigram(7, 9)]
    expected = [10 * sum((2 * f + k) / 10 for f in features) / math.sqrt(5) for k in (0, 1)]  # SCALE = 10
    torch.testing.assert_close(bag(ids, pad_mask), torch.tensor([expected]))


def test_padding_never_changes_the_bag_and_the_bag_starts_at_zero():
    bag = NgramBag(V, BUCKETS, 3)
    assert torch.count_nonzero(bag.table.weight) == 0  # the classifier starts as its LSTM alone
    bag.eval()
    torch.nn.init.normal_(bag.table.weight)
    tight = bag(torch.tensor([[4, 2, 8]]), torch.zeros(1, 3, dtype=torch.bool))
    padded = bag(torch.tensor([[4, 2, 8, 0, 0]]), torch.tensor([[False, False, False, True, True]]))
    torch.testing.assert_close(padded, tight, rtol=0, atol=0)


def test_dropout_drops_features_in_training_only():
    torch.manual_seed(0)
    bag = NgramBag(V, BUCKETS, 1, dropout=0.5, scale=1.0)
    torch.nn.init.normal_(bag.table.weight)
    ids, pad_mask = torch.randint(1, V, (64, 12)), torch.zeros(64, 12, dtype=torch.bool)
    bag.eval()
    full = bag(ids, pad_mask)
    torch.testing.assert_close(bag(ids, pad_mask), full)
    bag.train()
    dropped = bag(ids, pad_mask)
    assert (dropped - full).abs().max() > 0.1
    # Kept features are scaled by 1 / (1 - p): the same logits on average (64 rows of 23 features).
    assert abs(dropped.mean() - full.mean()) < 0.3 * full.abs().mean() + 0.1


def test_the_bag_learns_word_order_that_unigrams_cannot_tell():
    # "a b" is positive, "b a" negative: the same unigrams, different bigrams.
    torch.manual_seed(0)
    bag = NgramBag(V, BUCKETS, 1)
    ids = torch.tensor([[2, 3], [3, 2]] * 8)
    labels = torch.tensor([1.0, 0.0] * 8)
    pad_mask = torch.zeros_like(ids, dtype=torch.bool)
    optimizer = torch.optim.Adam(bag.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(bag(ids, pad_mask).squeeze(-1), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert (bag(ids, pad_mask).squeeze(-1) > 0).float().tolist() == labels.tolist()


def test_classifier_logits_are_the_lstm_head_plus_the_bag():
    torch.manual_seed(1)
    small = {"vocab_size": V, "num_labels": 3, "embedding_dim": 8, "hidden_size": 8, "dropout": 0.0}
    with_bag = TextClassifier(ClassifierConfig(ngram_buckets=BUCKETS, **small)).eval()
    without = TextClassifier(ClassifierConfig(ngram_buckets=0, **small)).eval()
    without.load_state_dict({k: v for k, v in with_bag.state_dict().items() if not k.startswith("ngrams.")})
    ids = torch.tensor([[5, 7, 9], [4, 0, 0]])
    lengths, pad_mask = torch.tensor([3, 1]), ids == 0
    torch.testing.assert_close(with_bag(ids, lengths, pad_mask), without(ids, lengths, pad_mask))  # bag at zero
    with torch.no_grad():
        torch.nn.init.normal_(with_bag.ngrams.table.weight)
    expected = without(ids, lengths, pad_mask) + with_bag.ngrams(ids, pad_mask)
    torch.testing.assert_close(with_bag(ids, lengths, pad_mask), expected)


def test_bad_bucket_counts_are_refused_and_feature_sequences_have_no_bag():
    with pytest.raises(NlpLstmError, match="ngram_buckets must be >= 0"):
        ClassifierConfig(ngram_buckets=-1)
    config = ClassifierConfig(input_size=3, num_labels=2, hidden_size=4)
    assert config.ngram_buckets == 0
    assert TextClassifier(config).ngrams is None
    assert TextClassifier(ClassifierConfig(vocab_size=V, embedding_dim=4, hidden_size=4)).ngrams is not None


def test_each_part_learns_from_its_own_loss():
    # One loss on the summed logits would hand the LSTM the bag's residual; with the parts' losses
    # summed, the LSTM and head get exactly the gradient they would get without the bag.
    torch.manual_seed(2)
    small = {"vocab_size": V, "num_labels": 3, "embedding_dim": 8, "hidden_size": 8, "dropout": 0.0}
    with_bag = TextClassifier(ClassifierConfig(ngram_buckets=BUCKETS, **small))
    without = TextClassifier(ClassifierConfig(ngram_buckets=0, **small))
    without.load_state_dict({k: v for k, v in with_bag.state_dict().items() if not k.startswith("ngrams.")})
    torch.nn.init.normal_(with_bag.ngrams.table.weight)
    ids, labels = torch.tensor([[5, 7, 9], [4, 2, 0]]), torch.tensor([2, 0])
    lengths, pad_mask = torch.tensor([3, 2]), ids == 0
    lstm, bag = with_bag(ids, lengths, pad_mask, parts=True)
    loss = with_bag.training_loss((lstm, bag), labels)
    by_hand = torch.nn.functional.cross_entropy(lstm, labels) + torch.nn.functional.cross_entropy(bag, labels)
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    without.loss(without(ids, lengths, pad_mask), labels).backward()
    for (name, got), (_, expected) in zip(
        ((n, p) for n, p in with_bag.named_parameters() if not n.startswith("ngrams.")), without.named_parameters()
    ):
        torch.testing.assert_close(got.grad, expected.grad, msg=name)
    assert with_bag.ngrams.table.weight.grad.abs().sum() > 0

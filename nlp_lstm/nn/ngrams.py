"""A bag of hashed token n-grams scored by one linear layer, beside the BiLSTM (the "wide" path).

A linear model over unigrams and bigrams is the strong baseline on topic-like tasks (TF-IDF + logistic
regression; fastText, Joulin et al. 2017), where a few words decide the label. `NgramBag` is that model
inside the classifier (Cheng et al. 2016, "Wide & Deep"): its logits are added to the LSTM head's,
each part trains on its own loss (`TextClassifier.training_loss`), and the bag's weight against the
LSTM is fitted on validation after training (`stages/classification.py::calibrate`). Features of a
sequence of ids x_1..x_n (padding excluded):

    unigram x_t           -> index x_t                                       (0 <= index < V)
    bigram (x_t, x_t+1)   -> index V + (x_t * P1 + x_t+1 * P2) mod buckets    (hashed, fastText's trick)

logits = SCALE * sum over features of W[index] / sqrt(number of features): an L2-normalised bag when
each feature occurs once, as TF-IDF normalises. In training, each feature is dropped with probability
`dropout` (kept ones scaled by 1/(1 - dropout)), which slows its memorising the training set. W
starts at zero: the model starts as the LSTM alone.
"""

from __future__ import annotations

import torch
from torch import nn

# The bag's logits are multiplied by SCALE: under Adam that makes the bag learn SCALE times faster than
# the network around it, as a linear model over sparse features needs (alone on the Wikipedia topics,
# 8 epochs at lr 3e-3: validation macro-F1 0.706 at scale 1, 0.750 at 10, 0.744 at 30).
SCALE = 10.0
# Two odd constants for the bigram hash; products stay far below 2**63 for any vocabulary.
P1, P2 = 1_000_003, 19_260_817


def ngram_indices(ids: torch.Tensor, pad_mask: torch.Tensor, *, vocab_size: int, buckets: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, T)` ids -> `(B, 2T - 1)` feature indices and a `(B, 2T - 1)` mask, True at real features.

    The first T columns are the unigrams, the next T - 1 the bigrams of neighbouring real tokens.
    """
    keep = ~pad_mask
    bigrams = vocab_size + (ids[:, :-1] * P1 + ids[:, 1:] * P2) % buckets  # (B, T - 1)
    indices = torch.cat([ids, bigrams], dim=1)
    mask = torch.cat([keep, keep[:, :-1] & keep[:, 1:]], dim=1)
    return indices.masked_fill(~mask, 0), mask


class NgramBag(nn.Module):
    def __init__(self, vocab_size: int, buckets: int, out_features: int, *, dropout: float = 0.0,
                 scale: float = SCALE) -> None:
        super().__init__()
        self.vocab_size, self.buckets, self.dropout, self.scale = vocab_size, buckets, dropout, scale
        self.table = nn.Embedding(vocab_size + buckets, out_features)
        nn.init.zeros_(self.table.weight)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """ids `(B, T)`, pad_mask `(B, T)` True at padding -> logits `(B, out_features)`."""
        indices, mask = ngram_indices(ids, pad_mask, vocab_size=self.vocab_size, buckets=self.buckets)
        weights = mask.to(self.table.weight.dtype)  # (B, F)
        count = weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        if self.training and self.dropout > 0:
            weights = nn.functional.dropout(weights, self.dropout)
        scores = (self.table(indices) * weights.unsqueeze(-1)).sum(dim=1)  # (B, out)
        return scores * (self.scale / count.sqrt())

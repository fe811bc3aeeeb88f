"""The classifier's linear part: word n-gram TF-IDF features scored by one linear layer ("wide" beside
the BiLSTM's "deep", Cheng et al. 2016).

Its weights are not trained with the network: `training/linear_fit.py` fits them as a logistic
regression (a convex problem, solved to convergence, its L2 strength chosen on validation) after the
BiLSTM is trained, and `stages/classification.py::calibrate` stacks the two parts' logits on the
validation split. Until then the table and bias are zero, so training sees the BiLSTM alone.
"""

from __future__ import annotations

import torch
from torch import nn


class NgramLinear(nn.Module):
    def __init__(self, num_features: int, out_features: int) -> None:
        super().__init__()
        # Buffers, not parameters: no optimizer, unfreezing schedule or DDP gradient ever touches them.
        self.register_buffer("table", torch.zeros(num_features, out_features))  # (F, out)
        self.register_buffer("bias", torch.zeros(out_features))  # (out,)

    def forward(self, ngram_ids: torch.Tensor, ngram_weights: torch.Tensor) -> torch.Tensor:
        """ngram_ids `(B, K)` long feature indices, ngram_weights `(B, K)` their TF-IDF values (0 at
        padding) -> logits `(B, out)`: sum over k of weight_k * table[id_k], plus the bias."""
        rows = self.table[ngram_ids]  # (B, K, out)
        return (rows * ngram_weights.unsqueeze(-1)).sum(dim=1) + self.bias

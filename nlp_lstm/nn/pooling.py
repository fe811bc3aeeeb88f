"""Pooling: encoder outputs (B, T, F) + pad_mask -> one vector per sequence (B, F), or (B, 3F) for concat.

Every pooling ignores padded positions exactly, so padding never changes a prediction.
"""

from __future__ import annotations

import torch
from torch import nn


class MaxPooling(nn.Module):
    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        return outputs.masked_fill(pad_mask.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, F)


class MeanPooling(nn.Module):
    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        keep = (~pad_mask).unsqueeze(-1).to(outputs.dtype)  # (B, T, 1)
        return (outputs * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class LastPooling(nn.Module):
    """The final states: forward direction at each sequence's last token, backward at its first."""

    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        return final_hidden


class AttentionPooling(nn.Module):
    """A learned query scores every position (Yang et al. 2016, "Hierarchical Attention Networks", sec. 2.2)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.project = nn.Linear(features, features)
        self.query = nn.Linear(features, 1, bias=False)

    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        scores = self.query(torch.tanh(self.project(outputs))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(pad_mask, float("-inf")).softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)  # (B, F)


class ConcatPooling(nn.Module):
    """[final states; max; mean] side by side (ULMFiT's concat pooling, Howard & Ruder 2018 sec. 3.3)."""

    width = 3  # output features per encoder feature

    def __init__(self) -> None:
        super().__init__()
        self.parts = (LastPooling(), MaxPooling(), MeanPooling())

    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(outputs, pad_mask, final_hidden) for part in self.parts], dim=-1)  # (B, 3F)


POOLING = {"max": MaxPooling, "mean": MeanPooling, "last": LastPooling, "attention": AttentionPooling,
           "concat": ConcatPooling}


def build_pooling(name: str, features: int) -> nn.Module:
    return AttentionPooling(features) if name == "attention" else POOLING[name]()


def pooled_size(pooling: nn.Module, features: int) -> int:
    """Features per sequence that `pooling` returns for encoder outputs of `features` features."""
    return getattr(pooling, "width", 1) * features

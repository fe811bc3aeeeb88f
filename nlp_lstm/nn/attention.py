"""Masked attention over encoder outputs, with an optional coverage input.

Two scores, picked by name through `ATTENTION`:
- "additive" (Bahdanau et al. 2015, eq. 6; with coverage as in See et al. 2017, eq. 11):
  e_i = v^T tanh(W_h h_i + W_s s_t + w_c c_i + b)
- "general" (Luong et al. 2015, sec. 3.1): e_i = s_t^T W_a h_i, plus w_c * c_i when coverage is on
  (a learned scalar; Luong has no coverage term, so we add See's idea in its simplest form).

Keys (the W_h h_i or W_a h_i part) do not depend on the decoder step, so they are projected once per
source with `project_keys` and passed to every step. Positions where `pad_mask` is True get exactly
zero weight (their score is -inf before the softmax).
"""

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis that gives padding exactly zero weight.

    Args:
        scores: `(batch, src_len)`.
        pad_mask: `(batch, src_len)` bool, True at padding. Each row needs one real position.
    Returns:
        `(batch, src_len)` weights summing to 1 over real positions.
    """
    return torch.softmax(scores.masked_fill(pad_mask, float("-inf")), dim=-1)


class Attention(nn.Module):
    """Shared shape of both scores: project keys once, then score, mask, normalise, and read.

    Args:
        query_size: decoder state size (s_t).
        value_size: encoder output size (h_i), `2*hidden` for a BiLSTM encoder.
        coverage: whether `forward` takes a coverage vector into the score.
    """

    def __init__(self, query_size: int, value_size: int, *, coverage: bool = False):
        super().__init__()
        self.query_size = query_size
        self.value_size = value_size
        self.coverage = coverage

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """`(batch, src_len, value_size)` -> `(batch, src_len, key_size)`, once per source."""
        raise NotImplementedError

    def score(
        self, query: torch.Tensor, keys: torch.Tensor, coverage: torch.Tensor | None
    ) -> torch.Tensor:
        """`(batch, query_size)`, `(batch, src_len, key_size)`, `(batch, src_len)` -> `(batch, src_len)`."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        pad_mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from one decoder state to the source.

        Args:
            query: `(batch, query_size)` decoder state s_t.
            keys: `(batch, src_len, key_size)` from `project_keys(values)`.
            values: `(batch, src_len, value_size)` encoder outputs h_i.
            pad_mask: `(batch, src_len)` bool, True at padding.
            coverage: `(batch, src_len)` sum of earlier attention (See et al. eq. 10); used only when
                the module was built with `coverage=True`.
        Returns:
            context `(batch, value_size)` and weights `(batch, src_len)`.
        """
        if not self.coverage:
            coverage = None
        elif coverage is None:
            coverage = keys.new_zeros(keys.shape[:2])
        weights = masked_softmax(self.score(query, keys, coverage), pad_mask)  # (B, S)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (B, value_size)
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau attention: `v^T tanh(W_h h_i + W_s s_t + w_c c_i + b)`; keys are `W_h h_i`."""

    def __init__(
        self,
        query_size: int,
        value_size: int,
        *,
        coverage: bool = False,
        attention_size: int | None = None,
    ):
        super().__init__(query_size, value_size, coverage=coverage)
        attention_size = attention_size or query_size
        self.key_proj = nn.Linear(value_size, attention_size, bias=False)  # W_h
        self.query_proj = nn.Linear(query_size, attention_size)  # W_s, b
        self.coverage_proj = nn.Linear(1, attention_size, bias=False) if coverage else None  # w_c
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_proj(values)  # (B, S, A)

    def score(self, query, keys, coverage):
        features = keys + self.query_proj(query).unsqueeze(1)  # (B, S, A)
        if coverage is not None:
            features = features + self.coverage_proj(coverage.unsqueeze(-1))  # See eq. 11
        return self.v(torch.tanh(features)).squeeze(-1)  # (B, S)


class GeneralAttention(Attention):
    """Luong "general" attention: `s_t^T W_a h_i (+ w_c c_i)`; keys are `W_a h_i`."""

    def __init__(self, query_size: int, value_size: int, *, coverage: bool = False):
        super().__init__(query_size, value_size, coverage=coverage)
        self.key_proj = nn.Linear(value_size, query_size, bias=False)  # W_a
        # Zero start: coverage begins with no say and the model learns how much to avoid repeats.
        self.coverage_weight = nn.Parameter(torch.zeros(1)) if coverage else None

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_proj(values)  # (B, S, query_size)

    def score(self, query, keys, coverage):
        scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # (B, S)
        if coverage is not None:
            scores = scores + self.coverage_weight * coverage
        return scores


# Both take `(query_size, value_size, *, coverage=...)`.
ATTENTION = {"additive": AdditiveAttention, "general": GeneralAttention}

"""Masked attention over encoder outputs, with an optional coverage input.

Two scores, picked by name through `ATTENTION`:
- "additive" (Bahdanau et al. 2015, eq. 6; with coverage as in See et al. 2017, eq. 11):
  e_i = v^T tanh(W_h h_i + W_s s_t + w_c c_i + b)
- "general" (Luong et al. 2015, sec. 3.1): e_i = s_t^T W_a h_i, plus w_c * c_i when coverage is on
  (a learned scalar; Luong has no coverage term, so we add See's idea in its simplest form).

Keys (the W_h h_i or W_a h_i part) do not depend on the decoder step, so they are projected once per
source with `project_keys` and passed to every step. Positions where `pad_mask` is True get exactly
zero weight (their score is -inf before the softmax).

Beams share their example's source: with `beam_size=K`, queries (and coverage) have one row per
hypothesis, example-major (row `e * K + k` is beam k of example e), while keys, values and `pad_mask`
keep one row per example. Scores, weights and contexts read the shared keys and values by
broadcasting, so no per-beam copy of the source is made. Each row still goes through the same float
operations as with a copy per beam (one `(1 x S) @ (S x ...)` product per beam where a product is
involved), so the results match that layout bit for bit, and so do the decoders' outputs.
"""

import torch
from torch import nn

# Additive attention without autograd builds its (rows, S, A) features this many (row x source
# position) pairs at a time, in place in one reused buffer (32 rows x 100 positions x 192 floats is
# 2.4 MB): about 10% faster end to end on beam search (batch 32, beam 4) than allocating a fresh
# full-size tensor for each of the add, coverage, tanh passes, which mostly measures page faults.
SCORE_CHUNK_POSITIONS = 3200


def masked_softmax(scores: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis that gives padding exactly zero weight.

    Args:
        scores: `(batch, src_len)`, or `(batch, beams, src_len)`.
        pad_mask: `(batch, src_len)` bool, True at padding (broadcast over beams). Each row needs one
            real position.
    Returns:
        weights shaped like `scores`, summing to 1 over real positions.
    """
    if scores.dim() == 3:
        pad_mask = pad_mask.unsqueeze(1)  # (B, 1, S)
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
        """Unnormalised scores.

        Args:
            query: `(batch, beams, query_size)`.
            keys: `(batch, src_len, key_size)`, shared by the beams.
            coverage: `(batch, beams, src_len)` or None.
        Returns:
            `(batch, beams, src_len)`.
        """
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        pad_mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        beam_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from one decoder state per row to its example's source.

        Args:
            query: `(rows, query_size)` decoder states s_t, rows = `batch * beam_size`.
            keys: `(batch, src_len, key_size)` from `project_keys(values)`.
            values: `(batch, src_len, value_size)` encoder outputs h_i.
            pad_mask: `(batch, src_len)` bool, True at padding.
            coverage: `(rows, src_len)` sum of earlier attention (See et al. eq. 10); used only when
                the module was built with `coverage=True`.
            beam_size: hypotheses per example (module docstring); 1 when rows are examples.
        Returns:
            context `(rows, value_size)` and weights `(rows, src_len)`.
        """
        batch_size, src_len = pad_mask.shape
        if not self.coverage:
            coverage = None
        elif coverage is None:
            coverage = keys.new_zeros(batch_size, beam_size, src_len)
        else:
            coverage = coverage.reshape(batch_size, beam_size, src_len)
        query = query.reshape(batch_size, beam_size, -1)  # (B, K, Q)
        weights = masked_softmax(self.score(query, keys, coverage), pad_mask)  # (B, K, S)
        # One (1 x S) @ (S x value_size) product per beam: one (K x S) product reads the values once
        # instead of K times but rounds differently (another BLAS kernel), and measured no faster.
        context = torch.cat(
            [torch.bmm(weights[:, k : k + 1], values) for k in range(beam_size)], dim=1
        )  # (B, K, value_size)
        rows = batch_size * beam_size
        return context.view(rows, -1), weights.view(rows, src_len)


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
        queries = self.query_proj(query).unsqueeze(2)  # (B, K, 1, A)
        if torch.is_grad_enabled():
            features = keys.unsqueeze(1) + queries  # (B, K, S, A)
            if coverage is not None:
                features = features + self.coverage_proj(coverage.unsqueeze(-1))  # See eq. 11
            return self.v(torch.tanh(features)).squeeze(-1)  # (B, K, S)
        return self._score_in_chunks(queries, keys, coverage)

    def _score_in_chunks(self, queries, keys, coverage):
        """`score` without autograd: the same roundings in the same order (so the same bits), a few
        examples at a time in one reused buffer, in place (see SCORE_CHUNK_POSITIONS)."""
        batch_size, beams, _, size = queries.shape
        src_len = keys.shape[1]
        chunk = max(1, SCORE_CHUNK_POSITIONS // (beams * src_len))  # examples per chunk
        buffer = keys.new_empty(min(chunk, batch_size), beams, src_len, size)
        scores = keys.new_empty(batch_size, beams, src_len)
        if coverage is not None:
            # w_c c_i as a product, not `coverage_proj`: Linear(1, A) is exactly one multiply per
            # output. Added in place by a batched (S x 1) @ (1 x A) product: with one term per
            # output that is the rounded product added to the features, the same two roundings as
            # a multiply and an add, in one pass instead of three (`test_beam_speed_parity.py`).
            coverage_weight = self.coverage_proj.weight.view(1, 1, size)
        v = self.v.weight.view(size)
        for start in range(0, batch_size, chunk):
            stop = min(start + chunk, batch_size)
            features = buffer[: stop - start]  # (b, K, S, A)
            torch.add(keys[start:stop].unsqueeze(1), queries[start:stop], out=features)
            if coverage is not None:  # See eq. 11
                rows = (stop - start) * beams
                features.view(rows, src_len, size).baddbmm_(
                    coverage[start:stop].reshape(rows, src_len, 1), coverage_weight.expand(rows, 1, size)
                )
            features.tanh_()
            torch.matmul(features, v, out=scores[start:stop])  # (b, K, S)
        return scores


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
        # (S x Q) @ (Q x 1) per beam: the product each row had with its own copy of the keys.
        scores = torch.cat(
            [torch.bmm(keys, query[:, k].unsqueeze(-1)) for k in range(query.shape[1])], dim=-1
        ).transpose(1, 2)  # (B, K, S)
        if coverage is not None:
            scores = scores + self.coverage_weight * coverage
        return scores


# Both take `(query_size, value_size, *, coverage=...)`.
ATTENTION = {"additive": AdditiveAttention, "general": GeneralAttention}

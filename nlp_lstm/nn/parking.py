"""Ragged batches through few fused-kernel calls, exactly: rows are parked past their own ends.

The fused LSTM kernel (`torch._VF.lstm`, oneDNN on CPU) runs every row of its input for the same
number of steps and returns only the state after the last one. `nlp_lstm.nn.lstm` therefore splits
time at every distinct length (one call per segment and direction), which computes only real steps
but pays each call's fixed cost: about 1 ms for forward + backward at hidden 128, as much as 4 time
steps of a 32-row batch. A uniformly ragged batch of 32 rows has about 30 distinct lengths.

Parking makes a row's padding steps leave its state exactly as it was, so rows of different lengths
can share a call. The input gets one more feature, 1 at padding and 0 at real steps, whose weight is
-PARK on the input gate, +PARK on the forget gate and 0 on the others. At padding the gates saturate
in float32: i = sigmoid(-PARK + ...) = 0 and f = sigmoid(+PARK + ...) = 1, exactly, so
    c_t = 1 * c_{t-1} + 0 * g_t = c_{t-1}   (bit for bit),
and a row whose state is zero stays zero: h_t = o_t * tanh(0) = 0. At real steps the feature adds
PARK * 0 = 0. Gradients through a parked step are exactly those of no step: d c_{t-1} = d c_t, and
the gates' derivatives (i (1 - i), f (1 - f), and i in d g) are 0.

- Forward direction: right padding. A row that ends inside a call is parked to the call's end: its
  c there is its c at its last real token; its h is read from the outputs at that token.
- Backward direction: the time-reversed batch, padding first. A row waits parked at a zero state
  until its last real token, so the direction starts there from zero, as it must (DESIGN.md sec. 2);
  no per-row reversal (gather) of inputs or outputs is needed, and its final state is every row's
  state after the whole call.
Calls start where rows end (forward) or start (backward); `parking_plan` picks which of the
distinct lengths to cut at, trading a call's fixed cost against the parked steps it computes.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

import torch
import torch.nn.functional as F

from nlp_lstm.nn.fused import fused_lstm

# |pre-activation| at parked steps; learned pre-activations are many orders of magnitude smaller,
# and PARK * 0 = 0 at real steps.
PARK = 1e6
# A kernel call's fixed cost, in time steps of the whole batch (forward + backward, measured at
# hidden 128, batch 32: ~1 ms per call against ~0.23 ms per step; `benchmarks/bench_lstm.py`).
CALL_COST_STEPS = 4.0


@lru_cache(maxsize=256)
def parking_plan(lengths: tuple[int, ...]) -> tuple[int, ...]:
    """Where calls end: a subset of the distinct lengths (always the longest), by dynamic
    programming over the cost `CALL_COST_STEPS * batch + steps * rows still running` per call.

    Args:
        lengths: real lengths of the batch's rows, any order.
    Returns:
        increasing cut points; call j covers steps `[cuts[j-1], cuts[j])` (cuts[-1] is 0).
    """
    ascending = sorted(lengths)
    distinct = sorted(set(ascending))
    batch = len(ascending)
    starts = [0, *distinct]
    best = [0.0] + [float("inf")] * len(distinct)  # best[j]: cheapest cover of steps [0, distinct[j-1])
    previous = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        for i in range(j):
            running = batch - bisect.bisect_right(ascending, starts[i])  # rows longer than the start
            cost = best[i] + CALL_COST_STEPS * batch + (distinct[j - 1] - starts[i]) * running
            if cost < best[j]:
                best[j], previous[j] = cost, i
    cuts, j = [], len(distinct)
    while j:
        cuts.append(distinct[j - 1])
        j = previous[j]
    return tuple(reversed(cuts))


def parking_column(hidden_size: int, like: torch.Tensor) -> torch.Tensor:
    """`(4H, 1)` input weights of the parking feature, gate order i, f, g, o."""
    column = like.new_zeros(4 * hidden_size, 1)
    column[:hidden_size] = -PARK
    column[hidden_size : 2 * hidden_size] = PARK
    return column


def with_parking_feature(sequence: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """`(T, B, D)` and `(T, B)` True at padding -> `(T, B, D + 1)`: zero inputs at padding (so no
    input can outweigh PARK) and the parking feature."""
    padding = pad_mask.unsqueeze(-1)
    return torch.cat([sequence.masked_fill(padding, 0.0), padding.to(sequence.dtype)], dim=-1)


def parked_forward(inputs, sorted_lengths, cuts, h0, c0, weights, training):
    """One direction over right-padded rows sorted longest first, one kernel call per cut.

    Args:
        inputs: `(T, B, D + 1)` from `with_parking_feature`, rows sorted by length, longest first.
        sorted_lengths: the rows' lengths (non-increasing). cuts: from `parking_plan`.
        h0, c0: `(B, H)`. weights: `[weight_ih (4H, D + 1), weight_hh, bias_ih, bias_hh]`.
    Returns:
        outputs `(T, B, H)` (junk past each row's length: the caller masks them), c_n `(B, H)` at
        each row's last real token.
    """
    batch = inputs.shape[1]
    hidden, cell = h0, c0
    pieces, ended = [], []
    start = 0
    for end in cuts:
        running = hidden.shape[0]  # rows longer than `start`: a prefix
        outputs, h_seg, c_seg = fused_lstm(
            inputs[start:end, :running],
            (hidden.unsqueeze(0).contiguous(), cell.unsqueeze(0).contiguous()),
            weights, training=training,
        )
        pieces.append(F.pad(outputs, (0, 0, 0, batch - running)))
        continuing = sum(1 for length in sorted_lengths if length > end)
        ended.append(c_seg[0, continuing:])  # parked since their end: c at their last token
        hidden, cell = h_seg[0, :continuing], c_seg[0, :continuing]
        start = end
    outputs = torch.cat(pieces, dim=0)
    return outputs, torch.cat(ended[::-1], dim=0)


def parked_backward(inputs, sorted_lengths, cuts, weights, training):
    """The backward direction from a zero state, over the time-reversed batch, one call per cut.

    Args:
        inputs: `(T, B, D + 1)` from `with_parking_feature` (not reversed), rows sorted longest first,
            `T` the longest length.
        sorted_lengths, cuts, weights: as `parked_forward`.
    Returns:
        outputs `(T, B, H)` in the original time order, exactly zero at padding; h_n, c_n `(B, H)`
        after each row's first token.
    """
    time, batch = inputs.shape[:2]
    hidden_size = weights[1].shape[1]
    reversed_inputs = inputs.flip(0)  # row b's last real token is at T - length_b
    hidden = inputs.new_zeros(0, hidden_size)
    cell = hidden
    pieces = []
    for start, end in zip([time - cut for cut in cuts[::-1]], [time - cut for cut in cuts[::-1][1:]] + [time]):
        # Rows whose reversed sequence begins before `end` run in this call; newcomers start at zero
        # and stay parked (at zero) until their first real step.
        running = sum(1 for length in sorted_lengths if time - length < end)
        joining = running - hidden.shape[0]
        hidden = torch.cat([hidden, hidden.new_zeros(joining, hidden_size)])
        cell = torch.cat([cell, cell.new_zeros(joining, hidden_size)])
        outputs, h_seg, c_seg = fused_lstm(
            reversed_inputs[start:end, :running], (hidden.unsqueeze(0), cell.unsqueeze(0)), weights, training=training
        )
        pieces.append(F.pad(outputs, (0, 0, 0, batch - running)))
        hidden, cell = h_seg[0], c_seg[0]
    outputs = torch.cat(pieces, dim=0).flip(0)
    return outputs, hidden, cell

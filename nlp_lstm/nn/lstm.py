"""The LSTM encoder: a multi-layer, optionally bidirectional LSTM with exact variable lengths and
optional peephole connections (DESIGN.md section 2; the maths is in docs/lstm.md).

Two execution paths share one set of parameters, named and shaped like `torch.nn.LSTM`'s, so one
state dict loads into either:

- `peephole="none"`: the fused `torch.nn.LSTM` kernel (oneDNN on CPU, cuDNN on GPU), called one
  layer and one direction at a time through `torch._VF.lstm` (see `_fused_direction`); in training
  on ragged rows, with rows parked past their ends so that they share calls (`nlp_lstm.nn.parking`).
- `peephole="diagonal" | "full"`: our own cell, a Python loop over time inside a
  `torch.autograd.Function` with a hand-derived backward through time (`_PeepholeScan`).

Internally both paths run time-major `(time, batch, features)`: the fused kernel works time-major
anyway, and slicing a time segment (`x[start:end]`) or unbinding time steps is then contiguous.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.fused import fused_lstm
from nlp_lstm.nn.peephole import peephole_lstm_scan
from nlp_lstm.nn.parking import parked_backward, parked_forward, parking_column, parking_plan, with_parking_feature

PEEPHOLES = ("none", "diagonal", "full")


__all__ = ["LSTM", "PEEPHOLES", "peephole_lstm_scan", "reverse_within_lengths"]


# ---------------------------------------------------------------------------------------------
# Variable lengths
# ---------------------------------------------------------------------------------------------


def reverse_within_lengths(sequence: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence within its own length; padding stays where it is.

    Applying it twice is the identity, so the same call maps the backward direction's outputs back.

    Args:
        sequence: `(time, batch, features)`, right-padded.
        lengths: `(batch,)` int64 real lengths, or None when every row has length `time`.
    Returns:
        `(time, batch, features)` with `out[t, b] = sequence[lengths[b] - 1 - t, b]` for
        `t < lengths[b]`, and `out[t, b] = sequence[t, b]` otherwise.
    """
    if lengths is None:
        return sequence.flip(0)
    time = sequence.shape[0]
    steps = torch.arange(time, device=sequence.device).unsqueeze(1)  # (T, 1)
    reversed_steps = lengths.unsqueeze(0) - 1 - steps  # (T, B)
    index = torch.where(reversed_steps >= 0, reversed_steps, steps.expand_as(reversed_steps))
    return sequence.gather(0, index.unsqueeze(-1).expand_as(sequence))


def _at_lengths(sequence: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Pick each row's value at its own last real step: `(time, batch, H)` -> `(batch, H)`."""
    if lengths is None:
        return sequence[-1]
    index = (lengths - 1).view(1, -1, 1).expand(1, sequence.shape[1], sequence.shape[2])
    return sequence.gather(0, index).squeeze(0)


# ---------------------------------------------------------------------------------------------
# Fast path: the fused kernel
# ---------------------------------------------------------------------------------------------


def _fused_direction(
    inputs: torch.Tensor,
    sorted_lengths: list[int] | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    weights: list[torch.Tensor],
    training: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run one unidirectional LSTM layer with the fused kernel, exactly, over ragged lengths.

    Why time segments: the kernel only returns the state after the last step it ran, and packing
    (`pack_padded_sequence`) falls back to a slower native kernel (training 5.3x slower here). So
    with rows sorted by length (longest first), the kernel runs once per segment between two
    consecutive distinct lengths, on the rows still active there, continuing from the previous
    segment's (h, c); rows that end at a segment boundary keep the state recorded there. Only real
    steps are computed (like packing), with at most `batch` kernel calls. The alternative, running
    padded to the maximum length and recovering c separately, costs at least the padded run; in
    benchmarks/bench_lstm.py ("ragged" rows, lengths 10..200, batch 32) the exact segments took
    0.78x the padded nn.LSTM's time for a training step (1.18x for inference, where the ~20 extra
    kernel calls weigh more), so segments win where it matters most.

    Args:
        inputs: `(time, batch, input_size)`, rows sorted by length, longest first.
        sorted_lengths: the rows' lengths (non-increasing), or None when all equal `time`.
        h0, c0: `(batch, hidden_size)` initial state.
        weights: `[weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,)]`.
        training: passed to the kernel (it decides what to keep for backward).
    Returns:
        outputs `(time, batch, hidden_size)`, zero past each row's length; h_n, c_n `(batch, H)`.
    """
    time, batch = inputs.shape[:2]
    if sorted_lengths is None:
        outputs, h_n, c_n = fused_lstm(inputs, (h0.unsqueeze(0), c0.unsqueeze(0)), weights, training=training)
        return outputs, h_n[0], c_n[0]

    hidden, cell = h0, c0
    segment_outputs, ended_h, ended_c = [], [], []
    start = 0
    for end in sorted(set(sorted_lengths)):
        active = hidden.shape[0]  # rows with length >= end: a prefix, as rows are sorted
        outputs, h_seg, c_seg = fused_lstm(
            inputs[start:end, :active],
            (hidden.unsqueeze(0).contiguous(), cell.unsqueeze(0).contiguous()),
            weights, training=training,
        )  # fmt: skip
        segment_outputs.append(F.pad(outputs, (0, 0, 0, batch - active)))  # (end-start, B, H)
        continuing = sum(1 for length in sorted_lengths if length > end)
        ended_h.append(h_seg[0, continuing:])
        ended_c.append(c_seg[0, continuing:])
        hidden, cell = h_seg[0, :continuing], c_seg[0, :continuing]
        start = end
    outputs = torch.cat(segment_outputs, dim=0)  # (max_length, B, H)
    outputs = F.pad(outputs, (0, 0, 0, 0, 0, time - outputs.shape[0]))
    # Shorter rows end first and sit at the end of the batch: reverse to restore row order.
    return outputs, torch.cat(ended_h[::-1], dim=0), torch.cat(ended_c[::-1], dim=0)


class LSTM(nn.Module):
    """Multi-layer, optionally bidirectional LSTM with exact variable lengths and optional peepholes.

    Parameters are named and shaped like `torch.nn.LSTM`'s (`weight_ih_l{k}{_reverse}`,
    `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, gate order i, f, g, o), plus
    `peephole_{i,f,o}_l{k}{_reverse}` for the peephole modes ((H,) diagonal, (H, H) full, zero at
    initialisation), so a "none" state dict loads into a peephole model with `strict=False`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        peephole: str = "none",
        batch_first: bool = True,
    ):
        super().__init__()
        if peephole not in PEEPHOLES:
            raise NlpLstmError(f"peephole={peephole!r} is not supported: choose one of {PEEPHOLES}")
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise NlpLstmError(
                f"input_size={input_size}, hidden_size={hidden_size}, num_layers={num_layers}: "
                "all must be at least 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise NlpLstmError(f"dropout={dropout} must be in [0, 1)")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.peephole = peephole
        self.batch_first = batch_first
        self.num_directions = 2 if bidirectional else 1

        for layer in range(num_layers):
            layer_input_size = input_size if layer == 0 else self.output_size
            for suffix in self._suffixes(layer):
                self._make_parameters(suffix, layer_input_size)
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        """Features per output step: `num_directions * hidden_size`."""
        return self.num_directions * self.hidden_size

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _make_parameters(self, suffix: str, layer_input_size: int) -> None:
        hidden_size = self.hidden_size
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size, layer_input_size)))
        self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
        self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
        self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
        if self.peephole != "none":
            shape = (hidden_size,) if self.peephole == "diagonal" else (hidden_size, hidden_size)
            for gate in "ifo":
                self.register_parameter(f"peephole_{gate}{suffix}", nn.Parameter(torch.empty(shape)))

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) like `torch.nn.LSTM`; peepholes start at zero, so a fresh
        peephole model starts as the plain LSTM and learns to use the cell state.

        The forget-gate input bias starts at +1 (Gers et al. 2000; Jozefowicz et al. 2015, sec. 3.1,
        and Keras' `unit_forget_bias`): the cell starts out remembering, so gradients reach early
        steps of long sequences from the first update."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        hidden = self.hidden_size
        for name, parameter in self.named_parameters():
            if name.startswith("peephole_"):
                nn.init.zeros_(parameter)
            else:
                nn.init.uniform_(parameter, -bound, bound)
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    parameter[hidden : 2 * hidden] += 1.0  # gate order i, f, g, o

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
            f"peephole={self.peephole!r}, batch_first={self.batch_first}"
        )

    # -- forward ------------------------------------------------------------------------------

    def forward(self, inputs, lengths=None, state=None, *, need_cell_state: bool = True):
        """Encode a padded batch.

        Args:
            inputs: `(batch, time, input_size)` if `batch_first` else `(time, batch, input_size)`.
            lengths: optional `(batch,)` int64 real lengths (1..time); None means all `time`.
            state: optional `(h0, c0)`, each `(num_layers * num_directions, batch, hidden_size)`.
            need_cell_state: False when the caller only reads outputs and h_n (a classifier):
                without autograd the fused path then runs each layer once over the padded batch,
                since outputs at real positions and h at each row's last token never depend on the
                padding, and only the final cell state needs the exact per-length segments. c_n is
                then None. (In training, ragged rows take the parked path either way.)
        Returns:
            outputs: `(batch, time, num_directions * hidden_size)` (time-major if not
                `batch_first`), exactly zero at padded positions (t >= length).
            (h_n, c_n): each `(num_layers * num_directions, batch, hidden_size)`, layer-major,
                forward then backward, taken at each sequence's own last real token.
        """
        sequence = self._check_inputs(inputs)  # (T, B, D)
        time, batch = sequence.shape[:2]
        lengths = self._check_lengths(lengths, batch=batch, time=time, device=sequence.device)
        h0, c0 = self._initial_state(state, batch=batch, like=sequence)

        # Rows never interact, so padding past the longest row is never computed.
        if lengths is not None:
            sequence = sequence[: int(lengths.max())]
            if int(lengths.min()) == sequence.shape[0]:  # a bucket of equal lengths: no ragged work
                lengths = None
        order = None
        ragged_fused = lengths is not None and self.peephole == "none"
        # Training (autograd recording) pays each kernel call's fixed cost twice, forward and
        # backward: ragged rows then share calls, parked past their ends (`nlp_lstm.nn.parking`;
        # the backward direction's start needs the zero initial state). Without autograd the
        # exact per-length segments and the padded runs stay, and with them decoding's results.
        parked = ragged_fused and state is None and torch.is_grad_enabled()
        segments = ragged_fused and need_cell_state and not parked
        if segments or parked:
            # Time segments and parked calls need rows sorted longest first; undone below.
            order = torch.argsort(lengths, descending=True, stable=True)
            sequence, lengths = sequence[:, order], lengths[order]
            h0, c0 = h0[:, order], c0[:, order]

        if parked:
            outputs, h_n, c_n = self._run_parked_layers(sequence, lengths)
        else:
            outputs, h_n, c_n = self._run_layers(sequence, lengths, h0, c0, segments=segments)
        if lengths is not None and not (segments or parked):  # these paths ran through the padding
            steps = torch.arange(outputs.shape[0], device=outputs.device).unsqueeze(1)
            outputs = outputs.masked_fill((steps >= lengths).unsqueeze(-1), 0.0)
        if outputs.shape[0] < time:  # F.pad copies even when there is nothing to add
            outputs = F.pad(outputs, (0, 0, 0, 0, 0, time - outputs.shape[0]))  # (T, B, dirs*H)
        if order is not None:
            restore = torch.argsort(order)
            outputs, h_n, c_n = outputs[:, restore], h_n[:, restore], c_n[:, restore]
        if not need_cell_state:
            c_n = None
        if self.batch_first:
            outputs = outputs.transpose(0, 1)
        return outputs, (h_n, c_n)

    def _run_layers(self, sequence, lengths, h0, c0, *, segments: bool):
        """All layers, both directions. `sequence` `(T, B, D)`; h0, c0 `(L * dirs, B, H)`."""
        layer_input = sequence
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if self.bidirectional and self.peephole == "none" and lengths is None:
                # Every row is full length: both directions in one fused call, as nn.LSTM does, not two
                # calls with flips and a concatenation around them (BENCHMARKS.md, LSTM kernels).
                layer_output, h_last, c_last = self._fused_bidirectional(layer_input, h0, c0, layer)
                h_n += list(h_last)
                c_n += list(c_last)
                layer_input = self._between_layers(layer_output, layer)
                continue
            direction_outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                index = layer * self.num_directions + direction
                direction_input = layer_input if direction == 0 else reverse_within_lengths(layer_input, lengths)
                outputs, h_last, c_last = self._run_direction(
                    direction_input, lengths, h0[index], c0[index], suffix, segments=segments
                )
                if direction == 1:
                    outputs = reverse_within_lengths(outputs, lengths)
                direction_outputs.append(outputs)
                h_n.append(h_last)
                c_n.append(c_last)
            layer_output = torch.cat(direction_outputs, dim=-1) if self.bidirectional else direction_outputs[0]
            layer_input = self._between_layers(layer_output, layer)
        cell = None if any(c is None for c in c_n) else torch.stack(c_n)
        return layer_input, torch.stack(h_n), cell

    def _run_parked_layers(self, sequence, lengths):
        """All layers on ragged rows sorted longest first, from a zero state, parked past their
        ends (`nlp_lstm.nn.parking`). `sequence` `(T, B, D)`, T the longest length."""
        time, batch = sequence.shape[:2]
        sorted_lengths = lengths.tolist()
        cuts = parking_plan(tuple(sorted_lengths))
        pad_mask = torch.arange(time, device=sequence.device).unsqueeze(1) >= lengths  # (T, B)
        column = parking_column(self.hidden_size, like=sequence)
        zeros = sequence.new_zeros(batch, self.hidden_size)
        layer_input, h_n, c_n = sequence, [], []
        for layer in range(self.num_layers):
            inputs = with_parking_feature(layer_input, pad_mask)  # (T, B, D + 1)
            directions = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                weight_ih, weight_hh, bias_ih, bias_hh = self._fused_weights(suffix)
                weights = [torch.cat([weight_ih, column], dim=1), weight_hh, bias_ih, bias_hh]
                if direction == 0:
                    outputs, c_last = parked_forward(inputs, sorted_lengths, cuts, zeros, zeros, weights,
                                                     self.training)  # fmt: skip
                    outputs = outputs.masked_fill(pad_mask.unsqueeze(-1), 0.0)  # parked steps' h is junk
                    h_last = _at_lengths(outputs, lengths)
                else:  # exactly zero at padding already
                    outputs, h_last, c_last = parked_backward(inputs, sorted_lengths, cuts, weights, self.training)
                directions.append(outputs)
                h_n.append(h_last)
                c_n.append(c_last)
            layer_output = torch.cat(directions, dim=-1) if self.bidirectional else directions[0]
            layer_input = self._between_layers(layer_output, layer)
        return layer_input, torch.stack(h_n), torch.stack(c_n)

    def _between_layers(self, layer_output, layer: int):
        if layer < self.num_layers - 1 and self.dropout > 0:  # between layers, not after the last
            return F.dropout(layer_output, p=self.dropout, training=self.training)
        return layer_output

    def _fused_bidirectional(self, sequence, h0, c0, layer: int):
        """One layer, both directions, rows all full length: `(T, B, D)` -> `(T, B, 2H)`, h, c `(2, B, H)`."""
        weights = [weight for suffix in self._suffixes(layer) for weight in self._fused_weights(suffix)]
        index = slice(2 * layer, 2 * layer + 2)
        return fused_lstm(sequence, (h0[index].contiguous(), c0[index].contiguous()), weights, training=self.training,
                          bidirectional=True)

    def _fused_weights(self, suffix: str) -> list[torch.Tensor]:
        """`[weight_ih, weight_hh, bias_ih, bias_hh]` of one layer and direction, as the fused kernel takes them."""
        return [getattr(self, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def _run_direction(self, sequence, lengths, h0, c0, suffix, *, segments: bool):
        """One layer, one direction: `(T, B, D)` -> outputs `(T, B, H)`, h_n, c_n `(B, H)`."""
        weights = self._fused_weights(suffix)
        if self.peephole == "none":
            if segments:
                return _fused_direction(sequence, lengths.tolist(), h0, c0, weights, self.training)
            outputs, _, c_n = _fused_direction(sequence, None, h0, c0, weights, self.training)
            if lengths is None:
                return outputs, outputs[-1], c_n
            return outputs, _at_lengths(outputs, lengths), None
        weight_ih, weight_hh, bias_ih, bias_hh = weights
        xproj = F.linear(sequence, weight_ih, bias_ih + bias_hh)  # all steps in one matmul: (T, B, 4H)
        peepholes = [getattr(self, f"peephole_{gate}{suffix}") for gate in "ifo"]
        hs, cs = peephole_lstm_scan(xproj, h0, c0, weight_hh, *peepholes, peephole=self.peephole)
        # Steps past a row's length computed junk after its real steps; outputs are masked by the
        # caller and the final state is read at the row's own last step.
        return hs, _at_lengths(hs, lengths), _at_lengths(cs, lengths)

    # -- checks -------------------------------------------------------------------------------

    def _check_inputs(self, inputs) -> torch.Tensor:
        """Validate rank and width; return time-major `(T, B, D)`."""
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise NlpLstmError(f"LSTM inputs must be a 3-D tensor {layout}, got {shape}")
        if inputs.shape[-1] != self.input_size:
            raise NlpLstmError(
                f"LSTM inputs have {inputs.shape[-1]} features but input_size={self.input_size}"
            )
        if not inputs.is_floating_point():
            raise NlpLstmError(f"LSTM inputs must be floating point, got {inputs.dtype}")
        return inputs.transpose(0, 1) if self.batch_first else inputs

    def _check_lengths(self, lengths, *, batch: int, time: int, device) -> torch.Tensor | None:
        """Return `(batch,)` int64 lengths on `device`, or None when every row is full length."""
        if lengths is None:
            return None
        lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != batch or lengths.is_floating_point():
            raise NlpLstmError(
                f"lengths must be a 1-D integer tensor of size batch={batch}, got "
                f"{lengths.dtype} {tuple(lengths.shape)}"
            )
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > time:
            raise NlpLstmError(f"lengths must be in [1, {time}] (the padded time), got [{low}, {high}]")
        if low == time:
            return None
        return lengths.to(device=device, dtype=torch.int64)

    def _initial_state(self, state, *, batch: int, like: torch.Tensor):
        """`(h0, c0)`, each `(num_layers * num_directions, batch, hidden_size)`; zeros if None."""
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            zeros = like.new_zeros(shape)
            return zeros, zeros
        h0, c0 = state
        if tuple(h0.shape) != shape or tuple(c0.shape) != shape:
            raise NlpLstmError(
                f"state (h0, c0) must each be {shape}, got {tuple(h0.shape)} and {tuple(c0.shape)}"
            )
        return h0, c0

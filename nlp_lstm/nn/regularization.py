"""AWD-LSTM regularisers (Merity, Keskar & Socher 2018, "Regularizing and Optimizing LSTM Language
Models", sec. 4): embedding dropout, locked (variational) dropout, and weight drop.

- `embedding_dropout` (sec. 4.3): drop whole rows of the embedding matrix, i.e. every occurrence of a
  word in the batch at once, and scale the kept rows by `1 / (1 - p)` so the expectation is unchanged.
- `LockedDropout` (sec. 4.2, Gal & Ghahramani 2016): one dropout mask per sequence, shared by all of its
  time steps, on `(B, T, D)` activations; standard dropout draws a new mask at every step, which
  an LSTM partly learns to route around.
- `call_with_weight_drop` (sec. 2, DropConnect of Wan et al. 2013 on the hidden-to-hidden matrices):
  the recurrent weights `W_hh` are dropped once per forward pass, so the same connections are missing
  at every time step of the batch, without touching the LSTM kernel: the module runs through
  `torch.func.functional_call` with the dropped matrices in place of its parameters. Gradients flow
  through the mask into the raw weights, which stay the module's parameters (and its state dict).

All three are the identity at evaluation (`training=False`) or with `p=0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nlp_lstm.errors import NlpLstmError

__all__ = ["LockedDropout", "call_with_weight_drop", "embedding_dropout", "hidden_to_hidden_names"]


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise NlpLstmError(f"{name}={p} must be in [0, 1)")


def embedding_dropout(weight: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The embedding matrix with whole word rows dropped (Merity et al. 2018, sec. 4.3).

    Look ids up in the result (`F.embedding(ids, embedding_dropout(emb.weight, p, training))`): a
    dropped word is zero everywhere it occurs in the batch, and kept rows are scaled by `1 / (1 - p)`.

    Args:
        weight: `(V, E)` embedding matrix.
        p: probability of dropping a row, in [0, 1).
        training: False returns `weight` itself.
    Returns:
        `(V, E)`, differentiable with respect to `weight`.
    """
    _check_probability("embedding_dropout", p)
    if not training or p == 0.0:
        return weight
    keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - p)  # (V, 1): one draw per word
    return weight * (keep / (1.0 - p))


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared over time (Merity et al. 2018, sec. 4.2).

    Args:
        p: drop probability, in [0, 1).
    Inputs `(B, T, D)`; the mask is `(B, 1, D)`, scaled by `1 / (1 - p)`.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        _check_probability("locked dropout p", p)
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        if inputs.dim() != 3:
            raise NlpLstmError(f"LockedDropout takes (batch, time, features) inputs, got {tuple(inputs.shape)}")
        batch, _, features = inputs.shape
        mask = inputs.new_empty(batch, 1, features).bernoulli_(1.0 - self.p) / (1.0 - self.p)  # (B, 1, D)
        return inputs * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def hidden_to_hidden_names(module: nn.Module) -> list[str]:
    """Names of an LSTM's hidden-to-hidden matrices (`weight_hh_l0`, `weight_hh_l0_reverse`, ...)."""
    return [name for name, _ in module.named_parameters() if name.rsplit(".", 1)[-1].startswith("weight_hh")]


def call_with_weight_drop(
    module: nn.Module,
    args: tuple,
    kwargs: dict[str, Any] | None = None,
    *,
    p: float,
    training: bool,
    parameter_names: Sequence[str] | None = None,
) -> Any:
    """`module(*args, **kwargs)` with DropConnect on some of its weights (Merity et al. 2018, sec. 2).

    One mask per named weight is drawn for this call, so every time step of every sequence in the
    batch misses the same recurrent connections; kept entries are scaled by `1 / (1 - p)` (as AWD-LSTM's
    `WeightDrop` does with `F.dropout`). The module's parameters are not modified: the dropped copies
    replace them for this call only (`torch.func.functional_call`), and gradients reach the raw weights
    through the mask.

    Args:
        module: e.g. a `nlp_lstm.nn.lstm.LSTM`.
        args, kwargs: the call's arguments.
        p: drop probability, in [0, 1).
        training: False (or `p == 0`) calls the module unchanged.
        parameter_names: which parameters to drop; default: the hidden-to-hidden matrices
            (`hidden_to_hidden_names(module)`).
    Returns:
        whatever the module returns.
    """
    _check_probability("weight_drop", p)
    kwargs = kwargs or {}
    if not training or p == 0.0:
        return module(*args, **kwargs)
    names = hidden_to_hidden_names(module) if parameter_names is None else list(parameter_names)
    parameters = dict(module.named_parameters())
    missing = [name for name in names if name not in parameters]
    if missing:
        raise NlpLstmError(f"weight drop: {type(module).__name__} has no parameter {missing[0]!r}")
    dropped = {name: F.dropout(parameters[name], p=p, training=True) for name in names}
    return functional_call(module, dropped, args, kwargs)

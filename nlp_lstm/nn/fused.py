"""The fused LSTM kernel, called with named settings."""

from __future__ import annotations

import torch


def fused_lstm(inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], weights: list[torch.Tensor], *,
               training: bool, bidirectional: bool = False, batch_first: bool = False):
    """One layer of `torch._VF.lstm` (the kernel `torch.nn.LSTM` calls: oneDNN on CPU, cuDNN on GPU),
    with its positional flags named: biases on, one layer, no dropout inside the kernel."""
    return torch._VF.lstm(inputs, state, weights, True, 1, 0.0, training, bidirectional, batch_first)

"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from nlp_lstm.errors import NlpLstmError


def pick_device(device: str = "auto") -> torch.device:
    """`auto` (CUDA when visible, else CPU), `cpu` or `cuda`; a missing GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise NlpLstmError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)

"""Running a module for evaluation without changing what the caller left it as."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; afterwards the mode the model had (a library user who
    evaluates and then predicts must not get dropout noise, nor a training loop a frozen model)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)

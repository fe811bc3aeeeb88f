"""What the training loop yields (`Trainer.train_while_improving`), and the state it carries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainerState:
    """Where training stands; a checkpoint's `trainer_state.json` holds exactly this.

    `loss_sum` / `loss_count` are this epoch's training loss sums over all ranks; `bad_epochs`
    counts epochs since the validation metric last improved.
    """

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EpochStart:
    state: TrainerState
    steps_per_epoch: int


@dataclass
class StepEnd:
    state: TrainerState
    running_loss: float  # this epoch's mean training loss so far
    examples_per_second: float


@dataclass
class EpochEnd:
    state: TrainerState
    row: dict[str, Any]  # what `train_log.jsonl` gets for this epoch
    improved: bool


Event = EpochStart | StepEnd | EpochEnd

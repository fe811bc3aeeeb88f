"""Listeners of the training loop's events: they watch, the loop acts (rank 0 runs them)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from nlp_lstm.artifacts import atomic_write_text
from nlp_lstm.progress import progress_bar
from nlp_lstm.training.events import EpochEnd, EpochStart, Event, StepEnd


class ProgressListener:
    """One rich progress bar per epoch (stderr), with the running loss and examples per second."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.stack = ExitStack()
        self.bar = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochStart):
            self.close()
            self.bar = self.stack.enter_context(
                progress_bar(event.steps_per_epoch, f"epoch {event.state.epoch + 1}/{self.epochs}"))
            self.bar.advance(event.state.batch_in_epoch)
        elif isinstance(event, StepEnd) and self.bar is not None:
            self.bar.advance(1, info=f"loss {event.running_loss:.4f}  {event.examples_per_second:,.0f} ex/s")
        elif isinstance(event, EpochEnd):
            self.close()

    def close(self) -> None:
        self.stack.close()
        self.bar = None


class LogListener:
    """`run_dir/train_log.jsonl`, rewritten whole (atomically) after every epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            _write_log(self.run_dir, event.state.log)

    def close(self) -> None:
        pass


def _write_log(run_dir: Path, rows: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "train_log.jsonl", "".join(json.dumps(row) + "\n" for row in rows))

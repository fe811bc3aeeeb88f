"""One training loop for both tasks (DESIGN section 7).

AdamW (or Adagrad), gradient clipping, a linear learning-rate schedule, early stopping on a
validation metric with the best weights kept, seeded, and resumable exactly: the data order is a
pure function of (seed, epoch), and checkpoints hold every RNG, so a resumed run reaches the same
weights as an uninterrupted one.

Under torchrun (`nlp_lstm.training.distributed`) the same loop runs DistributedDataParallel: each
rank trains on its part of every global batch of `world_size * batch_size` examples, validation
counts are summed over ranks, and only rank 0 logs and writes checkpoints (docs/distributed.md).
"""

from __future__ import annotations

import math
import random
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from datasets import Dataset

from nlp_lstm.config import TrainConfig
from nlp_lstm.data.collate import take_rows, to_device
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.mapped_pages import MappedPages
from nlp_lstm.errors import NlpLstmError, TrainingInterrupted
from nlp_lstm.training import distributed
from nlp_lstm.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from nlp_lstm.training.events import EpochEnd, EpochStart, Event, StepEnd, TrainerState
from nlp_lstm.training.listeners import LogListener, ProgressListener


class Task(Protocol):
    """What the loop needs to know about a model family."""

    metric_name: str  # validation metric that picks the best epoch, e.g. "macro_f1", "rougeL", "perplexity"
    # A task may set `metric_goal = "min"` (perplexity); the default is "max".

    def collate(self, examples: Sequence[dict]) -> dict: ...  # a list of rows, or `batching.ArrowRows`

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor: ...

    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any]) -> dict[str, float]: ...
    # Under DDP the loop calls `evaluate(model, batches, all_reduce=True)`: `batches` are this rank's
    # part of the split, and the task must sum its counts over ranks before computing ratios.

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None: ...


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    log: list[dict[str, Any]]
    best_metric: float
    best_epoch: int
    stop_reason: str
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def iterate_batches(dataset: Dataset, sampler: LengthBucketSampler, collate, device, *, start: int = 0):
    """Yield collated batches in sampler order, skipping the first `start` (mid-epoch resume).

    Empty batches (a DDP rank's part of a global batch with fewer examples than ranks) are skipped.
    """
    for position, indices in enumerate(sampler):
        if position < start or not len(indices):
            continue
        yield to_device(collate(_examples(dataset, indices)), device)


def iterate_training_batches(dataset: Dataset, sampler: LengthBucketSampler, collate, device, *, start: int = 0):
    """Yield `(batch, loss_weight, size)` for this rank, one per global batch, skipping the first `start`.

    `loss_weight` scales the batch's mean loss so that DDP's gradient average is the global batch's
    mean (`LengthBucketSampler.shard_weight`; always 1.0 in one process). A rank whose part is empty
    still has to run forward and backward, because DDP's gradient all-reduce needs every rank: it
    gets the global batch's first example with weight 0 and size 0 (nothing learnt, nothing logged).
    """
    global_batches = sampler.epoch_batches()
    for position in range(start, len(global_batches)):
        global_batch = global_batches[position]
        indices = sampler.shard(global_batch)
        weight = sampler.shard_weight(global_batch)
        size = len(indices)
        if size == 0:
            indices, weight = global_batch[:1], 0.0
        yield to_device(collate(_examples(dataset, indices)), device), weight, size


def _examples(dataset: Dataset, indices) -> Sequence[dict]:
    """The batch's rows: Arrow columns for a `datasets.Dataset` (the collate functions pad them with
    numpy, no Python object per token), else the list of dicts `dataset[indices]` gives."""
    if isinstance(dataset, Dataset):
        return take_rows(dataset, indices)
    rows = dataset[np.asarray(indices).tolist()]
    return [dict(zip(rows, values)) for values in zip(*rows.values())]


def build_optimizer(model: torch.nn.Module, config: TrainConfig, groups: list[dict] | None = None
                    ) -> torch.optim.Optimizer:
    """AdamW or Adagrad over `groups` (parameter groups with their own `lr`) or all of `model`."""
    parameters = groups if groups is not None else model.parameters()
    if config.optimizer == "adagrad":
        # See et al. (2017), sec. 5: Adagrad with initial accumulator 0.1.
        return torch.optim.Adagrad(parameters, lr=config.learning_rate, initial_accumulator_value=0.1)
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        return max(0.0, 1.0 - step / max(1, total_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """The training loop as a generator of events (`train_while_improving`), as spaCy's loop is.

    The loop itself does what every rank must do in step (forward, backward, optimizer, validation,
    the collective loss sync, checkpoints); what only watches it (the progress bar, the log file)
    listens to the events it yields.
    """

    def __init__(self, model: torch.nn.Module, *, task: Task, train_data: Dataset, validation_data: Dataset,
                 config: TrainConfig, run_dir: Path, device: torch.device, resume: bool = False) -> None:
        seed_everything(config.seed)
        self.model, self.task, self.config, self.device = model.to(device), task, config, device
        self.train_data, self.validation_data = train_data, validation_data
        self.world, self.rank = distributed.world_size(), distributed.rank()
        self.main = self.rank == 0
        self.sampler = LengthBucketSampler(train_data["length"], batch_size=config.batch_size, shuffle=True,
                                           seed=config.seed, num_replicas=self.world, rank=self.rank)
        self.eval_sampler = LengthBucketSampler(validation_data["length"], batch_size=max(64, config.batch_size),
                                                shuffle=False, num_replicas=self.world, rank=self.rank)
        self.steps_per_epoch = len(self.sampler)
        # Random batches would map the whole training file into RSS over an epoch (each row read faults in
        # 64 KB around it); dropping those clean pages after every step keeps resident memory flat as the
        # corpus grows (BENCHMARKS.md, section 9). Validation pages go after each validation pass.
        self.train_pages, self.validation_pages = MappedPages(train_data), MappedPages(validation_data)
        self.train_pages.release()
        groups = task.parameter_groups(model, config) if hasattr(task, "parameter_groups") else None
        self.optimizer = build_optimizer(model, config, groups)
        self.scheduler = build_scheduler(self.optimizer, config, total_steps=self.steps_per_epoch * config.epochs)
        self.checkpoints = run_dir / "checkpoints"
        self.state = TrainerState()
        self.best_state: dict[str, torch.Tensor] | None = None
        if resume:
            self._resume()
        if self.world > 1 and self.rank > 0:
            # Every rank has rank 0's RNG state (same seed, or the checkpoint's): give the others their
            # own dropout stream. Weights are not drawn here (DDP broadcasts rank 0's at `wrap`).
            seed_everything(hash((config.seed, self.rank, self.state.step)) % 2**31)
        self.train_model = distributed.wrap(model, device)  # `model` itself in one process
        # This rank's loss sum and example count since the last sync (DDP only): the state holds the
        # sums over all ranks, so a checkpoint (written by rank 0 only) resumes every rank the same.
        self.pending = [0.0, 0]

    def _resume(self) -> None:
        found = list_checkpoints(self.checkpoints)
        if not found:
            raise NlpLstmError(f"--resume: no checkpoint under {self.checkpoints}; start without --resume")
        saved, self.best_state = load_checkpoint(found[-1], model=self.model, optimizer=self.optimizer,
                                                 scheduler=self.scheduler)
        self.state = TrainerState(**saved)
        if self.main:  # staging directories of a writer that was killed mid-checkpoint: never renamed, never read
            for stale in self.checkpoints.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)

    def _add_loss(self, loss_value: float, size: int) -> None:
        if self.world == 1:
            self.state.loss_sum += loss_value * size
            self.state.loss_count += size
        else:
            self.pending[0] += loss_value * size
            self.pending[1] += size

    def _sync_loss(self) -> None:
        if self.world > 1:
            total = distributed.all_reduce_sum(torch.tensor(self.pending, dtype=torch.float64))
            self.state.loss_sum += total[0].item()
            self.state.loss_count += round(total[1].item())
            self.pending[:] = [0.0, 0]

    def checkpoint(self) -> None:
        """Every rank calls this at the same steps (the loss sync is collective); rank 0 writes."""
        self._sync_loss()
        if self.main:
            save_checkpoint(self.checkpoints, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                            trainer_state=asdict(self.state), best_state=self.best_state,
                            keep=self.config.keep_checkpoints)

    def _interrupted(self) -> TrainingInterrupted:
        return TrainingInterrupted(
            f"interrupted at step {self.state.step}; checkpoint saved in {self.checkpoints}; "
            "run the same command with --resume to continue"
        )

    def _step(self, batch: dict, weight: float, stop_requested: Callable[[], bool]) -> tuple[float, bool]:
        """One optimizer step; returns (loss value, stop requested on any rank)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bfloat16"):
            loss = self.task.loss(self.train_model, batch)
        stop = False
        if self.world == 1:
            failed = not torch.isfinite(loss)
        else:  # decide together, or one rank would wait forever in the next all-reduce
            failed, stop = distributed.any_rank([not bool(torch.isfinite(loss)), stop_requested()])
        if failed:
            value = loss.item() if not torch.isfinite(loss) else "not finite on another rank"
            raise NlpLstmError(
                f"training loss became {value} at step {self.state.step + 1}; lower the learning rate or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1.0 else loss * weight).backward()  # DDP averages gradients here
        if self.config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item(), stop or (self.world == 1 and stop_requested())

    def _validate(self) -> tuple[dict[str, Any], bool]:
        """Validation metrics and whether the task's metric improved (the best weights are kept)."""
        state, task = self.state, self.task
        validation = _evaluate(task, self.model, lambda: iterate_batches(
            self.validation_data, self.eval_sampler, task.collate, self.device))
        self.validation_pages.release()
        # `best_metric` holds the metric signed so that higher is better (-perplexity for a language model).
        score = validation[task.metric_name] * (-1 if getattr(task, "metric_goal", "max") == "min" else 1)
        improved = score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = score, state.epoch + 1, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.bad_epochs += 1
        return validation, improved

    def train_while_improving(self, stop_requested: Callable[[], bool], *, stop_after_steps: int | None = None
                              ) -> Iterator[Event]:
        """Train until `config.epochs`, early stopping, or a stop request, yielding events as it goes.

        Early stopping follows Keras and Lightning: the run stops once `patience` epochs in a row
        (at least one) brought no better validation metric.
        """
        state, config, task = self.state, self.config, self.task
        while state.epoch < config.epochs and not state.stopped:
            task.on_epoch_start(self.model, state.epoch + 1)
            self.sampler.set_epoch(state.epoch)
            self.train_model.train()
            yield EpochStart(state, self.steps_per_epoch)
            tick = time.perf_counter()
            batches = iterate_training_batches(self.train_data, self.sampler, task.collate, self.device,
                                               start=state.batch_in_epoch)
            for batch, weight, size in batches:
                loss_value, stop = self._step(batch, weight, stop_requested)
                state.step += 1
                state.batch_in_epoch += 1
                self._add_loss(loss_value, size)
                self.train_pages.release()
                now = time.perf_counter()
                running = (state.loss_sum + self.pending[0]) / max(1, state.loss_count + self.pending[1])
                yield StepEnd(state, running, size * self.world / max(now - tick, 1e-9))
                tick = now
                if stop_after_steps is not None and state.step >= stop_after_steps:
                    self.checkpoint()
                    state.stopped = "step limit"
                    return
                if stop:
                    self.checkpoint()
                    raise self._interrupted()
                if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    self.checkpoint()
            validation, improved = self._validate()
            self._sync_loss()
            row = {
                "epoch": state.epoch + 1,
                "step": state.step,
                "train_loss": state.loss_sum / max(1, state.loss_count),
                "val_loss": validation.get("loss"),
                "val_metric": validation[task.metric_name],
                "val_metric_name": task.metric_name,
                "learning_rate": self.scheduler.get_last_lr()[0],
                "best": improved,
            }
            state.log.append(row)
            state.epoch, state.batch_in_epoch, state.loss_sum, state.loss_count = state.epoch + 1, 0, 0.0, 0
            if state.bad_epochs >= max(1, config.patience):
                state.stopped = f"early stop: no better {task.metric_name} for {state.bad_epochs} epochs"
            yield EpochEnd(state, row, improved)
            self.checkpoint()
            if distributed.any_rank([stop_requested()])[0]:
                raise self._interrupted()

    def result(self, started: float) -> TrainResult:
        best = self.best_state
        if best is None:  # stopped before the first validation: keep the current weights
            best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return TrainResult(best_state=best, log=self.state.log, best_metric=self.state.best_metric,
                           best_epoch=self.state.best_epoch, stop_reason=self.state.stopped or "all epochs done",
                           seconds=time.perf_counter() - started)


def fit(
    model: torch.nn.Module,
    *,
    task: Task,
    train_data: Dataset,
    validation_data: Dataset,
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Train `model` in place and return the best weights (by the validation metric) and the log.

    Writes `run_dir/train_log.jsonl` after every epoch and checkpoints under `run_dir/checkpoints/`.
    `stop_after_steps` ends the run early after that many optimizer steps (tests of resume use it).
    """
    started = time.perf_counter()
    trainer = Trainer(model, task=task, train_data=train_data, validation_data=validation_data, config=config,
                      run_dir=run_dir, device=device, resume=resume)
    listeners = [LogListener(run_dir)] if trainer.main else []
    if progress and trainer.main:
        listeners.append(ProgressListener(config.epochs))
    try:
        with _stop_requests() as stop_requested:
            for event in trainer.train_while_improving(stop_requested, stop_after_steps=stop_after_steps):
                for listener in listeners:
                    listener(event)
    finally:
        for listener in listeners:
            listener.close()
    distributed.barrier()  # rank 0's last checkpoint and log are on disk when any rank returns
    return trainer.result(started)


def _evaluate(task: Task, model: torch.nn.Module, batches: Callable[[], Any]) -> dict[str, Any]:
    """The task's validation metrics; under DDP each rank scored its part and the counts are summed."""
    if distributed.is_distributed():
        return task.evaluate(model, batches, all_reduce=True)
    return task.evaluate(model, batches)


@contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C becomes a request (the yielded callable turns True) that the running work
    honours at its next safe point; a second one raises KeyboardInterrupt at once. Installed only in
    the main thread and over Python's default handler (a background job that ignores SIGINT keeps
    ignoring it)."""
    requested: list[bool] = []
    previous = signal.getsignal(signal.SIGINT)
    install = threading.current_thread() is threading.main_thread() and previous is signal.default_int_handler

    def handler(signum, frame) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(True)

    if install:
        signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        if install:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def _stop_requests():
    """Turn the first Ctrl-C into a request to stop at the next step boundary.

    A KeyboardInterrupt raised inside a step (between `optimizer.step()` and the step counter, or after
    dropout drew from the RNG) would leave a checkpoint that no longer resumes to the same weights, so
    the loop checkpoints only between steps. A second Ctrl-C stops at once; the last checkpoint stays.
    Yields a callable that says whether a stop was requested.
    """
    try:
        with stop_on_interrupt() as requested:
            yield requested
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            "interrupted twice: stopped without a new checkpoint; run the same command with --resume "
            "to continue from the last one"
        ) from None

"""The one training skeleton every model kind runs through (classifier, summarizer, language model).

    prepare (rank 0 first) -> seed -> build -> fit -> rank 0: score, save a staged model directory -> broadcast

A run keeps its checkpoints, kept tokenizer and log in a work directory beside the model directory
(`run_work_dir`: `DIR.partial/`) and moves them into the model directory only when it succeeds, so a
run that fails or is interrupted (a full disk, Ctrl-C, a kill) leaves an earlier model in `DIR`
exactly as it was, and `--resume` continues from `DIR.partial/`.

A model kind supplies a `TrainingStage`: how to prepare its data and tokenizer, build its network and
task adapter, and score and save the result. This file alone decides which rank prepares first,
which rank saves, and when the others wait, so no task can deadlock under torchrun by drifting.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import datasets
import torch

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, staged_directory
from nlp_lstm.config import TrainConfig
from nlp_lstm.data.columns import iter_texts
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.tokenizers import fit_tokenizer, load_tokenizer
from nlp_lstm.devices import pick_device
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.model_card import write_model_card
from nlp_lstm.model_dir import read_model_config
from nlp_lstm.plots import plot_training_curves
from nlp_lstm.progress import datasets_bars
from nlp_lstm.training import distributed
from nlp_lstm.training.checkpoint import list_checkpoints
from nlp_lstm.training.loop import Task, TrainResult, fit, iterate_batches, seed_everything

# The tokenizer `train`, `train summarizer` and `pretrain` fit when none is given: subwords, so no word is unknown.
DEFAULT_TOKENIZER = {"kind": "sentencepiece", "vocab_size": 8000}


class Prepared(Protocol):
    """What a stage's `prepare` returns: at least the encoded train and validation splits."""

    encoded: dict[str, datasets.Dataset]


class TrainingStage(Protocol):
    """One model kind's part of the skeleton."""

    training: TrainConfig

    def describe_data(self) -> tuple[str, str | None]: ...  # (what the data is, its hub name if any)

    def prepare(self, output: Path, *, reuse_tokenizer: bool) -> Prepared: ...

    def build(self, prepared: Prepared) -> torch.nn.Module: ...

    def task(self, prepared: Prepared) -> Task: ...

    def finish(self, network: torch.nn.Module, prepared: Prepared, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]: ...
    # Scores the best weights and writes the model directory's files into `staging`; returns the
    # metrics beside `best_epoch`, `stop_reason` and `train_seconds`. Runs on rank 0 only.


def train_stage(stage: TrainingStage, *, output_dir: str | Path, overwrite: bool = False, resume: bool = False,
                device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train `stage`'s model into the model directory `output_dir`; return its metrics.

    The model directory is written only when training succeeds: a failed run leaves an earlier model
    in `output_dir` untouched. Under torchrun every rank calls this: each trains on its part of every
    batch (DDP), rank 0 alone writes checkpoints and the model directory, and every rank returns
    rank 0's metrics.
    """
    output = Path(output_dir)
    work = run_work_dir(output)
    if resume:
        check_resumable(output, work)
    with datasets_bars(progress), distributed.process_group(pick_device(device)) as torch_device:
        main = distributed.is_main()

        def prepare() -> Prepared:
            # Rank 0 first (`main_first`): it clears the work directory, fits and saves the tokenizer and
            # fills the datasets cache; the other ranks then reuse them (the kept tokenizer, as on --resume).
            if not resume and main:
                start_run_dir(output, overwrite=overwrite)
            return stage.prepare(work, reuse_tokenizer=resume or not main)

        prepared = distributed.main_first(prepare)
        if "validation" not in prepared.encoded:
            raise NlpLstmError("no validation split; give --validation-file or leave validation_fraction > 0")
        seed_everything(stage.training.seed)  # initial weights depend on the seed only, not on what ran before
        network = stage.build(prepared)
        result = fit(
            network, task=stage.task(prepared), train_data=prepared.encoded["train"],
            validation_data=prepared.encoded["validation"], config=stage.training, run_dir=work,
            device=torch_device, resume=resume, progress=progress,
        )
        metrics: dict[str, Any] | None = None
        if main:  # the other ranks wait in `broadcast_object` below
            network.load_state_dict(result.best_state)
            with staged_directory(output) as staging:
                metrics = {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                           "train_seconds": round(result.seconds, 1)}
                metrics.update(stage.finish(network, prepared, result, staging, torch_device))
                atomic_write_json(staging / "metrics.json", metrics)
                data, hub_dataset = stage.describe_data()
                write_model_card(staging, read_model_config(staging), metrics, data=data, hub_dataset=hub_dataset)
                plot_training_curves(result.log, staging / "plots" / "training_curves.png")
                keep_run_files(work, staging)
            shutil.rmtree(work, ignore_errors=True)  # its files are in the model directory now
        return distributed.broadcast_object(metrics)


def run_work_dir(output: Path) -> Path:
    """Where a run into model directory `output` keeps its checkpoints and log until it succeeds."""
    output = Path(output).absolute()
    return output.parent / f"{output.name}.partial"


def start_run_dir(output: Path, *, overwrite: bool) -> None:
    """A new (not resumed) run: refuse a non-empty output, or an unfinished run's checkpoints, without
    --overwrite; start from an empty work directory. The output itself is replaced only on success."""
    check_output_dir(output, overwrite=overwrite)
    work = run_work_dir(output)
    if not overwrite and list_checkpoints(work / "checkpoints"):
        raise NlpLstmError(f"{work} holds the checkpoints of an unfinished run into {output}; pass --resume to "
                           "continue it or --overwrite to start over")
    shutil.rmtree(work, ignore_errors=True)


def check_resumable(output: Path, work: Path) -> None:
    """--resume needs a checkpoint; without one, say the command that works instead."""
    if list_checkpoints(work / "checkpoints"):
        return
    again = "--overwrite" if output.is_dir() and any(output.iterdir()) else "the same command without --resume"
    raise NlpLstmError(f"--resume: no checkpoint yet in {work / 'checkpoints'} (the run stopped before its first "
                       f"one); start the run again with {again}")


def run_tokenizer(output: Path, train_split: datasets.Dataset, columns: list[str], tokenizer_dir: str | Path | None,
                  settings: dict[str, Any] | None, *, reuse: bool, fit: Callable[[], Tokenizer] | None = None
                  ) -> Tokenizer:
    """The run's tokenizer: given, made by `fit`, or fitted on `columns` of the training split.

    It is kept beside the checkpoints (`output`: the run's work directory), so --resume (and DDP
    ranks other than 0, `reuse`) continue with the same ids.
    """
    kept = output / "checkpoints" / "tokenizer"
    if reuse and kept.is_dir():
        return load_tokenizer(kept)
    if tokenizer_dir is not None:
        tokenizer = load_tokenizer(tokenizer_dir)
    elif fit is not None:
        tokenizer = fit()
    else:
        tokenizer = fit_tokenizer(iter_texts(train_split, columns), **(settings or {}))
    tokenizer.save(kept)
    return tokenizer


def keep_run_files(work: Path, staging: Path) -> None:
    """Carry the training log and checkpoints into the staged model directory before it is swapped in."""
    for name in ("train_log.jsonl", "checkpoints"):
        if (work / name).exists():
            shutil.move(str(work / name), str(staging / name))


def score_dataset(model: torch.nn.Module, task: Task, data: datasets.Dataset, device: torch.device) -> dict[str, Any]:
    """`task`'s metrics of `model` over all of an encoded split, in length-sorted batches."""
    sampler = LengthBucketSampler(data["length"], batch_size=128, shuffle=False)
    return task.evaluate(model, lambda: iterate_batches(data, sampler, task.collate, device))


@dataclass(frozen=True)
class StageKind:
    """What the kind-independent commands do for one model kind (`nlp-lstm evaluate`, `nlp-lstm run`).

    Each kind's stage module defines one (`STAGE`) and `stages/kinds.py` lists it. Attributes:
        kind: the model kind (`nlp_lstm.kinds`).
        evaluate: `(model_dir, source, *, split, plots_dir, device[, bf16_output, **decoding]) -> metrics`.
        decodes: `evaluate` takes `bf16_output` and decoding overrides (a model that decodes).
        pipeline_train: `(pipe, *, source, model_dir, vocab_dir, encoded_dir, device, progress)`: the
            train stage of a pipeline file; None: the kind has no pipeline.
        pipeline_inputs: `pipe -> the stages before train` ("vocab", "encode"), in order.
        pipeline_encode: `(pipe, *, source, vocab_dir, encoded_dir)`: the encode stage, if a kind has one.
        model_table: the pipeline's `[model]` table as read -> with the sizes it leaves out filled in.
        finish_pipeline: `(sections, file)`: the kind's defaults and checks of a pipeline's typed tables.
        training_defaults: the kind's `[train]` settings where they differ from `TrainConfig`'s.
    """

    kind: str
    evaluate: Callable[..., dict[str, Any]]
    decodes: bool = False
    pipeline_train: Callable[..., Any] | None = None
    pipeline_inputs: Callable[[Any], tuple[str, ...]] = lambda pipe: ("vocab",)
    pipeline_encode: Callable[..., Any] | None = None
    model_table: Callable[[dict[str, Any]], dict[str, Any]] = lambda table: table
    finish_pipeline: Callable[[dict[str, Any], Path], None] = lambda sections, file: None
    training_defaults: dict[str, Any] = field(default_factory=dict)

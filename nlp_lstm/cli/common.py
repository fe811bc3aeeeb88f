"""Options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import errno
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Callable, Optional, TypeVar

import typer

from nlp_lstm.errors import NlpLstmError

T = TypeVar("T")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: 1 on a busy machine, else up to 4).")]

Dataset = Annotated[Optional[str], typer.Option("--dataset", help="Hugging Face hub dataset name.")]
DatasetConfig = Annotated[Optional[str], typer.Option("--dataset-config", help="Hub dataset configuration name.")]
TrainFile = Annotated[Optional[Path], typer.Option("--train-file", help="Training data: csv, tsv, json, jsonl, parquet or txt (.gz allowed), or a save_to_disk directory.")]
ValidationFile = Annotated[Optional[Path], typer.Option("--validation-file", help="Validation data; split off the training data when absent.")]
TestFile = Annotated[Optional[Path], typer.Option("--test-file", help="Test data; split off the training data when absent.")]
TextColumn = Annotated[str, typer.Option("--text-column", help="Column holding the input text.")]
LabelColumn = Annotated[str, typer.Option("--label-column", help="Column holding the label(s).")]
SummaryColumn = Annotated[str, typer.Option("--summary-column", help="Column holding the reference summary.")]
Split = Annotated[str, typer.Option("--split", help="Split to use: train, validation or test.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty output directory.")]
Streaming = Annotated[bool, typer.Option(
    "--streaming", help="Read the data as a stream (no cached or memory-mapped copy of the raw texts); for corpora larger than memory.")]


def default_threads() -> int:
    # Measured here: 2 torch threads are 1.5x faster than 1 on an idle machine but 5-10x slower when
    # another process holds a core (OpenMP contention). Use every core only when the machine is idle.
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # set by the user or by torchrun (1 per rank)
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] > 0.5 if hasattr(os, "getloadavg") else True
    return 1 if busy else min(cores, 4)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_stage(action: Callable[[], T], *, debug: bool = False, quiet: bool = False, threads: int | None = None) -> T:
    """Run a command's library call; user errors -> one line + exit 2, bugs -> one line + exit 1."""
    import torch

    torch.set_num_threads(threads or default_threads())
    warnings.showwarning = _one_line_warning
    logging.getLogger("datasets").setLevel(logging.ERROR)
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()  # our own rich bars report the long work
    from nlp_lstm.training.loop import TrainingInterrupted

    try:
        return action()
    except TrainingInterrupted as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(130) from None
    except NlpLstmError as error:
        if debug:
            raise
        if not getattr(error, "shown_by_rank_0", False):  # under torchrun every rank has rank 0's error
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except OSError as error:
        # The user's environment, not a bug: a full disk, a read-only or forbidden path.
        if debug or error.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT):
            raise
        typer.echo(f"error: {error.strerror}: {error.filename or ''}; free space or choose another --output-dir", err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        if debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        typer.echo(f"internal error: {type(error).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        raise typer.Exit(1) from None


def data_source(*, dataset, dataset_config, train_file, validation_file, test_file, text_column,
                label_column=None, summary_column=None, streaming=False):
    from nlp_lstm.data.sources import DataSource

    if dataset is None and train_file is None and test_file is None:
        raise NlpLstmError("no data given; pass --train-file FILE (or --test-file) or --dataset NAME")
    return DataSource(
        dataset=dataset, dataset_config=dataset_config,
        train_file=str(train_file) if train_file else None,
        validation_file=str(validation_file) if validation_file else None,
        test_file=str(test_file) if test_file else None,
        text_column=text_column, label_column=label_column, summary_column=summary_column, streaming=streaming,
    )


def read_inputs(texts: list[str] | None, input_file: Path | None) -> list[str]:
    """Texts from arguments, a file, or stdin (one per line), in that order of preference."""
    from nlp_lstm.data.files import read_texts

    if texts:
        return list(texts)
    if input_file is not None:
        return read_texts(input_file)
    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NlpLstmError(f"stdin is not valid UTF-8 (byte {error.start}); re-encode the input as UTF-8") from None
        return [line for line in decoded.splitlines() if line.strip()] or [""]
    raise NlpLstmError("no input texts; pass TEXT arguments, --input-file FILE, or pipe texts on stdin")

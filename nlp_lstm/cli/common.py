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

def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_stage(action: Callable[[], T], *, debug: bool = False, quiet: bool = False, threads: int | None = None) -> T:
    """Run a command's library call; user errors -> one line + exit 2, bugs -> one line + exit 1."""
    import torch

    from nlp_lstm.threads import default_threads

    torch.set_num_threads(threads or default_threads())
    warnings.showwarning = _one_line_warning
    # datasets reads these when (and if) a command imports it; prediction never does.
    logging.getLogger("datasets").setLevel(logging.ERROR)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # our own rich bars report the long work
    if "datasets" in sys.modules:  # imported already (a test, or a program calling the CLI in-process)
        sys.modules["datasets"].disable_progress_bars()
    from nlp_lstm.errors import TrainingInterrupted

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


def data_source(options, *, text_column: str, label_column: str | None = None, summary_column: str | None = None,
                label_separator: str | None = None):
    """A `DataSource` from a command's shared data options (`cli.options.DATA`) and its columns."""
    from nlp_lstm.data.sources import DataSource

    if options.dataset is None and options.train_file is None and options.test_file is None:
        raise NlpLstmError("no data given; pass --train-file FILE (or --test-file) or --dataset NAME")
    return DataSource(
        dataset=options.dataset, dataset_config=options.dataset_config,
        train_file=str(options.train_file) if options.train_file else None,
        validation_file=str(options.validation_file) if options.validation_file else None,
        test_file=str(options.test_file) if options.test_file else None,
        validation_split=options.get("validation_split"), test_split=options.get("test_split"),
        text_column=text_column, label_column=label_column, summary_column=summary_column,
        label_separator=label_separator, streaming=options.streaming,
    )


def lines_of(text: str) -> list[str]:
    """One text per line, blank lines kept (so outputs line up with input lines), as `--input-file`
    reads a .txt file: the newline that ends the last line does not start another text."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines] or [""]


def read_inputs(texts: list[str] | None, input_file: Path | None) -> list[str]:
    """Texts from arguments, a file, or stdin (one per line), in that order of preference."""
    from nlp_lstm.data.files import BOM, read_texts

    if texts:
        return [argument_text(index, text) for index, text in enumerate(texts)]
    if input_file is not None:
        return read_texts(input_file)
    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NlpLstmError(f"stdin is not valid UTF-8 (byte {error.start}); re-encode the input as UTF-8") from None
        return lines_of(decoded.removeprefix(BOM))  # a byte-order mark is not part of the first text
    raise NlpLstmError("no input texts; pass TEXT arguments, --input-file FILE, or pipe texts on stdin")


def argument_text(index: int, text: str) -> str:
    """A TEXT argument, refused like stdin when it is not valid UTF-8. Python keeps argv bytes that do
    not decode as lone surrogates (surrogateescape), which no tokenizer can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        try:
            given = text.encode("utf-8", "surrogateescape")  # the bytes as they were given
        except UnicodeEncodeError:  # a surrogate that is no escaped byte (a program calling the CLI)
            given = text.encode("utf-8", "backslashreplace")
        offset = len(text[: error.start].encode("utf-8"))
        raise NlpLstmError(
            f"text argument {index + 1} ({ascii(given)[2:-1][:80]}) is not valid UTF-8 (byte {offset}); "
            "re-encode it as UTF-8, or pass the texts as a UTF-8 --input-file"
        ) from None
    return text

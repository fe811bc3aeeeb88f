"""Option groups several commands share, each defined once.

`with_options(TRAINING, DATA, ...)` adds a group's options to a command's signature (Typer reads
`__signature__`) and hands the command their values as one `Options` object, so `train classifier`
and `train summarizer` (and `pretrain`) list the same options without repeating a line of them.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer


@dataclass(frozen=True)
class Option:
    name: str
    annotation: Any
    default: Any


def _group(*options: Option) -> tuple[Option, ...]:
    return options


DATA = _group(
    Option("train_file", Annotated[Optional[Path], typer.Option(
        "--train-file", help="Training data: csv, tsv, json, jsonl, parquet or txt (.gz allowed), or a save_to_disk directory.")], None),
    Option("validation_file", Annotated[Optional[Path], typer.Option(
        "--validation-file", help="Validation data; split off the training data when absent.")], None),
    Option("test_file", Annotated[Optional[Path], typer.Option(
        "--test-file", help="Test data; split off the training data when absent.")], None),
    Option("dataset", Annotated[Optional[str], typer.Option("--dataset", help="Hugging Face hub dataset name.")], None),
    Option("dataset_config", Annotated[Optional[str], typer.Option(
        "--dataset-config", help="Hub dataset configuration name.")], None),
    Option("validation_split", Annotated[Optional[str], typer.Option(
        "--validation-split", help="Hub split to validate on (name), or 'none'. Default: validation/valid/dev, else cut from train.")], None),
    Option("test_split", Annotated[Optional[str], typer.Option(
        "--test-split", help="Hub split to test on (name), or 'none'. Default: test (skipped when unlabelled), else cut from train.")], None),
    Option("streaming", Annotated[bool, typer.Option(
        "--streaming", help="Read the data as a stream (no cached copy of the raw texts); for corpora larger than memory.")], False),
)

TOKENIZER = _group(
    Option("tokenizer", Annotated[Optional[Path], typer.Option(
        "--tokenizer", "-t", help="Tokenizer directory; fitted on the training text when absent.")], None),
    Option("tokenizer_kind", Annotated[Optional[str], typer.Option(
        "--tokenizer-kind", help="When fitting: spacy | sentencepiece.")], None),
    Option("vocab_size", Annotated[Optional[int], typer.Option("--vocab-size", min=8, help="When fitting: largest vocabulary.")], None),
    Option("language", Annotated[str, typer.Option(
        "--language", help="spaCy tokenizer rules of this language (en, de, zh, ...); sentencepiece ignores it.")], "en"),
)

TRAINING = _group(
    Option("output_dir", Annotated[Path, typer.Option("--output-dir", "-o", help="Model directory to write.")], ...),
    Option("epochs", Annotated[Optional[int], typer.Option("--epochs", min=1, help="Most epochs (early stopping may end sooner).")], None),
    Option("batch_size", Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Examples per step.")], None),
    Option("learning_rate", Annotated[Optional[float], typer.Option("--learning-rate", "--lr", min=1e-12, help="Peak learning rate.")], None),
    Option("patience", Annotated[Optional[int], typer.Option("--patience", min=0, help="Epochs without improvement before stopping.")], None),
    Option("seed", Annotated[Optional[int], typer.Option("--seed", help="Seed for weights and data order.")], None),
    Option("precision", Annotated[Optional[str], typer.Option(
        "--precision", help="float32 | bfloat16 (autocast forward passes; for GPUs with bf16 units).")], None),
    Option("checkpoint_every", Annotated[Optional[int], typer.Option(
        "--checkpoint-every", min=0, help="Steps between checkpoints (0: each epoch end).")], None),
    Option("overrides", Annotated[Optional[List[str]], typer.Option(
        "--set", help="Override any setting: SECTION.KEY=VALUE, e.g. --set train.weight_decay=0.1 --set model.pooling=mean "
                      "(sections: model, train, decoding).")], None),
    Option("resume", Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in --output-dir.")], False),
    Option("overwrite", Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty output directory.")], False),
    Option("nproc_per_node", Annotated[int, typer.Option(
        "--nproc-per-node", min=1,
        help="Train with N processes on this machine (DDP; one per GPU): relaunches the command through torchrun. "
             "--batch-size is per process, so each step sees N x batch-size examples.")], 1),
)

RUNTIME = _group(
    Option("device", Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")], "auto"),
    Option("quiet", Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")], False),
    Option("debug", Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")], False),
    Option("threads", Annotated[Optional[int], typer.Option(
        "--threads", min=1, help="CPU threads for torch (default: every core on an idle machine, fewer when busy).")], None),
)

TRAINING_FIELDS = ("epochs", "batch_size", "learning_rate", "patience", "seed", "precision", "checkpoint_every")


class Options(dict):
    """The values of a command's shared options, by name (`options.epochs`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def training_settings(self) -> dict[str, Any]:
        """The training options the user gave (None = not given, the config's default stays)."""
        return {name: self[name] for name in TRAINING_FIELDS if self.get(name) is not None}


def with_options(*groups: tuple[Option, ...]) -> Callable:
    """Add the options of `groups` to a command; it receives them as `options: Options`."""
    shared = [option for group in groups for option in group]

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        extra = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, annotation=o.annotation,
                                   default=inspect.Parameter.empty if o.default is ... else o.default) for o in shared]
        # Required options first: Python signatures put parameters without defaults before the rest.
        params = sorted(own + extra, key=lambda p: (p.kind, p.default is not inspect.Parameter.empty))

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            options = Options({o.name: kwargs.pop(o.name) for o in shared})
            return command(*args, options=options, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate

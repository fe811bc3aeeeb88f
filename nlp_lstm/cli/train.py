import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import (Dataset, DatasetConfig, Debug, Device, LabelColumn, Overwrite, Quiet, Streaming, SummaryColumn,
                                 TestFile, TextColumn, Threads, TrainFile, ValidationFile, data_source, run_stage)

app = typer.Typer(help="Train a classifier or a summarizer.", no_args_is_help=True)

OutputDir = Annotated[Path, typer.Option("--output-dir", "-o", help="Model directory to write.")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Most epochs (early stopping may end sooner).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Examples per step.")]
LearningRate = Annotated[float, typer.Option("--learning-rate", "--lr", min=1e-12, help="Peak learning rate.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for weights and data order.")]
Patience = Annotated[int, typer.Option("--patience", min=0, help="Epochs without improvement before stopping.")]
HiddenSize = Annotated[int, typer.Option("--hidden-size", min=1, help="LSTM units per direction.")]
EmbeddingDim = Annotated[int, typer.Option("--embedding-dim", min=1, help="Embedding size.")]
NumLayers = Annotated[int, typer.Option("--num-layers", min=1, help="Stacked LSTM layers.")]
Dropout = Annotated[float, typer.Option("--dropout", min=0.0, max=0.99, help="Dropout rate.")]
Peephole = Annotated[str, typer.Option("--peephole", help="none (fused kernel) | diagonal | full.")]
TokenizerDir = Annotated[Optional[Path], typer.Option("--tokenizer", "-t", help="Tokenizer directory; fitted on the training text when absent.")]
TokenizerKind = Annotated[str, typer.Option("--tokenizer-kind", help="When fitting: spacy | sentencepiece.")]
VocabSize = Annotated[int, typer.Option("--vocab-size", min=8, help="When fitting: largest vocabulary.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in --output-dir.")]
Precision = Annotated[str, typer.Option(
    "--precision", help="float32 | bfloat16 (autocast forward passes; for GPUs with bf16 units).")]
CheckpointEvery = Annotated[int, typer.Option("--checkpoint-every", min=0, help="Steps between checkpoints (0: each epoch end).")]
NprocPerNode = Annotated[int, typer.Option(
    "--nproc-per-node", min=1,
    help="Train with N processes on this machine (DDP; one per GPU): relaunches the command through torchrun. "
         "--batch-size is per process, so each step sees N x batch-size examples.")]


def relaunch_with_torchrun(context: typer.Context, nproc_per_node: int) -> int:
    """Run this same command in `nproc_per_node` processes under torchrun on this machine; its exit code.

    `python -m torch.distributed.run --standalone --nproc-per-node N -m nlp_lstm.cli.main train <task>
    <the options given, minus --nproc-per-node>`, through `nlp_lstm.training.launch` (which keeps the
    workers' exit code and their one-line error). The options are rebuilt from the parsed values, so
    this works however the command was invoked (console script, `-m`, or a test's CliRunner).
    """
    args = ["train", context.info_name]
    for param in context.command.params:
        value = context.params.get(param.name)
        if param.name == "nproc_per_node" or value is None:
            continue
        source = context.get_parameter_source(param.name)
        if source is not None and source.name == "DEFAULT":
            continue
        if getattr(param, "is_flag", False):
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
            continue
        args += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "nlp_lstm.training.launch", str(nproc_per_node), *args]
    process = subprocess.Popen(command)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue  # the workers got the same Ctrl-C: they checkpoint and stop at a step boundary


def maybe_relaunch(context: typer.Context, nproc_per_node: int) -> None:
    """With --nproc-per-node > 1 outside torchrun, run the command under torchrun and exit with its code."""
    from nlp_lstm.training.distributed import launched_by_torchrun

    if nproc_per_node <= 1:
        return
    if launched_by_torchrun():
        typer.echo("error: --nproc-per-node is for a plain launch; under torchrun, give torchrun's own "
                   "--nproc-per-node and drop this one", err=True)
        raise typer.Exit(2)
    raise typer.Exit(relaunch_with_torchrun(context, nproc_per_node))


def is_main_process() -> bool:
    from nlp_lstm.training.distributed import launch_rank

    return launch_rank() == 0


@app.command("classifier")
def classifier_command(
    context: typer.Context,
    output_dir: OutputDir,
    train_file: TrainFile = None,
    validation_file: ValidationFile = None,
    test_file: TestFile = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    tokenizer: TokenizerDir = None,
    tokenizer_kind: TokenizerKind = "spacy",
    vocab_size: VocabSize = 20000,
    encoded: Annotated[Optional[Path], typer.Option("--encoded", help="Train from an `nlp-lstm encode` output instead of raw data.")] = None,
    embedding_dim: EmbeddingDim = 128,
    hidden_size: HiddenSize = 128,
    num_layers: NumLayers = 1,
    pooling: Annotated[str, typer.Option("--pooling", help="max | mean | last | attention.")] = "max",
    peephole: Peephole = "none",
    dropout: Dropout = 0.3,
    epochs: Epochs = 10,
    batch_size: BatchSize = 32,
    learning_rate: LearningRate = 2e-3,
    precision: Precision = "float32",
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Tokens kept per text.")] = 256,
    patience: Patience = 3,
    seed: Seed = 13,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = False,
    overwrite: Overwrite = False,
    device: Device = "auto",
    quiet: Quiet = False,
    streaming: Streaming = False,
    debug: Debug = False,
    threads: Threads = None,
    nproc_per_node: NprocPerNode = 1,
) -> None:
    """Train a BiLSTM text classifier from raw data to a saved model directory."""
    import nlp_lstm
    from nlp_lstm.config import TrainConfig

    maybe_relaunch(context, nproc_per_node)

    def action():
        source = None
        if encoded is None:
            source = data_source(dataset=dataset, dataset_config=dataset_config, train_file=train_file,
                                 validation_file=validation_file, test_file=test_file, text_column=text_column, streaming=streaming,
                                 label_column=label_column)
        metrics = nlp_lstm.train(
            output_dir=output_dir, source=source, encoded_dir=encoded, tokenizer_dir=tokenizer,
            tokenizer_settings={"kind": tokenizer_kind, "vocab_size": vocab_size},
            model={"embedding_dim": embedding_dim, "hidden_size": hidden_size, "num_layers": num_layers,
                   "pooling": pooling, "peephole": peephole, "dropout": dropout},
            training=TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                 patience=patience, max_length=max_length, checkpoint_every=checkpoint_every,
                                 precision=precision),
            overwrite=overwrite, resume=resume, device=device, progress=not quiet,
        )
        if not is_main_process():
            return  # under torchrun: rank 0 reports
        report = metrics.get("test", metrics["validation"])
        split = "test" if "test" in metrics else "validation"
        typer.echo(f"saved model to {output_dir} (best epoch {metrics['best_epoch']}, {metrics['train_seconds']} s)")
        typer.echo(f"{split}: accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")

    run_stage(action, debug=debug, quiet=quiet, threads=threads)


@app.command("summarizer")
def summarizer_command(
    context: typer.Context,
    output_dir: OutputDir,
    train_file: TrainFile = None,
    validation_file: ValidationFile = None,
    test_file: TestFile = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = "document",
    summary_column: SummaryColumn = "summary",
    tokenizer: TokenizerDir = None,
    tokenizer_kind: TokenizerKind = "sentencepiece",
    vocab_size: VocabSize = 8000,
    embedding_dim: EmbeddingDim = 128,
    hidden_size: HiddenSize = 256,
    attention: Annotated[str, typer.Option("--attention", help="additive (Bahdanau) | general (Luong).")] = "additive",
    copy: Annotated[bool, typer.Option("--copy/--no-copy", help="Pointer-generator copying.")] = True,
    coverage_from_epoch: Annotated[int, typer.Option("--coverage-from-epoch", min=0, help="Epoch from which the coverage loss is on (0: off).")] = 0,
    max_source_length: Annotated[int, typer.Option("--max-source-length", min=1, help="Source tokens kept.")] = 400,
    max_target_length: Annotated[int, typer.Option("--max-target-length", min=1, help="Summary tokens kept.")] = 30,
    epochs: Epochs = 10,
    batch_size: BatchSize = 32,
    learning_rate: LearningRate = 2e-3,
    precision: Precision = "float32",
    patience: Patience = 3,
    seed: Seed = 13,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = False,
    overwrite: Overwrite = False,
    device: Device = "auto",
    quiet: Quiet = False,
    streaming: Streaming = False,
    debug: Debug = False,
    threads: Threads = None,
    nproc_per_node: NprocPerNode = 1,
) -> None:
    """Train an attention LSTM summarizer with copy and coverage to a saved model directory."""
    import nlp_lstm
    from nlp_lstm.config import TrainConfig

    maybe_relaunch(context, nproc_per_node)

    def action():
        source = data_source(dataset=dataset, dataset_config=dataset_config, train_file=train_file,
                             validation_file=validation_file, test_file=test_file, text_column=text_column, streaming=streaming,
                             summary_column=summary_column)
        metrics = nlp_lstm.train_summarizer(
            output_dir=output_dir, source=source, tokenizer_dir=tokenizer,
            tokenizer_settings={"kind": tokenizer_kind, "vocab_size": vocab_size},
            model={"embedding_dim": embedding_dim, "hidden_size": hidden_size, "attention": attention, "copy": copy,
                   "coverage": coverage_from_epoch > 0},
            training=TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                 patience=patience, checkpoint_every=checkpoint_every,
                                 coverage_from_epoch=coverage_from_epoch, precision=precision),
            max_source_length=max_source_length, max_target_length=max_target_length,
            overwrite=overwrite, resume=resume, device=device, progress=not quiet,
        )
        if not is_main_process():
            return  # under torchrun: rank 0 reports
        report = metrics.get("test", metrics["validation"])
        typer.echo(f"saved model to {output_dir} (best epoch {metrics['best_epoch']}, {metrics['train_seconds']} s)")
        typer.echo(f"ROUGE-1/2/L {report['rouge1']:.2f} / {report['rouge2']:.2f} / {report['rougeL']:.2f}")

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

"""`nlp-lstm train classifier|summarizer`: parse options, build the typed configs, call the library."""

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, TOKENIZER, TRAINING, Options, with_options

app = typer.Typer(help="Train a classifier or a summarizer.", no_args_is_help=True)


def relaunch_with_torchrun(context: typer.Context, nproc_per_node: int) -> int:
    """Run this same command in `nproc_per_node` processes under torchrun on this machine; its exit code.

    `python -m torch.distributed.run --standalone --nproc-per-node N -m nlp_lstm.cli.main train <task>
    <the options given, minus --nproc-per-node>`, through `nlp_lstm.cli.launch` (which keeps the
    workers' exit code and their one-line error). The options are rebuilt from the parsed values, so
    this works however the command was invoked (console script, `-m`, or a test's CliRunner).
    """
    args, level = [], context
    while level.parent is not None:  # the subcommand names ("train", "classifier"), not the program's
        args.insert(0, level.info_name)
        level = level.parent
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
        for item in value if isinstance(value, (list, tuple)) else [value]:
            args += [param.opts[0], str(item)]
    command = [sys.executable, "-m", "nlp_lstm.cli.launch", str(nproc_per_node), *args]
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


def report_saved(options, metrics: dict) -> tuple[str, dict]:
    """Print where the model went (and the vectors' coverage); return the held-out split reported
    on (test when there is one) and its scores."""
    split = "test" if "test" in metrics else "validation"
    if "embeddings" in metrics:
        typer.echo(metrics["embeddings"]["coverage"])
    typer.echo(f"saved model to {options.output_dir} (best epoch {metrics['best_epoch']}, {metrics['train_seconds']} s)")
    return split, metrics[split]


def configs(model_class: type, model: dict, options: Options, *, decoding: dict | None = None,
            training_defaults: dict | None = None) -> dict:
    """The typed `model`, `train` (and `decoding`) sections from the options given over the task's
    defaults, then `--set` overrides."""
    from nlp_lstm.config import TrainConfig, apply_overrides, from_dict

    sections = {
        "model": from_dict(model_class, {k: v for k, v in model.items() if v is not None}, where="model options"),
        "train": from_dict(TrainConfig, {**(training_defaults or {}), **options.training_settings()},
                           where="training options"),
    }
    if decoding is not None:
        from nlp_lstm.decoding.beam_search import DecodeConfig

        sections["decoding"] = from_dict(DecodeConfig, decoding, where="decoding options")
    return apply_overrides(sections, options.overrides or [])


def tokenizer_settings(options: Options, *, kind: str, vocab_size: int) -> dict:
    return {"kind": options.tokenizer_kind or kind, "vocab_size": options.vocab_size or vocab_size,
            "lang": options.language}


@app.command("classifier")
@with_options(DATA, TOKENIZER, TRAINING, RUNTIME)
def classifier_command(
    context: typer.Context,
    options: Options,
    text_column: Annotated[str, typer.Option("--text-column", help="Column holding the input text.")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Column holding the label(s).")] = "label",
    label_separator: Annotated[Optional[str], typer.Option(
        "--label-separator", help="Multi-label from csv/tsv: labels joined by this string in one cell (e.g. '|').")] = None,
    encoded: Annotated[Optional[Path], typer.Option("--encoded", help="Train from an `nlp-lstm encode` output instead of raw data.")] = None,
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", min=1, help="Embedding size.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", min=1, help="LSTM units per direction.")] = None,
    num_layers: Annotated[Optional[int], typer.Option("--num-layers", min=1, help="Stacked LSTM layers.")] = None,
    pooling: Annotated[Optional[str], typer.Option("--pooling", help="max | mean | last | attention | concat (last, max and mean side by side).")] = None,
    peephole: Annotated[Optional[str], typer.Option("--peephole", help="none (fused kernel) | diagonal | full.")] = None,
    word_ngrams: Annotated[Optional[int], typer.Option(
        "--word-ngrams", min=0, max=5,
        help="Longest word n-gram of the TF-IDF linear part beside the BiLSTM (default 2); 0 turns it off.")] = None,
    char_ngrams: Annotated[Optional[int], typer.Option(
        "--char-ngrams", min=0, max=8, help="Longest character n-gram (from 2) of the linear part (default 5); 0: none.")] = None,
    dropout: Annotated[Optional[float], typer.Option("--dropout", min=0.0, max=0.99, help="Dropout rate.")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=1, help="Tokens kept per text.")] = None,
    embeddings: Annotated[Optional[Path], typer.Option(
        "--embeddings", help="Start the embedding from word vectors: GloVe/word2vec/fastText .txt/.vec(.gz), .bin, or .npy "
                             "with NAME.vocab.txt beside it (a word tokenizer over the vectors' words comes with them).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        "--init-from", help="Start from a language model directory (`nlp-lstm pretrain`): its tokenizer, embedding and encoder.")] = None,
) -> None:
    """Train a BiLSTM text classifier from raw data to a saved model directory."""
    maybe_relaunch(context, options.nproc_per_node)

    def action():
        import nlp_lstm
        from nlp_lstm.models.classifier import ClassifierConfig

        from nlp_lstm.stages.language_model import with_encoder_sizes

        model = {"embedding_dim": embedding_dim, "hidden_size": hidden_size, "num_layers": num_layers,
                 "pooling": pooling, "peephole": peephole, "dropout": dropout, "max_length": max_length,
                 "word_ngrams": word_ngrams, "char_ngrams": char_ngrams, "embeddings": None if embeddings is None else str(embeddings)}
        model = {key: value for key, value in model.items() if value is not None}
        if init_from is not None:
            model = with_encoder_sizes(init_from, model)  # sizes not given come from the language model
        from nlp_lstm.stages.classification import DEFAULT_TRAINING, with_vector_size
        from nlp_lstm.stages.run import DEFAULT_TOKENIZER

        if embeddings is not None:
            model = with_vector_size(embeddings, model)  # the embedding's size is the vectors'

        sections = configs(ClassifierConfig, model, options, training_defaults=DEFAULT_TRAINING)
        source = None if encoded is not None else data_source(
            options, text_column=text_column, label_column=label_column, label_separator=label_separator)
        metrics = nlp_lstm.train(
            output_dir=options.output_dir, source=source, encoded_dir=encoded, tokenizer_dir=options.tokenizer,
            tokenizer_settings=tokenizer_settings(options, **DEFAULT_TOKENIZER),
            model=sections["model"], training=sections["train"], overwrite=options.overwrite, resume=options.resume,
            device=options.device, progress=not options.quiet,
        )
        if not is_main_process():
            return  # under torchrun: rank 0 reports
        split, report = report_saved(options, metrics)
        typer.echo(f"{split}: accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)


@app.command("summarizer")
@with_options(DATA, TOKENIZER, TRAINING, RUNTIME)
def summarizer_command(
    context: typer.Context,
    options: Options,
    text_column: Annotated[str, typer.Option("--text-column", help="Column holding the source text.")] = "document",
    summary_column: Annotated[str, typer.Option("--summary-column", help="Column holding the reference summary.")] = "summary",
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", min=1, help="Embedding size.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", min=1, help="LSTM units per direction.")] = None,
    attention: Annotated[Optional[str], typer.Option("--attention", help="additive (Bahdanau) | general (Luong).")] = None,
    copy: Annotated[bool, typer.Option("--copy/--no-copy", help="Pointer-generator copying.")] = True,
    coverage_from_epoch: Annotated[int, typer.Option(
        "--coverage-from-epoch", min=0, help="Epoch from which the coverage loss is on (0: off).")] = 0,
    max_source_length: Annotated[Optional[int], typer.Option("--max-source-length", min=1, help="Source tokens kept.")] = None,
    max_target_length: Annotated[Optional[int], typer.Option("--max-target-length", min=1, help="Summary tokens kept.")] = None,
    beam_size: Annotated[int, typer.Option("--beam-size", min=1, help="Beam width saved with the model and used to score it.")] = 4,
) -> None:
    """Train an attention LSTM summarizer with copy and coverage to a saved model directory.

    Every decoding setting (length penalty, n-gram blocking, coverage penalty) can be set with
    --set decoding.KEY=VALUE; it is saved with the model and used by evaluate and summarize.
    """
    maybe_relaunch(context, options.nproc_per_node)

    def action():
        import nlp_lstm
        from nlp_lstm.models.summarizer import SummarizerConfig
        from nlp_lstm.stages.run import DEFAULT_TOKENIZER

        model = {"embedding_dim": embedding_dim, "hidden_size": hidden_size, "attention": attention, "copy": copy,
                 "coverage": coverage_from_epoch > 0, "coverage_from_epoch": coverage_from_epoch,
                 "max_source_length": max_source_length, "max_target_length": max_target_length}
        target = max_target_length or SummarizerConfig.max_target_length
        sections = configs(SummarizerConfig, model, options, decoding={"beam_size": beam_size, "max_length": target})
        source = data_source(options, text_column=text_column, summary_column=summary_column)
        metrics = nlp_lstm.train_summarizer(
            output_dir=options.output_dir, source=source, tokenizer_dir=options.tokenizer,
            tokenizer_settings=tokenizer_settings(options, **DEFAULT_TOKENIZER),
            model=sections["model"], training=sections["train"], decoding=sections["decoding"],
            overwrite=options.overwrite, resume=options.resume, device=options.device, progress=not options.quiet,
        )
        if not is_main_process():
            return  # under torchrun: rank 0 reports
        _, report = report_saved(options, metrics)
        typer.echo(f"ROUGE-1/2/L {report['rouge1']:.2f} / {report['rouge2']:.2f} / {report['rougeL']:.2f}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

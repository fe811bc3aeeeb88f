from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, TOKENIZER, TRAINING, Options, with_options
from nlp_lstm.cli.train import configs, is_main_process, maybe_relaunch, tokenizer_settings


@with_options(DATA, TOKENIZER, TRAINING, RUNTIME)
def pretrain_command(
    context: typer.Context,
    options: Options,
    text_column: Annotated[Optional[List[str]], typer.Option(
        "--text-column", help="Column(s) of unlabelled text; repeat for several (each text counts alone).")] = None,
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", min=1, help="Embedding size (the classifier's).")] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", min=1, help="LSTM units per direction (the classifier's).")] = None,
    num_layers: Annotated[Optional[int], typer.Option("--num-layers", min=1, help="Stacked LSTM layers (the classifier's).")] = None,
    weight_drop: Annotated[Optional[float], typer.Option("--weight-drop", min=0.0, max=0.99, help="DropConnect on hidden-to-hidden weights (AWD-LSTM).")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Tokens kept per text.")] = 128,
) -> None:
    """Pretrain a forward + backward LSTM language model on unlabelled text (for --init-from)."""
    maybe_relaunch(context, options.nproc_per_node)

    def action():
        import nlp_lstm
        from nlp_lstm.models.language_model import LanguageModelConfig
        from nlp_lstm.stages.run import DEFAULT_TOKENIZER

        sections = configs(LanguageModelConfig, {"embedding_dim": embedding_dim, "hidden_size": hidden_size,
                                                 "num_layers": num_layers, "weight_drop": weight_drop}, options)
        columns = text_column or ["text"]
        source = data_source(options, text_column=columns[0])
        metrics = nlp_lstm.pretrain(
            output_dir=options.output_dir, source=source, text_columns=columns, tokenizer_dir=options.tokenizer,
            tokenizer_settings=tokenizer_settings(options, **DEFAULT_TOKENIZER),
            model=sections["model"], training=sections["train"], max_length=max_length, overwrite=options.overwrite,
            resume=options.resume, device=options.device, progress=not options.quiet,
        )
        if not is_main_process():
            return
        report = metrics.get("test", metrics["validation"])
        typer.echo(f"saved language model to {options.output_dir} (best epoch {metrics['best_epoch']}, "
                   f"{metrics['train_seconds']} s)")
        typer.echo(f"perplexity {report['perplexity']:.1f} (forward {report['forward_perplexity']:.1f}, "
                   f"backward {report['backward_perplexity']:.1f})")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

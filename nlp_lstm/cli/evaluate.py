import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, Options, with_options


@with_options(DATA, RUNTIME)
def evaluate_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory.")],
    split: Annotated[str, typer.Option("--split", help="Split to score: train, validation or test (of --train-file: the seeded held-out rows).")] = "test",
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Input text column (default: the one the model was trained on).")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Classifier: label column (default: the model's).")] = None,
    summary_column: Annotated[Optional[str], typer.Option("--summary-column", help="Summarizer: reference column (default: the model's).")] = None,
    tokens_column: Annotated[Optional[str], typer.Option("--tokens-column", help="Tagger: token-list column (default: the model's).")] = None,
    tag_column: Annotated[Optional[str], typer.Option("--tag-column", help="Tagger: tag-list column; CoNLL-U: upos, xpos or misc:KEY (default: the model's).")] = None,
    feature_column: Annotated[Optional[str], typer.Option("--feature-column", help="Tagger: 0/1 per-token feature column (default: the model's).")] = None,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-k", min=1, help="Summarizer: beam width (default: saved with the model).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=1, help="Summarizer: most output tokens (default: saved).")] = None,
    shortlist: Annotated[Optional[int], typer.Option("--shortlist", min=0, help="Summarizer: generate only the N most likely pieces plus each text's own (0: whole vocabulary; default: saved).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
    plots_dir: Annotated[Optional[Path], typer.Option("--plots-dir", help="Write plots (confusion matrix, reliability diagram) here.")] = None,
    bf16_output: Annotated[bool, typer.Option("--bf16-output", help="Summarizer: decode with the output layer in bfloat16.")] = False,
) -> None:
    """Score a model on a split: accuracy and F1 (classifier), ROUGE with a lead baseline (summarizer), or token
    accuracy and span F1 (tagger)."""

    def action():
        from dataclasses import replace

        import nlp_lstm
        from nlp_lstm.data.sources import DataSource

        source = data_source(options, text_column=text_column or DataSource.text_column,
                             label_column=label_column or DataSource.label_column, summary_column=summary_column)
        source = replace(source, tokens_column=tokens_column, tag_column=tag_column, feature_column=feature_column)
        decoding = {key: value for key, value in {"beam_size": beam_size, "max_length": max_length,
                                                  "shortlist": shortlist}.items() if value is not None}
        metrics = nlp_lstm.evaluate(model, source, split=split, plots_dir=plots_dir, device=options.device,
                                    bf16_output=bf16_output, **decoding)
        if fmt == "json":
            typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
        else:
            _print_table(metrics)

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)


def _print_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics.get('split', '')} ({metrics.get('count', '?')} examples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
            table.add_row(key, "  ".join(f"{k} {v:.2f}" for k, v in value.items()))
    per_class = metrics.get("per_class") or metrics.get("spans", {}).get("per_type", {})  # a tagger's span types
    if per_class:
        for name, values in per_class.items():
            table.add_row(f"  {name}", f"P {values['precision']:.3f}  R {values['recall']:.3f}  F1 {values['f1']:.3f}  n {values['support']}")
    Console().print(table)

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import (Dataset, DatasetConfig, Debug, Device, Quiet, Streaming, Split, TestFile, Threads,
                                 ValidationFile, data_source, run_stage)


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory.")],
    test_file: TestFile = None,
    train_file: Annotated[Optional[Path], typer.Option("--train-file", help="Score the seeded held-out --split of this training file (the rows training set aside).")] = None,
    validation_file: ValidationFile = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    split: Split = "test",
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Input text column (default: the one the model was trained on).")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Classifier: label column.")] = None,
    summary_column: Annotated[Optional[str], typer.Option("--summary-column", help="Summarizer: reference column.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
    plots_dir: Annotated[Optional[Path], typer.Option("--plots-dir", help="Write plots (confusion matrix) here.")] = None,
    device: Device = "auto",
    quiet: Quiet = False,
    streaming: Streaming = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Score a model on a split: accuracy and F1 (classifier) or ROUGE with a lead baseline (summarizer)."""
    import nlp_lstm
    from nlp_lstm.model_dir import read_model_config

    def action():
        config = read_model_config(model)
        columns = config.get("columns", {})
        summarizer = config["kind"] == "summarizer"
        source = data_source(
            dataset=dataset, dataset_config=dataset_config, train_file=train_file, validation_file=validation_file,
            test_file=test_file, streaming=streaming,
            text_column=text_column or columns.get("text", "text"),
            label_column=None if summarizer else label_column or columns.get("label", "label"),
            summary_column=summary_column or columns.get("summary", "summary") if summarizer else None,
        )
        metrics = nlp_lstm.evaluate(model, source, split=split, plots_dir=plots_dir, device=device)
        if fmt == "json":
            typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
        else:
            _print_table(metrics)

    run_stage(action, debug=debug, quiet=quiet, threads=threads)


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
    if "per_class" in metrics:
        for name, values in metrics["per_class"].items():
            table.add_row(f"  {name}", f"P {values['precision']:.3f}  R {values['recall']:.3f}  F1 {values['f1']:.3f}  n {values['support']}")
    Console().print(table)

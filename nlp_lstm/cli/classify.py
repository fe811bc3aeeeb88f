from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import Debug, Device, Quiet, Threads, read_inputs, run_stage
from nlp_lstm.cli.output import check_format, print_rows


def classify_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Classifier model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to classify (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table | json | jsonl.")] = "table",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")] = 64,
    int8: Annotated[bool, typer.Option("--int8", help="Dynamic int8 quantization of the LSTM and head (CPU).")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Predict a label and score for each text."""
    import nlp_lstm

    def action():
        rows = nlp_lstm.classify(model, read_inputs(texts, input_file), device=device, batch_size=batch_size,
                                 int8=int8)
        columns = ["text", "labels", "scores"] if rows and "labels" in rows[0] else ["text", "label", "score"]
        print_rows(rows, fmt=fmt, columns=columns)

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import read_inputs, run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options
from nlp_lstm.cli.output import check_format, print_rows


@with_options(RUNTIME)
def classify_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Classifier model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to classify (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table | json | jsonl.")] = "table",
    runtime: Annotated[str, typer.Option("--runtime", help="torch | onnx (the graphs `nlp-lstm export` wrote).")] = "torch",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")] = 64,
    int8: Annotated[bool, typer.Option("--int8", help="Dynamic int8 quantization of the LSTM and head (CPU).")] = False,
) -> None:
    """Predict a label and score for each text (one output per input line)."""

    def action():
        import nlp_lstm

        rows = nlp_lstm.classify(model, read_inputs(texts, input_file), device=options.device, batch_size=batch_size,
                                 int8=int8, runtime=runtime)
        columns = ["text", "labels", "scores"] if rows and "labels" in rows[0] else ["text", "label", "score"]
        print_rows(rows, fmt=fmt, columns=columns)

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

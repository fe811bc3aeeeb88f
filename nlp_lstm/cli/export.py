from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import Debug, Overwrite, Quiet, Threads, run_stage
from nlp_lstm.errors import NlpLstmError

FORMATS = ("onnx",)


def export_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory (classifier or summarizer).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: onnx.")] = "onnx",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the graphs (default: MODEL/onnx).")] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Export a model's graphs for ONNX Runtime (then: classify / summarize --runtime onnx)."""

    def action():
        if fmt not in FORMATS:
            raise NlpLstmError(f"--format {fmt!r} is not supported; use one of: {', '.join(FORMATS)}")
        from nlp_lstm.inference.onnx import export_onnx

        written = export_onnx(model, output, overwrite=overwrite)
        typer.echo(f"wrote ONNX graphs and onnx.json to {written}")

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

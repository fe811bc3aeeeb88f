from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options
from nlp_lstm.errors import NlpLstmError

FORMATS = ("onnx",)


@with_options(RUNTIME)
def export_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory (classifier or summarizer).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: onnx.")] = "onnx",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the graphs (default: MODEL/onnx).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export.")] = False,
) -> None:
    """Export a model's graphs for ONNX Runtime (then: classify / summarize / serve --runtime onnx)."""

    def action():
        if fmt not in FORMATS:
            raise NlpLstmError(f"--format {fmt!r} is not supported; use one of: {', '.join(FORMATS)}")
        import nlp_lstm

        written = nlp_lstm.export_onnx(model, output, overwrite=overwrite)
        typer.echo(f"wrote ONNX graphs and onnx.json to {written}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

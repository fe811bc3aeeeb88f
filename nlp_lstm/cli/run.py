import json
from pathlib import Path
from typing import Annotated

import typer

from nlp_lstm.cli.common import Debug, Device, Quiet, Threads, run_stage


def run_command(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline file, e.g. pipelines/sentiment.toml.")],
    force: Annotated[bool, typer.Option("--force", help="Rerun every stage, even unchanged ones.")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Run the stages a pipeline file declares, skipping those whose inputs are unchanged."""
    from nlp_lstm.pipeline import run_pipeline

    def action():
        metrics = run_pipeline(pipeline, force=force, device=device, progress=not quiet,
                               echo=lambda line: typer.echo(line, err=True))
        summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or k == "lead_baseline"}
        typer.echo(json.dumps(summary, indent=2))

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

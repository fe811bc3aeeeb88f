import json
from pathlib import Path
from typing import Annotated

import typer

from nlp_lstm.cli.common import run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options


@with_options(RUNTIME)
def run_command(
    options: Options,
    pipeline: Annotated[Path, typer.Argument(help="Pipeline file, e.g. pipelines/sentiment.toml.")],
    force: Annotated[bool, typer.Option("--force", help="Rerun every stage, even unchanged ones.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Let stages replace existing directories that "
                                            "`run` did not make (by default they are refused).")] = False,
) -> None:
    """Run the stages a pipeline file declares, skipping those whose inputs are unchanged."""

    def action():
        import nlp_lstm

        metrics = nlp_lstm.run_pipeline(pipeline, force=force, overwrite=overwrite, device=options.device, progress=not options.quiet,
                                        echo=lambda line: typer.echo(line, err=True))
        summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or k == "lead_baseline"}
        typer.echo(json.dumps(summary, indent=2))

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import read_inputs, run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options

FORMATS = ("table", "json")


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}")
    return value


@with_options(RUNTIME)
def explain_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Classifier, summarizer or tagger model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to explain (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    label: Annotated[Optional[str], typer.Option("--label", "-l", help="Classifiers: the label to explain (default: the predicted one).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Classifiers: the most gradient evaluations of integrated gradients per text (1 to 4096; default 256).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table (a readable view) | json.")] = "table",
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML page of the explanations.")] = None,
) -> None:
    """Show why a model answered as it did: signed word attributions (classifiers), attention and copying
    (summarizers), each token's tag probability and the runner-up (taggers)."""

    def action():
        import json

        import nlp_lstm
        from nlp_lstm.artifacts import atomic_write_text
        from nlp_lstm.inference.explain_html import explanations_html
        from nlp_lstm.inference.explain_terminal import print_explanations

        results = nlp_lstm.explain(model, read_inputs(texts, input_file), device=options.device, label=label, steps=steps)
        if html is not None:
            atomic_write_text(html, explanations_html(results))
        if fmt == "json":
            typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
        else:
            print_explanations(results)

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

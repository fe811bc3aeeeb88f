from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import read_inputs, run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options
from nlp_lstm.cli.output import check_format, print_rows, print_tagged


@with_options(RUNTIME)
def tag_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Tagger model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to tag (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    pretokenized: Annotated[bool, typer.Option("--pretokenized", help="Each text is tokens separated by whitespace (else spaCy's rules of the model's language split it).")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table | json | jsonl.")] = "table",
    runtime: Annotated[str, typer.Option("--runtime", help="torch | onnx (the emission graph `nlp-lstm export` wrote).")] = "torch",
    no_confidences: Annotated[bool, typer.Option("--no-confidences", help="Skip the per-token and per-span probabilities (faster).")] = False,
) -> None:
    """Tag the tokens of each text: tags, a confidence per token, and spans with character offsets."""

    def action():
        import nlp_lstm

        rows = nlp_lstm.tag(model, read_inputs(texts, input_file), pretokenized=pretokenized,
                            confidences=not no_confidences, device=options.device, runtime=runtime)
        if fmt == "table":
            print_tagged(rows)
        else:
            print_rows(rows, fmt=fmt, columns=[])

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import Debug, Device, Quiet, Threads, read_inputs, run_stage
from nlp_lstm.cli.output import check_format, print_rows


def summarize_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Summarizer model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to summarize (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table | json | jsonl.")] = "table",
    beam_size: Annotated[int, typer.Option("--beam-size", "-k", min=1, help="Beam width (1: greedy).")] = 4,
    min_length: Annotated[int, typer.Option("--min-length", min=0, help="Fewest output tokens.")] = 1,
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Most output tokens.")] = 30,
    attention_plot: Annotated[Optional[Path], typer.Option("--attention-plot", help="Write a PNG heatmap of the first text's attention.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts decoded together.")] = 32,
    device: Device = "auto",
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Write a short summary of each text."""
    import nlp_lstm

    def action():
        rows = nlp_lstm.summarize(
            model, read_inputs(texts, input_file), beam_size=beam_size, min_length=min_length, max_length=max_length,
            attention_plot=attention_plot, device=device, batch_size=batch_size,
        )
        print_rows(rows, fmt=fmt, columns=["text", "summary"])

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

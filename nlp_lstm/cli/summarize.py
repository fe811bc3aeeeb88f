from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import read_inputs, run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options
from nlp_lstm.cli.output import check_format, print_rows


@with_options(RUNTIME)
def summarize_command(
    options: Options,
    model: Annotated[Path, typer.Option("--model", "-m", help="Summarizer model directory.")],
    texts: Annotated[Optional[List[str]], typer.Argument(help="Texts to summarize (else --input-file or stdin).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input-file", "-i", help="txt (one per line), csv, json or jsonl with a 'text' column.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", callback=check_format, help="table | json | jsonl.")] = "table",
    runtime: Annotated[str, typer.Option("--runtime", help="torch | onnx (the graphs `nlp-lstm export` wrote).")] = "torch",
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-k", min=1, help="Beam width, 1: greedy (default: saved with the model).")] = None,
    min_length: Annotated[Optional[int], typer.Option("--min-length", min=0, help="Fewest output tokens (default: saved).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=1, help="Most output tokens (default: saved).")] = None,
    length_penalty: Annotated[Optional[float], typer.Option("--length-penalty", min=0.0, help="Wu et al. (2016) alpha, 0: off (default: saved).")] = None,
    no_repeat_ngram_size: Annotated[Optional[int], typer.Option("--no-repeat-ngram-size", min=0, help="Block repeated n-grams, 0: off (default: saved).")] = None,
    coverage_penalty: Annotated[Optional[float], typer.Option("--coverage-penalty", min=0.0, help="Wu et al. (2016) beta, 0: off (default: saved).")] = None,
    shortlist: Annotated[Optional[int], typer.Option("--shortlist", min=0, help="Generate only the N most likely pieces plus each text's own (faster; 0: whole vocabulary; default: saved).")] = None,
    attention_plot: Annotated[Optional[Path], typer.Option("--attention-plot", help="Write a PNG heatmap of the first text's attention.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts decoded together.")] = 32,
    bf16_output: Annotated[bool, typer.Option("--bf16-output", help="Output layer in bfloat16: faster decoding on CPUs with bfloat16 units; summaries may differ slightly.")] = False,
) -> None:
    """Write a short summary of each text (one output per input line)."""

    def action():
        import nlp_lstm

        rows = nlp_lstm.summarize(
            model, read_inputs(texts, input_file), attention_plot=attention_plot, device=options.device,
            batch_size=batch_size, runtime=runtime, bf16_output=bf16_output, beam_size=beam_size,
            min_length=min_length, max_length=max_length,
            length_penalty=length_penalty, no_repeat_ngram_size=no_repeat_ngram_size, coverage_penalty=coverage_penalty,
            shortlist=shortlist,
        )
        print_rows(rows, fmt=fmt, columns=["text", "summary"])

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

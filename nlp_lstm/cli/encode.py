from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, Options, with_options


@with_options(DATA, RUNTIME)
def encode_command(
    options: Options,
    tokenizer: Annotated[Path, typer.Option("--tokenizer", "-t", help="Tokenizer directory (from `nlp-lstm vocab`).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to save the encoded splits.")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column holding the input text.")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Column holding the label(s).")] = "label",
    label_separator: Annotated[Optional[str], typer.Option(
        "--label-separator", help="Multi-label from csv/tsv: labels joined by this string in one cell (e.g. '|').")] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Tokens kept per text.")] = 256,
    word_ngrams: Annotated[int, typer.Option(
        "--word-ngrams", min=0, max=5, help="Longest word n-gram of the classifier's linear part; 0: none.")] = 2,
    char_ngrams: Annotated[int, typer.Option(
        "--char-ngrams", min=0, max=8, help="Longest character n-gram (from 2) of the linear part; 0: none.")] = 5,
    num_proc: Annotated[Optional[int], typer.Option(
        "--num-proc", min=1, help="Processes that encode in parallel (datasets map num_proc); for large corpora on many cores.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty output directory.")] = False,
) -> None:
    """Tokenize a dataset's splits into ids and save them as Arrow datasets."""

    def action():
        import nlp_lstm

        source = data_source(options, text_column=text_column, label_column=label_column, label_separator=label_separator)
        encoded = nlp_lstm.encode(source, tokenizer, output_dir, max_length=max_length, word_ngrams=word_ngrams, char_ngrams=char_ngrams,
                                  num_proc=num_proc, overwrite=overwrite)
        sizes = ", ".join(f"{split} {len(data)}" for split, data in encoded.items())
        typer.echo(f"encoded {sizes} to {output_dir}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

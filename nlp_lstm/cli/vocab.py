from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, Options, with_options


@with_options(DATA, RUNTIME)
def vocab_command(
    options: Options,
    name: Annotated[str, typer.Option("--name", "-n", help="Saved as vocab/NAME/ unless --output-dir is given.")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column holding the input text.")] = "text",
    summary_column: Annotated[Optional[str], typer.Option("--summary-column", help="Also fit on this column (summarization).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="spacy (words) | sentencepiece (subwords).")] = "spacy",
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=8, help="Largest vocabulary, specials included.")] = 20000,
    min_freq: Annotated[int, typer.Option("--min-freq", min=1, help="spacy: keep words seen at least this often.")] = 2,
    lowercase: Annotated[bool, typer.Option("--lowercase/--keep-case", help="Lower-case text before tokenizing.")] = True,
    model_type: Annotated[str, typer.Option("--model-type", help="sentencepiece: unigram | bpe.")] = "unigram",
    language: Annotated[str, typer.Option(
        "--language", help="spacy: the language whose tokenizer rules apply (en, de, fr, zh, ...).")] = "en",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Where to save the tokenizer.")] = None,
) -> None:
    """Fit a tokenizer on a dataset's training text and save it under vocab/NAME/."""

    def action():
        import nlp_lstm

        source = data_source(options, text_column=text_column, summary_column=summary_column)
        target = output_dir or Path("vocab") / name
        tokenizer = nlp_lstm.vocab(source, target, kind=kind, vocab_size=vocab_size, min_freq=min_freq,
                                   lowercase=lowercase, model_type=model_type, language=language)
        typer.echo(f"saved {tokenizer.kind} tokenizer ({tokenizer.vocab_size} tokens) to {target}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import (Dataset, DatasetConfig, Debug, Quiet, Streaming, SummaryColumn, TextColumn, Threads,
                                 TrainFile, data_source, run_stage)


def vocab_command(
    name: Annotated[str, typer.Option("--name", "-n", help="Saved as vocab/NAME/ unless --output-dir is given.")],
    train_file: TrainFile = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = "text",
    summary_column: Annotated[Optional[str], typer.Option("--summary-column", help="Also fit on this column (summarization).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="spacy (words) | sentencepiece (subwords).")] = "spacy",
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=8, help="Largest vocabulary, specials included.")] = 20000,
    min_freq: Annotated[int, typer.Option("--min-freq", min=1, help="spacy: keep words seen at least this often.")] = 2,
    lowercase: Annotated[bool, typer.Option("--lowercase/--keep-case", help="Lower-case text before tokenizing.")] = True,
    model_type: Annotated[str, typer.Option("--model-type", help="sentencepiece: unigram | bpe.")] = "unigram",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Where to save the tokenizer.")] = None,
    quiet: Quiet = False,
    streaming: Streaming = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Fit a tokenizer on a dataset's training text and save it under vocab/NAME/."""
    import nlp_lstm

    def action():
        source = data_source(dataset=dataset, dataset_config=dataset_config, train_file=train_file, validation_file=None,
                             test_file=None, text_column=text_column, summary_column=summary_column,
                             streaming=streaming)
        target = output_dir or Path("vocab") / name
        tokenizer = nlp_lstm.vocab(source, target, kind=kind, vocab_size=vocab_size, min_freq=min_freq,
                                   lowercase=lowercase, model_type=model_type)
        typer.echo(f"saved {tokenizer.kind} tokenizer ({tokenizer.vocab_size} tokens) to {target}")

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

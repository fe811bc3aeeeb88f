from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import (Dataset, DatasetConfig, Debug, LabelColumn, Overwrite, Quiet, Streaming, TestFile, TextColumn,
                                 Threads, TrainFile, ValidationFile, data_source, run_stage)


def encode_command(
    tokenizer: Annotated[Path, typer.Option("--tokenizer", "-t", help="Tokenizer directory (from `nlp-lstm vocab`).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to save the encoded splits.")],
    train_file: TrainFile = None,
    validation_file: ValidationFile = None,
    test_file: TestFile = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Tokens kept per text.")] = 256,
    num_proc: Annotated[Optional[int], typer.Option(
        "--num-proc", min=1, help="Processes that encode in parallel (datasets map num_proc); for large corpora on many cores.")] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    streaming: Streaming = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Tokenize a dataset's splits into ids and save them as Arrow datasets."""
    import nlp_lstm

    def action():
        source = data_source(dataset=dataset, dataset_config=dataset_config, train_file=train_file,
                             validation_file=validation_file, test_file=test_file, text_column=text_column, streaming=streaming,
                             label_column=label_column)
        encoded = nlp_lstm.encode(source, tokenizer, output_dir, max_length=max_length, num_proc=num_proc,
                                  overwrite=overwrite)
        sizes = ", ".join(f"{split} {len(data)}" for split, data in encoded.items())
        typer.echo(f"encoded {sizes} to {output_dir}")

    run_stage(action, debug=debug, quiet=quiet, threads=threads)

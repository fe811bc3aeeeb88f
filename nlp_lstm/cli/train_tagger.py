"""`nlp-lstm train tagger`: parse options, build the typed configs, call `nlp_lstm.train_tagger`."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from nlp_lstm.cli.common import data_source, run_stage
from nlp_lstm.cli.options import DATA, RUNTIME, TRAINING, Options, with_options
from nlp_lstm.cli.train import configs, is_main_process, maybe_relaunch, report_saved


@with_options(DATA, TRAINING, RUNTIME)
def train_tagger_command(
    context: typer.Context,
    options: Options,
    tokens_column: Annotated[Optional[str], typer.Option(
        "--tokens-column", help="jsonl/parquet/hub: the column of token lists (default: tokens).")] = None,
    tag_column: Annotated[Optional[str], typer.Option(
        "--tag-column", help="jsonl/parquet/hub: the column of tag lists (default: tags); CoNLL-U: upos, xpos or "
                             "misc:KEY (default: upos).")] = None,
    feature_column: Annotated[Optional[str], typer.Option(
        "--feature-column", help="jsonl/parquet/hub: a column of 0/1 per token (such as a predicate indicator).")] = None,
    decoder: Annotated[Optional[str], typer.Option("--decoder", help="crf | softmax.")] = None,
    embedding_dim: Annotated[Optional[int], typer.Option("--embedding-dim", min=1, help="Word embedding size.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option("--hidden-size", min=1, help="LSTM units per direction.")] = None,
    num_layers: Annotated[Optional[int], typer.Option("--num-layers", min=1, help="Stacked BiLSTM layers.")] = None,
    dropout: Annotated[Optional[float], typer.Option("--dropout", min=0.0, max=0.99, help="Dropout rate.")] = None,
    embeddings: Annotated[Optional[Path], typer.Option(
        "--embeddings", help="Start the word embedding from word vectors: GloVe/word2vec/fastText .txt/.vec(.gz), "
                             ".bin, or .npy with NAME.vocab.txt beside it (their size sets --embedding-dim).")] = None,
    language: Annotated[str, typer.Option(
        "--language", help="spaCy tokenizer rules that split raw text into words when tagging (xx: multi-language).")] = "xx",
) -> None:
    """Train a BiLSTM-CRF sequence tagger (parts of speech, named entities) from tagged sentences:
    CoNLL (.conll, token and tag columns), CoNLL-U (.conllu), or jsonl/parquet token and tag lists."""
    maybe_relaunch(context, options.nproc_per_node)

    def action():
        from dataclasses import replace

        import nlp_lstm
        from nlp_lstm.models.tagger import TaggerConfig
        from nlp_lstm.stages.tagging import DEFAULT_TRAINING

        model = {"decoder": decoder, "embedding_dim": embedding_dim, "hidden_size": hidden_size, "num_layers": num_layers,
                 "dropout": dropout, "embeddings": None if embeddings is None else str(embeddings), "language": language}
        sections = configs(TaggerConfig, model, options, training_defaults=DEFAULT_TRAINING)
        source = replace(data_source(options, text_column="text"), tokens_column=tokens_column, tag_column=tag_column,
                         feature_column=feature_column)
        metrics = nlp_lstm.train_tagger(
            output_dir=options.output_dir, source=source, model=sections["model"], training=sections["train"],
            overwrite=options.overwrite, resume=options.resume, device=options.device, progress=not options.quiet,
        )
        if not is_main_process():
            return  # under torchrun: rank 0 reports
        split, report = report_saved(options, metrics)
        line = f"{split}: token accuracy {report['token_accuracy']:.4f}"
        if "span_f1" in report:
            line += f"  span F1 {report['span_f1']:.4f} (P {report['span_precision']:.4f}, R {report['span_recall']:.4f})"
        typer.echo(f"{line}  ECE {report['ece']:.4f}")

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)

"""The `vocab` stage: fit a tokenizer on a dataset's training text and save it (`vocab/<name>/`)."""

from __future__ import annotations

from pathlib import Path

from nlp_lstm.data.columns import iter_texts
from nlp_lstm.data.sources import DataSource, load_split
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.tokenizers import fit_tokenizer


def vocab(source: DataSource, output_dir: str | Path, *, kind: str = "spacy", vocab_size: int = 20000,
          min_freq: int = 2, lowercase: bool = True, model_type: str = "unigram", language: str = "en") -> Tokenizer:
    """Fit a tokenizer on the training split's text (and summary) column and save it to `output_dir`."""
    train = load_split(source, "train")
    columns = [c for c in (source.text_column, source.summary_column) if c]
    tokenizer = fit_tokenizer(
        iter_texts(train, columns), kind=kind, vocab_size=vocab_size, min_freq=min_freq, lowercase=lowercase,
        model_type=model_type, lang=language,
    )
    tokenizer.save(Path(output_dir))
    return tokenizer

"""A tagger's splits from a `DataSource`: local files by extension (CoNLL, CoNLL-U, jsonl/parquet
token and tag lists) or a hub dataset (`Sequence(ClassLabel)` tags), read by `data/conll.py`.

A missing validation or test split is cut from train by the same seeded rule as every other kind
(`data/splits.split_indices`), so a sentence's split depends only on (file, split seed, fractions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nlp_lstm.data.conll import CONLL_SUFFIXES, CONLLU_COLUMNS, CONLLU_SUFFIXES, TaggedCorpus, from_dataset, read_tagged_file
from nlp_lstm.data.sources import SPLITS, DataSource, check_source, load_hub
from nlp_lstm.data.splits import split_indices
from nlp_lstm.errors import NlpLstmError

DEFAULT_TOKENS_COLUMN = "tokens"
DEFAULT_TAG_COLUMN = "tags"
DEFAULT_CONLLU_COLUMN = "upos"


def reads_conllu(path) -> bool:
    return str(path).lower().removesuffix(".gz").endswith(CONLLU_SUFFIXES)


def conllu_choice(column: str) -> bool:
    """A tag column that names a CoNLL-U field (upos, xpos, misc:KEY), not a table column."""
    return column.lower() in CONLLU_COLUMNS or column.lower().startswith("misc:")


def tag_columns(source: DataSource) -> dict[str, str]:
    """The columns a tagger reads from `source`, defaults filled in (what `config.json` records)."""
    conllu = bool(source.train_file) and reads_conllu(source.train_file)
    columns = {"tokens": source.tokens_column or DEFAULT_TOKENS_COLUMN,
               "tags": source.tag_column or (DEFAULT_CONLLU_COLUMN if conllu else DEFAULT_TAG_COLUMN)}
    if source.feature_column:
        columns["features"] = source.feature_column
    return columns


def with_saved_columns(source: DataSource, saved: dict[str, str]) -> DataSource:
    """`source` with the columns it leaves unset taken from a model's `config.json` columns; a saved
    tag column is used only where it fits the files (a CoNLL-U field for CoNLL-U files, else a column)."""
    tags = source.tag_column
    if tags is None and saved.get("tags"):
        files = [source.file_for(split) for split in SPLITS if source.file_for(split)]
        conllu = bool(files) and all(reads_conllu(path) for path in files)
        tags = saved["tags"] if conllu == conllu_choice(saved["tags"]) else None
    return replace(source, tokens_column=source.tokens_column or saved.get("tokens"), tag_column=tags,
                   feature_column=source.feature_column or saved.get("features"))


def _read_file(path: str, source: DataSource) -> TaggedCorpus:
    name = str(path).lower().removesuffix(".gz")
    if source.feature_column and name.endswith(CONLL_SUFFIXES + CONLLU_SUFFIXES):
        raise NlpLstmError(f"--feature-column {source.feature_column!r} reads jsonl/parquet rows, but {path} is a "
                           "CoNLL file; give the data as jsonl with token, tag and feature lists")
    return read_tagged_file(path, tokens_column=source.tokens_column or DEFAULT_TOKENS_COLUMN,
                            tags_column=source.tag_column or DEFAULT_TAG_COLUMN, feature_column=source.feature_column,
                            conllu_column=source.tag_column or DEFAULT_CONLLU_COLUMN)


def _select(corpus: TaggedCorpus, rows) -> TaggedCorpus:
    rows = [int(row) for row in rows]
    features = None if corpus.features is None else [corpus.features[row] for row in rows]
    return TaggedCorpus([corpus.tokens[row] for row in rows], [corpus.tags[row] for row in rows], features)


def load_tagged_splits(source: DataSource, *, splits: Sequence[str] = SPLITS) -> dict[str, TaggedCorpus]:
    """The requested splits that exist or can be cut from train, as `TaggedCorpus`es.

    Raises:
        NlpLstmError: no data, hub failure, a bad file or row (`data/conll.py` names it), no train
            split to cut a missing one from.
    """
    check_source(source, splits)
    missing = [split for split in splits if split != "train"]
    wanted = set(splits) | ({"train"} if any(not source.file_for(s) for s in missing) else set())
    raw: dict[str, TaggedCorpus] = {}
    if source.dataset:
        for split, data in load_hub(source).items():
            if split in wanted:
                raw[split] = from_dataset(data, tokens_column=source.tokens_column or DEFAULT_TOKENS_COLUMN,
                                          tags_column=source.tag_column or DEFAULT_TAG_COLUMN,
                                          feature_column=source.feature_column,
                                          where=f"{source.describe()} split {split!r}")
    else:
        for split in SPLITS:
            path = source.file_for(split)
            if path and split in wanted:
                raw[split] = _read_file(path, source)
    cut = [split for split in ("validation", "test")
           if split in wanted and split not in raw and not source.split_disabled(split)]
    if cut:
        if "train" not in raw:
            raise NlpLstmError(f"{source.describe()} has no train split to cut {', '.join(cut)} from; "
                               f"give the {' and '.join(cut)} file (--{cut[0]}-file)")
        indices = split_indices(len(raw["train"]), seed=source.split_seed,
                                test_fraction=source.test_fraction if "test" in cut else 0.0,
                                validation_fraction=source.validation_fraction if "validation" in cut else 0.0)
        train = raw["train"]
        for split, rows in indices.items():
            raw[split] = _select(train, rows)
    result = {split: raw[split] for split in splits if split in raw}
    for split in splits:
        if split not in result and (len(splits) == 1 or split == "train"):
            raise NlpLstmError(f"{source.describe()} has no {split} split; give --{split}-file")
    return result

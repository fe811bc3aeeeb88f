"""Tagged sentences from files and datasets: CoNLL column files, CoNLL-U, JSON Lines / parquet with
token-list and tag-list columns, and Hugging Face datasets whose tags are `Sequence(ClassLabel)`.

Every reader gives a `TaggedCorpus`: per sentence its tokens, its tags (names, never ids) and, when
asked for, a 0/1 feature per token (such as the predicate indicator of He et al. 2017). Tagging
corpora are small (10^3-10^5 sentences), so they are held as Python lists.

- CoNLL (`*.conll`, `*.tsv`, `*.txt`, optionally `.gz`): one token per line, columns separated by
  tabs (or, in a file without tabs, by spaces), the token first and the tag last (two columns; the
  four of CoNLL-2003 read the same way); a blank line ends a sentence; `-DOCSTART-` lines are skipped.
- CoNLL-U (`*.conllu`, optionally `.gz`): ten tab-separated columns; the tag is UPOS, XPOS, or the
  value of a `KEY=` field of MISC (`misc:NER`). Multiword-token ranges (`1-2`) and empty nodes
  (`1.1`) are skipped: tags belong to syntactic words.
- Datasets (`datasets.Dataset`, read from jsonl/json/parquet by `data/files.py` or from the hub):
  `tokens_column` a list of strings per row, `tags_column` a list of strings or of `ClassLabel` ids.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from nlp_lstm.data.files import check_file, load_file
from nlp_lstm.errors import NlpLstmError

DOCSTART = "-DOCSTART-"
CONLL_SUFFIXES = (".conll", ".tsv", ".txt", ".iob", ".bio")
CONLLU_SUFFIXES = (".conllu",)
CONLLU_COLUMNS = {"upos": 3, "xpos": 4}


@dataclass
class TaggedCorpus:
    """Sentences as parallel lists; `features` is None without a feature column."""

    tokens: list[list[str]]
    tags: list[list[str]]
    features: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.tokens)


def _lines(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\n").rstrip("\r")
    except UnicodeDecodeError:
        raise NlpLstmError(f"{path} is not UTF-8 text; re-encode it as UTF-8") from None
    except (OSError, EOFError) as error:
        raise NlpLstmError(f"cannot read {path} ({error}); check the file") from None


def read_conll(path) -> TaggedCorpus:
    """Sentences of a CoNLL column file (module doc).

    Raises:
        NlpLstmError: a line whose column count differs from the file's first token line, or a line
            with one column (no tag); both name the line.
    """
    path = check_file(path)
    corpus = TaggedCorpus([], [])
    tokens: list[str] = []
    tags: list[str] = []
    columns = None

    def end_sentence() -> None:
        if tokens:
            corpus.tokens.append(list(tokens))
            corpus.tags.append(list(tags))
        tokens.clear()
        tags.clear()

    for number, line in _lines(path):
        if not line.strip():
            end_sentence()
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if fields[0] == DOCSTART:
            end_sentence()
            continue
        if columns is None:
            columns = len(fields)
        if len(fields) < 2 or len(fields) != columns:
            raise NlpLstmError(f"{path} line {number} has {len(fields)} column(s) where the file has {max(columns, 2)} "
                               "(token ... tag); fix that line (a token with a space inside? separate columns by tabs)")
        tokens.append(fields[0])
        tags.append(fields[-1])
    end_sentence()
    if not corpus.tokens:
        raise NlpLstmError(f"{path} holds no tagged tokens; is it a CoNLL file (token and tag per line)?")
    return corpus


def read_conllu(path, column: str = "upos") -> TaggedCorpus:
    """Sentences of a CoNLL-U file, tagged with `column`: "upos", "xpos" or "misc:KEY".

    Raises:
        NlpLstmError: an unknown column; a token line without ten columns; a token whose requested
            column is empty (`_`) or whose MISC has no `KEY=`; each names the line.
    """
    path = check_file(path)
    choice = column.lower()
    misc_key = column.split(":", 1)[1] if choice.startswith("misc:") else None
    if misc_key is None and choice not in CONLLU_COLUMNS or misc_key == "":
        raise NlpLstmError(f"CoNLL-U tag column {column!r} is unknown; use upos, xpos or misc:KEY (such as misc:NER)")
    corpus = TaggedCorpus([], [])
    for rows in conllu_sentences(path):
        corpus.tokens.append([fields[1] for _, fields in rows])
        corpus.tags.append([_conllu_tag(fields, column, misc_key, where=f"{path} line {number}") for number, fields in rows])
    if not corpus.tokens:
        raise NlpLstmError(f"{path} holds no token lines; is it a CoNLL-U file?")
    return corpus


def conllu_sentences(path):
    """Each sentence of a CoNLL-U file as `[(line number, its ten fields), ...]`, syntactic words
    only: multiword-token ranges (`1-2`) and empty nodes (`1.1`) are skipped.

    Raises:
        NlpLstmError: a token line without ten tab-separated columns (names the line).
    """
    path = check_file(path)
    rows: list[tuple[int, list[str]]] = []
    for number, line in [*_lines(path), (None, "")]:
        if not line.strip():
            if rows:
                yield rows
            rows = []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise NlpLstmError(f"{path} line {number} has {len(fields)} tab-separated columns, CoNLL-U has 10; "
                               "fix the line (spaces instead of tabs?)")
        if "-" in fields[0] or "." in fields[0]:
            continue  # a multiword token's range, or an empty node: not a syntactic word of the sentence
        rows.append((number, fields))


def _conllu_tag(fields: list[str], column: str, misc_key: str | None, *, where: str) -> str:
    if misc_key is None:
        value = fields[CONLLU_COLUMNS[column.lower()]]
        if value == "_":
            raise NlpLstmError(f"{where} has no {column.upper()} ('_'); pick another tag column (upos, xpos, misc:KEY)")
        return value
    for item in fields[9].split("|"):
        key, equals, value = item.partition("=")
        if equals and key == misc_key:
            return value
    raise NlpLstmError(f"{where} has no {misc_key}= in its MISC column ({fields[9]!r}); "
                       f"tag every token with {misc_key}=..., or pick another tag column")


def from_dataset(dataset, *, tokens_column: str = "tokens", tags_column: str = "tags",
                 feature_column: str | None = None, where: str = "the data") -> TaggedCorpus:
    """Sentences of a `datasets.Dataset` with token-list and tag-list columns (module doc).

    Raises:
        NlpLstmError: a missing column (lists those there are); a text column where tokens are
            expected; a row whose token, tag and feature lists differ in length, or with no tokens
            (each names the row).
    """
    import datasets

    names = list(dataset.column_names)
    for role, name in (("tokens", tokens_column), ("tags", tags_column), ("feature", feature_column)):
        if name is not None and name not in names:
            option = {"tokens": "--tokens-column", "tags": "--tag-column", "feature": "--feature-column"}[role]
            raise NlpLstmError(f"{where} has no {role} column {name!r}; its columns are {', '.join(names)}: "
                               f"name the one that holds the {role} with {option}")
    tokens_feature = dataset.features[tokens_column]
    if isinstance(tokens_feature, datasets.Value):
        raise NlpLstmError(f"column {tokens_column!r} of {where} holds {tokens_feature.dtype} values, not token lists; "
                           "a tagger reads one list of tokens per row: split the text into words first "
                           "(or point --tokens-column at the token-list column)")
    tags_feature = dataset.features[tags_column]
    inner = getattr(tags_feature, "feature", None)
    names_of = inner.names if isinstance(inner, datasets.ClassLabel) else None  # conll2003 / wikiann: ids -> names
    corpus = TaggedCorpus([], [], [] if feature_column else None)
    columns = [tokens_column, tags_column] + ([feature_column] if feature_column else [])
    for row, values in enumerate(_rows(dataset, columns)):
        tokens, tags = values[0], values[1]
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise NlpLstmError(f"row {row} of {where}: column {tokens_column!r} is not a list of strings; "
                               "give one list of tokens per row")
        if not tokens:
            raise NlpLstmError(f"row {row} of {where} has no tokens; drop empty sentences from the data")
        if len(tags) != len(tokens):
            raise NlpLstmError(f"row {row} of {where} has {len(tokens)} tokens but {len(tags)} tags; "
                               "give exactly one tag per token")
        if names_of is not None:
            tags = [names_of[index] for index in tags]
        elif not all(isinstance(tag, str) for tag in tags):
            raise NlpLstmError(f"row {row} of {where}: column {tags_column!r} holds {type(tags[0]).__name__} values "
                               "without tag names; give tag names, or a Sequence(ClassLabel) column")
        corpus.tokens.append(tokens)
        corpus.tags.append(list(tags))
        if feature_column:
            feature = values[2]
            if len(feature) != len(tokens) or any(value not in (0, 1, True, False) for value in feature):
                raise NlpLstmError(f"row {row} of {where}: feature column {feature_column!r} needs one 0 or 1 per "
                                   f"token ({len(tokens)}), got {feature!r}"[:300])
            corpus.features.append([int(value) for value in feature])
    if not corpus.tokens:
        raise NlpLstmError(f"{where} has no rows")
    return corpus


def _rows(dataset, columns: list[str]):
    for batch in dataset.select_columns(columns).iter(batch_size=1000):
        yield from zip(*(batch[name] for name in columns))


def read_tagged_file(path, *, tokens_column: str = "tokens", tags_column: str = "tags",
                     feature_column: str | None = None, conllu_column: str = "upos") -> TaggedCorpus:
    """A tagged corpus from a file, its format from the name: CoNLL, CoNLL-U, or any file
    `data/files.py` reads (jsonl, json, parquet, csv ...) with token-list and tag-list columns."""
    path = check_file(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(CONLLU_SUFFIXES):
        return read_conllu(path, conllu_column)
    if name.endswith(CONLL_SUFFIXES):
        return read_conll(path)
    return from_dataset(load_file(path), tokens_column=tokens_column, tags_column=tags_column,
                        feature_column=feature_column, where=str(path))

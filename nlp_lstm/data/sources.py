"""Where the examples come from: a hub dataset or local files, their columns, and fixed splits.

`load_splits(DataSource(...))` gives a `datasets.DatasetDict` with "train", "validation" and "test",
whichever exist, each with the text column as strings (None -> ""), and the label / summary columns
checked. Data stays in Arrow (memory-mapped); nothing here builds Python lists of a corpus.

With `DataSource(streaming=True)` the splits are `datasets.IterableDataset`s read from the files (or
the hub) as they are iterated (`load_dataset(..., streaming=True)`): no Arrow copy of the raw corpus
is written or mapped, and the split cut is the same rows as without streaming (`split_bounds`).
"""

from __future__ import annotations


import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nlp_lstm.data.columns import Binarize, is_stream, prepare_split, prepare_stream, unlabelled
from nlp_lstm.data.files import is_arrow_dir, load_file
from nlp_lstm.data.splits import cut_stream, split_indices
from nlp_lstm.errors import NlpLstmError

SPLITS = ("train", "validation", "test")
# Hub datasets name their held-out splits in more than one way.
_SPLIT_ALIASES = {"validation": ("validation", "valid", "dev", "val"), "test": ("test",), "train": ("train",)}


@dataclass
class DataSource:
    """A hub dataset (`dataset`, `dataset_config`) or local files, and which columns mean what.

    Missing validation/test splits are cut from train; see `load_splits` for the exact rule.
    """

    dataset: str | None = None
    dataset_config: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str = "text"
    label_column: str | None = "label"
    summary_column: str | None = None
    binarize: Binarize | None = None  # when set, writes the label into label_column
    split_seed: int = 13
    validation_fraction: float = 0.1  # of train, when there is no validation split/file
    test_fraction: float = 0.1  # of train, when there is no test split/file (0 disables)
    streaming: bool = False  # read as a stream (IterableDataset): nothing of the raw corpus is cached
    # Hub splits to validate / test on, by name ("none": no such split, nothing cut from train either).
    validation_split: str | None = None
    test_split: str | None = None
    label_separator: str | None = None  # multi-label from csv/tsv: "sports|politics" -> two labels
    # A tagger's columns (`data/conll.py`): token lists, and tag lists (a CoNLL-U file: upos, xpos or
    # misc:KEY); None: the model's, else "tokens" / "tags" (CoNLL-U: upos). An optional 0/1 per token.
    tokens_column: str | None = None
    tag_column: str | None = None
    feature_column: str | None = None

    def without_labels(self) -> "DataSource":
        """This source read by a kind that has no labels (summarizer, language model): the default
        `label_column` ("label", the classifier's) and any `binarize` mean nothing there."""
        if self.label_column is None and self.binarize is None:
            return self
        return replace(self, label_column=None, binarize=None)

    def split_disabled(self, split: str) -> bool:
        return {"validation": self.validation_split, "test": self.test_split}.get(split) == "none"

    def file_for(self, split: str) -> str | None:
        return {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}[split]

    def describe(self) -> str:
        if self.dataset:
            return f"dataset {self.dataset!r}" + (f" ({self.dataset_config})" if self.dataset_config else "")
        return ", ".join(f"{s} file {self.file_for(s)}" for s in SPLITS if self.file_for(s)) or "no data"


def load_hub(source: DataSource) -> dict:
    """The hub dataset's train, validation and test splits (by their usual names or the ones chosen)."""
    import datasets

    try:
        loaded = datasets.load_dataset(source.dataset, source.dataset_config, streaming=source.streaming)
    except Exception as error:  # offline, ConnectionError, unknown name or config, auth, script errors
        message = (str(error).strip().splitlines() or [""])[0][:200]
        raise NlpLstmError(
            f"cannot load {source.describe()} from the Hugging Face hub ({type(error).__name__}: {message}); "
            "check the name and network, or give local files with --train-file"
        ) from None
    splits = {}
    for split, aliases in _SPLIT_ALIASES.items():
        chosen = {"validation": source.validation_split, "test": source.test_split}.get(split)
        if chosen == "none":
            continue
        if chosen is not None:
            if chosen not in loaded:
                raise NlpLstmError(f"{source.describe()} has no split {chosen!r}; it has {', '.join(loaded)}")
            splits[split] = loaded[chosen]
            continue
        for alias in aliases:
            if alias in loaded:
                splits[split] = loaded[alias]
                break
    return splits


def check_source(source: DataSource, splits: Sequence[str]) -> None:
    """One line for a source that cannot give `splits`: an unknown split, both or neither of a hub
    dataset and files, a held-out fraction outside [0, 1)."""
    for split in splits:
        if split not in SPLITS:
            raise NlpLstmError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    has_files = any(source.file_for(s) for s in SPLITS)
    if source.dataset and has_files:
        raise NlpLstmError(f"give either a hub dataset ({source.dataset!r}) or local files, not both")
    if not source.dataset and not has_files:
        raise NlpLstmError("no data source: give a hub dataset name (--dataset) or local files (--train-file)")
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(source, name)
        if not 0.0 <= value < 1.0:
            raise NlpLstmError(f"{name} must be in [0, 1), got {value}")
    if source.validation_fraction + source.test_fraction >= 1.0:
        raise NlpLstmError(
            f"validation_fraction + test_fraction must be below 1, got {source.validation_fraction} + {source.test_fraction}"
        )
    if source.binarize is not None and not source.label_column:
        raise NlpLstmError("binarize writes its label into label_column: set a label column name (e.g. 'label')")


def load_splits(source: DataSource, *, splits: Sequence[str] = SPLITS):
    """Load the requested splits of `source` as a `datasets.DatasetDict`.

    Splits come from the hub dataset's own splits or from train/validation/test files. A requested
    validation or test split that has neither is cut from train with `split_indices`:
    rows ordered by a fixed hash of (split_seed, row number); the first
    `max(1, round(test_fraction * N))` are test, the next `max(1, round(validation_fraction * N))`
    validation, the rest train (N = rows of train; each block keeps file order). With the defaults and
    one file that is a fixed 80/10/10 split. A fraction of 0 disables that split: it is left out of the
    result (and `load_split` of it raises). The cut is made before `binarize` drops near-neutral rows,
    so a row's split never depends on label settings.

    Raises:
        NlpLstmError: bad or missing file, hub failure, unknown column (lists the available ones),
            empty split, invalid UTF-8 (names file and line).
    """
    import datasets

    splits = tuple(splits)
    check_source(source, splits)
    if source.dataset:
        raw = load_hub(source)
        origin = {s: f"{source.describe()} split {s!r}" for s in raw}
    else:
        needs_train = any(not source.file_for(s) for s in splits) or "train" in splits
        raw, origin = {}, {}
        for split in SPLITS:
            path = source.file_for(split)
            if path and (split in splits or (split == "train" and needs_train)):
                raw[split] = load_file(path, split=split, streaming=source.streaming)
                origin[split] = str(path)

    result = {}
    hash_ranges: dict[str, tuple[int, int]] = {}
    missing = [s for s in splits if s not in raw and s != "train"]
    if "train" in splits or missing:
        if "train" not in raw:
            raise NlpLstmError(
                f"{source.describe()} has no train split to use or to cut {', '.join(missing) or 'train'} from; "
                f"give --train-file or the {', '.join(missing)} file"
            )
        train = raw["train"]
        cut = {s for s in ("validation", "test") if s not in raw and not source.split_disabled(s)}
        if cut and is_stream(train):
            hash_ranges = cut_stream(
                train, column=source.text_column, seed=source.split_seed,
                test_fraction=source.test_fraction if "test" in cut else 0.0,
                validation_fraction=source.validation_fraction if "validation" in cut else 0.0,
            )
            for split in hash_ranges:
                raw[split] = train
                if split != "train":
                    origin[split] = f"{origin['train']} ({split} rows cut with split_seed={source.split_seed})"
        elif cut:
            if len(train) == 0:
                raise NlpLstmError(f"the train split ({origin['train']}) is empty; give a file with data rows")
            indices = split_indices(
                len(train),
                seed=source.split_seed,
                test_fraction=source.test_fraction if "test" in cut else 0.0,
                validation_fraction=source.validation_fraction if "validation" in cut else 0.0,
            )
            for split, rows in indices.items():
                raw[split] = train.select(rows)
                if split != "train":
                    origin[split] = f"{origin['train']} ({split} rows cut with split_seed={source.split_seed})"
    for split in splits:
        if split not in raw:
            if split in ("validation", "test"):
                fraction_name = f"{split}_fraction"
                if (getattr(source, fraction_name) == 0 or source.split_disabled(split)) and len(splits) > 1:
                    continue  # disabled on purpose
                raise NlpLstmError(
                    f"{source.describe()} has no {split} split and {fraction_name} is 0; "
                    f"give --{split}-file or a {fraction_name} above 0"
                )
            raise NlpLstmError(f"{source.describe()} has no {split} split; give --{split}-file")
        if is_stream(raw[split]):
            result[split] = prepare_stream(raw[split], source, origin[split], hash_ranges.get(split))
        else:
            result[split] = prepare_split(raw[split], source, split, origin[split])
            if split != "train" and len(splits) > 1 and unlabelled(result[split], source.label_column):
                # GLUE-style hub test splits carry label -1 everywhere: nothing to score against.
                warnings.warn(f"{origin[split]} has no labels: it is left out (choose another with --{split}-split)")
                del result[split]
    if source.streaming:
        for split, stream in result.items():  # what `encode` names its Arrow output after (no re-reading)
            stream._fingerprint = stream_fingerprint(source, split)
        return datasets.IterableDatasetDict(result)
    return datasets.DatasetDict(result)


def file_digest(path: str | None) -> str | None:
    """A file's content hash (its name and time are no input: a clone elsewhere hashes the same);
    a path that is no file (a `save_to_disk` directory, a hub name) stands for itself."""
    if not path or not Path(path).is_file():
        return path
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_fingerprint(source: DataSource) -> str:
    """Names a source by its settings and its files' contents, never their location or time: the
    pipeline's stage markers and a `tune` study are stamped with it."""
    from dataclasses import asdict

    files = {f"{split}_file": file_digest(source.file_for(split)) for split in SPLITS}
    payload = json.dumps([{**asdict(source), **files}], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stream_fingerprint(source: DataSource, split: str) -> str:
    """Names a streamed split by its settings and its files' sizes and times, so an encoded copy is
    reused until a file (or a setting) changes. Hub streams are named by dataset and config."""
    from dataclasses import asdict

    files = []
    for name in SPLITS:
        path = source.file_for(name)
        if path:
            marker = Path(path)
            if is_arrow_dir(marker):
                marker = next(m for m in (marker / "state.json", marker / "dataset_dict.json") if m.is_file())
            stat = marker.stat()
            files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"source": asdict(source), "split": split, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def load_split(source: DataSource, split: str):
    """One split, the same rows as `load_splits(source)[split]` (e.g. to evaluate on test only)."""
    return load_splits(source, splits=(split,))[split]

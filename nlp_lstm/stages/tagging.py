"""The tagger's stages: `train_tagger` (through the shared skeleton, `stages/run.py`) and `evaluate_tagger`.

A tagger's model directory:
    config.json           kind "tagger", `model` = the `TaggerConfig` (tags, sizes, language), `labels` =
                          the tag names in id order, `columns` = {"tokens", "tags"[, "features"]}, `training`
    model.safetensors     the `SequenceTagger`'s weights
    tagging_vocab.json    the word, character and tag vocabularies (`data/tagging.py`, `VOCAB_FILE`)
plus metrics.json, README.md (the model card), plots/ and the training log, as for every kind.

Tags are checked and repaired once per split as conlleval reads them (`metrics.spans.prepare_tags`:
`O I-X` -> `O B-X`), and said once. Scores: `training/tagging.py`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch

from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.conll import TaggedCorpus
from nlp_lstm.data.sources import DataSource
from nlp_lstm.data.spacy_rules import spacy_tokenizer
from nlp_lstm.data.tagged_sources import load_tagged_splits, tag_columns, with_saved_columns
from nlp_lstm.data.tagging import VOCAB_FILE, TaggingVocab, fit_with_vectors, load_vocab, save_vocab
from nlp_lstm.devices import pick_device
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.spans import prepare_tags
from nlp_lstm.model_dir import ModelFile, load_state, read_model_config, save_model
from nlp_lstm.models.tagger import TAGGER_TRAINING, SequenceTagger, TaggerConfig
from nlp_lstm.plots import plot_confusion_matrix, plot_reliability_diagram
from nlp_lstm.stages.run import StageKind, score_dataset, train_stage
from nlp_lstm.training import distributed
from nlp_lstm.training.loop import TrainResult
from nlp_lstm.training.tagging import TaggingTask, corpus_dataset, span_types

# What the tagger trains with unless told otherwise: the recipe its defaults were chosen with
# (models/tagger.py TAGGER_TRAINING; BENCHMARKS.md "Tagger defaults"), as `TrainConfig` settings.
DEFAULT_TRAINING = {"epochs": TAGGER_TRAINING["max_epochs"], "batch_size": TAGGER_TRAINING["batch_size"],
                    "learning_rate": TAGGER_TRAINING["learning_rate"], "weight_decay": 0.0, "schedule": "constant",
                    "clip_norm": TAGGER_TRAINING["clip_norm"], "patience": TAGGER_TRAINING["patience"]}
FEATURE_EMBEDDING_DIM = 16  # a feature column given with feature_embedding_dim left at 0
MIN_WORD_COUNT = TAGGER_TRAINING["min_count"]  # training words seen fewer times reach the model as <unk> plus their characters


def default_training(**settings: Any) -> TrainConfig:
    return from_dict(TrainConfig, {**DEFAULT_TRAINING, **settings}, where="training settings")


def prepared_tags(corpora: dict[str, TaggedCorpus], *, describe: str) -> str:
    """Check and repair every split's tags in place; the scheme. One warning per split that was repaired.

    Raises:
        NlpLstmError: a split mixes schemes, or a held-out split's tags are of another scheme than train's.
    """
    scheme = None
    for split, corpus in corpora.items():
        try:
            split_scheme, corpus.tags, message = prepare_tags(corpus.tags, where=f"{describe} ({split})")
        except NlpLstmError as error:  # "row N ...": N counts the split's sentences, which a cut split renumbers
            found = re.match(r"row (\d+) (.*)", str(error), flags=re.DOTALL)
            if found is None:
                raise
            words = " ".join(corpus.tokens[int(found.group(1))][:8])
            raise NlpLstmError(f"{describe} ({split}): the sentence {words!r} {found.group(2)}") from None
        if message and distributed.is_main():  # said once, not by every torchrun rank
            warnings.warn(message, stacklevel=2)
        if scheme is None:
            scheme = split_scheme
        elif split_scheme != scheme and span_types(corpus.tags):
            raise NlpLstmError(f"the {split} split's tags are {split_scheme} but the train split's are {scheme}; "
                               "use one tag scheme in every split")
    return scheme or "plain"


@dataclass
class TaggerData:
    """What `TaggingStage.prepare` gives the skeleton."""

    corpora: dict[str, TaggedCorpus]
    encoded: dict[str, datasets.Dataset]
    vocab: TaggingVocab
    scheme: str
    vectors: torch.Tensor | None = None  # (words, dim) initial word embedding
    coverage: Any = None


@dataclass
class TaggingStage:
    """Train a BiLSTM-CRF (or softmax) `SequenceTagger` from tagged sentences."""

    model: TaggerConfig
    training: TrainConfig
    source: DataSource
    plots: bool = True  # False: no plots in the model directory (`tune`'s trials)

    def describe_data(self) -> tuple[str, str | None]:
        return self.source.describe(), self.source.dataset

    def prepare(self, output: Path, *, reuse_tokenizer: bool) -> TaggerData:
        corpora = load_tagged_splits(self.source)
        if "validation" not in corpora:
            raise NlpLstmError("no validation split; give --validation-file or leave validation_fraction > 0")
        scheme = prepared_tags(corpora, describe=self.source.describe())
        train = list(zip(corpora["train"].tokens, corpora["train"].tags))
        kept = output / "checkpoints" / VOCAB_FILE  # --resume and DDP ranks other than 0 reuse rank 0's ids
        vectors = coverage = None
        if self.model.embeddings:
            vocab, vectors, coverage = fit_with_vectors(train, self.model.embeddings, min_count=MIN_WORD_COUNT,
                                                        lang=self.model.language, seed=self.training.seed)
        elif reuse_tokenizer and kept.is_file():
            vocab = load_vocab(kept.parent)
        else:
            vocab = TaggingVocab.fit(train, min_count=MIN_WORD_COUNT)
        save_vocab(kept.parent, vocab)
        encoded = {split: corpus_dataset(corpus) for split, corpus in corpora.items()}
        return TaggerData(corpora, encoded, vocab, scheme, vectors, coverage)

    def config(self, prepared: TaggerData) -> TaggerConfig:
        vocab = prepared.vocab
        sizes: dict[str, Any] = {"tags": list(vocab.tags), "vocab_size": len(vocab.words),
                                 "char_vocab_size": len(vocab.chars)}
        if prepared.vectors is not None:
            sizes["embedding_dim"] = int(prepared.vectors.shape[1])  # the vectors decide it
        if self.source.feature_column and not self.model.feature_embedding_dim:
            sizes["feature_embedding_dim"] = FEATURE_EMBEDDING_DIM
        return replace(self.model, **sizes)

    def build(self, prepared: TaggerData) -> SequenceTagger:
        network = SequenceTagger(self.config(prepared))
        if prepared.vectors is not None:
            network.load_word_vectors(prepared.vectors, freeze=self.model.freeze_embeddings)
        return network

    def task(self, prepared: TaggerData) -> TaggingTask:
        types = span_types([tags for corpus in prepared.corpora.values() for tags in corpus.tags])
        return TaggingTask(prepared.vocab, scheme=prepared.scheme, types=types)

    def finish(self, network: SequenceTagger, prepared: TaggerData, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]:
        task = self.task(prepared)
        metrics: dict[str, Any] = {"scheme": prepared.scheme}
        if prepared.coverage is not None:
            coverage = prepared.coverage
            metrics["embeddings"] = {"found": coverage.found, "lowercased": coverage.lowercased,
                                     "missing": coverage.missing, "coverage": coverage.describe()}
        for split in ("validation", "test"):
            if split in prepared.encoded:
                metrics[split] = score_dataset(network, task, prepared.encoded[split], device)
        model_file = ModelFile(kind="tagger", model=network.config, training=self.training,
                               labels=list(prepared.vocab.tags), columns=tag_columns(self.source))
        save_model(staging, model_file=model_file, state=network.state_dict(), tokenizer=None)
        save_vocab(staging, prepared.vocab)
        if self.plots:
            write_plots(metrics.get("test", metrics["validation"]), prepared.vocab.tags, staging / "plots")
        return metrics


def write_plots(scores: dict[str, Any], tags: list[str], directory: Path) -> None:
    """The reliability diagram of the token marginals, and the confusion of span types (span tags)
    or of tags (plain tags)."""
    plot_reliability_diagram(scores["reliability"], directory / "reliability_diagram.png",
                             title="Token marginals")
    if "spans" in scores:
        table = scores["spans"]["confusion"]
        labels = sorted(set(table) | {p for row in table.values() for p in row})
        matrix = [[table.get(gold, {}).get(predicted, 0) for predicted in labels] for gold in labels]
        if labels:
            plot_confusion_matrix(matrix, labels, directory / "span_confusion.png", title="Span types (O: no span)")
    elif len(tags) <= 60:
        plot_confusion_matrix(scores["tag_confusion"], tags, directory / "tag_confusion.png", title="Tags")


def check_language(language: str) -> None:
    """The word tokenizer's language must be one spaCy has rules for (a blank pipeline, no download)."""
    try:
        spacy_tokenizer(language)
    except NlpLstmError:
        raise NlpLstmError(f"unknown spaCy language {language!r} for the tagger's word tokenizer; give --language an "
                           "ISO code spaCy has rules for, such as en, de, tr, or xx (multi-language)") from None


def tag_scheme(source: DataSource) -> str:
    """The scheme of the train split's tags: "plain" (parts of speech), or a span scheme (BIO, BIOES)."""
    corpora = load_tagged_splits(source, splits=("train",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repairs are said when the data is prepared
        return prepared_tags(corpora, describe=source.describe())


def tagger_source(source: DataSource) -> DataSource:
    """`source` as a tagger reads it: no label column (the classifier's default means nothing here)."""
    return source.without_labels()


def train_tagger(*, output_dir: str | Path, source: DataSource, model: TaggerConfig | dict[str, Any] | None = None,
                 training: TrainConfig | dict[str, Any] | None = None, overwrite: bool = False, resume: bool = False,
                 device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train a sequence tagger from tagged sentences into the model directory `output_dir`.

    `source` names CoNLL / CoNLL-U / jsonl / parquet files or a hub dataset and its columns
    (`tokens_column`, `tag_column`: for CoNLL-U upos, xpos or misc:KEY, `feature_column`). `model` is
    a `TaggerConfig` or a dict of its fields (its `tags` and vocabulary sizes come from the data;
    `embeddings` a word vectors file to start from); `training` a `TrainConfig` or dict (defaults:
    `DEFAULT_TRAINING`). Returns the metrics: `best_epoch`, `stop_reason`, `train_seconds`, `scheme`,
    and `validation` (and `test`): token accuracy, span scores for span tags, ECE of token marginals.
    """
    if source is None:
        raise NlpLstmError("train_tagger needs a data source (--train-file or --dataset)")
    if not isinstance(model, TaggerConfig):
        model = from_dict(TaggerConfig, model or {}, where="model settings")
    if not isinstance(training, TrainConfig):
        training = default_training(**(training or {}))
    check_language(model.language)  # refused now, not after training
    if source.streaming:
        raise NlpLstmError("a tagger reads its corpus into memory (tagging corpora are small); drop --streaming")
    if model.feature_embedding_dim and not source.feature_column:
        raise NlpLstmError(f"feature_embedding_dim is {model.feature_embedding_dim} but no --feature-column is given; "
                           "name the 0/1 feature column, or leave feature_embedding_dim at 0")
    stage = TaggingStage(model=model, training=training, source=tagger_source(source))
    return train_stage(stage, output_dir=output_dir, overwrite=overwrite, resume=resume, device=device,
                       progress=progress)


def load_tagger(model_dir: str | Path, *, device: torch.device) -> tuple[SequenceTagger, TaggingVocab, ModelFile]:
    """A saved tagger's network (eval mode, on `device`), vocabulary and config."""
    model_file = read_model_config(model_dir, expect="tagger")
    vocab = load_vocab(model_dir)
    if list(vocab.tags) != list(model_file.model.tags):
        raise NlpLstmError(f"{Path(model_dir) / VOCAB_FILE} does not belong to {Path(model_dir) / 'config.json'} "
                           "(their tags differ); copy the whole model directory")
    network = SequenceTagger(model_file.model)
    load_state(Path(model_dir), network)
    return network.to(device).eval(), vocab, model_file


def evaluate_tagger(model_dir: str | Path, source: DataSource, *, split: str = "test",
                    plots_dir: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Score a saved tagger on one split: token accuracy; for span tags strict span P/R/F1 (micro,
    macro, per type, as seqeval's strict mode) and the confusion of span types; ECE of the token
    marginals. Columns left unset are the ones the model was trained on. `plots_dir` receives a
    reliability diagram and a confusion plot."""
    torch_device = pick_device(device)
    network, vocab, model_file = load_tagger(model_dir, device=torch_device)
    source = with_saved_columns(tagger_source(source), model_file.columns)
    corpora = load_tagged_splits(source, splits=(split,))
    scheme = prepared_tags(corpora, describe=source.describe())
    model_scheme = model_file.model.scheme
    if span_types(corpora[split].tags) and scheme != model_scheme:
        raise NlpLstmError(f"the {split} split's tags are {scheme} but the model's are {model_scheme}; "
                           "score it on data tagged in the model's scheme")
    task = TaggingTask(vocab, scheme=model_scheme, types=span_types(corpora[split].tags))
    data = corpus_dataset(corpora[split])
    metrics = score_dataset(network, task, data, torch_device)
    metrics.update(split=split, count=len(data), scheme=model_scheme)
    if plots_dir is not None:
        write_plots(metrics, vocab.tags, Path(plots_dir))
    return metrics


# --- what `nlp-lstm run` and `evaluate` do for a tagger (`stages/kinds.py`) ---------------------------

def _pipeline_train(pipe, *, source: DataSource, model_dir: Path, vocab_dir: Path, encoded_dir: Path, device: str,
                    progress: bool) -> None:
    train_tagger(output_dir=model_dir, source=source, model=pipe.model, training=pipe.train, overwrite=True,
                 device=device, progress=progress)


def _finish_pipeline(sections: dict[str, Any], file: Path) -> None:
    sections["data"] = tagger_source(sections["data"])  # TOML has no null to unset the default label column


STAGE = StageKind(kind="tagger", evaluate=evaluate_tagger, pipeline_train=_pipeline_train,
                  pipeline_inputs=lambda pipe: (), finish_pipeline=_finish_pipeline,
                  training_defaults=DEFAULT_TRAINING)

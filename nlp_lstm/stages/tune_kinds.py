"""What `tune` needs to know about each model kind, registered once by name (`TUNE_KINDS`).

A kind plugs in with one `TuneKind`: its `[model]` config class, the training and tokenizer defaults
its `train` command uses (so a trial with no searched setting is exactly `nlp-lstm train KIND`), a
default search space, the validation metric to maximise, the model fields its encoded data depends
on, how to build its `TrainingStage` (`stages/run.py`) and how to score a saved model on a split.
Nothing in `tune.py` names a kind.

The default spaces span the sizes that fit a budget of minutes on a CPU (down to 32 units) as well as
the defaults themselves (256 units), and the linear part's n-gram orders, which change the classifier
as much as the BiLSTM's sizes do (BENCHMARKS.md, "Word n-gram linear part").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.sources import DataSource
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.summarizer import SummarizerConfig
from nlp_lstm.models.tagger import TaggerConfig
from nlp_lstm.stages import classification, summarization, tagging


@dataclass(frozen=True)
class TuneKind:
    name: str
    model_class: type
    metric: str  # the validation metric a trial is scored by (higher is better)
    metrics: tuple[str, ...]  # the ones `--metric` may pick
    training_defaults: dict[str, Any]
    tokenizer_defaults: dict[str, Any]
    space: dict[str, dict[str, Any]]  # the default search space, in the TOML file's form
    encode_fields: tuple[str, ...]  # model fields the prepared (encoded) data depends on
    make_stage: Callable[..., Any]  # (model, training, source, tokenizer_dir, tokenizer_settings) -> TrainingStage
    evaluate: Callable[..., dict[str, Any]]  # (model_dir, source, split=..., plots_dir=..., device=...) -> metrics
    columns: dict[str, str | None]  # the DataSource columns the kind's `train` command reads by default
    # Work on freshly prepared data that every trial on it would repeat, done once (stage, prepared) -> None.
    precompute: Callable[[Any, Any], None] | None = None
    source: Callable[[DataSource], DataSource] = lambda source: source  # the source as the kind reads it
    # Where the metric depends on the data: (source, the asked metric or None) -> the metric, or NlpLstmError.
    data_metric: Callable[[DataSource, str | None], str] | None = None
    scale: float = 1.0  # a perfect score (ROUGE is reported x 100)

    def pick_metric(self, source: DataSource, asked: str | None) -> str:
        """The metric a search maximises: `asked` (`--metric`), checked, or the kind's default for the data."""
        if asked is not None and asked not in self.metrics:
            raise NlpLstmError(f"--metric for a {self.name} is one of {', '.join(self.metrics)}; got {asked!r}")
        if self.data_metric is not None:
            return self.data_metric(source, asked)
        return asked or self.metric


def _classifier_stage(*, model: ClassifierConfig, training: TrainConfig, source: DataSource,
                      tokenizer_dir: str | Path | None, tokenizer_settings: dict[str, Any]):
    # No plots per trial: the best model's are drawn from the test split at the end.
    return classification.ClassificationStage(model=model, training=training, source=source,
                                              tokenizer_dir=tokenizer_dir, tokenizer_settings=tokenizer_settings,
                                              plots=False)


def _summarizer_stage(*, model: SummarizerConfig, training: TrainConfig, source: DataSource,
                      tokenizer_dir: str | Path | None, tokenizer_settings: dict[str, Any]):
    decoding = from_dict(DecodeConfig, {"max_length": model.max_target_length}, where="decoding settings")
    return summarization.SummarizationStage(model=model, training=training, source=source, decoding=decoding,
                                            tokenizer_dir=tokenizer_dir, tokenizer_settings=tokenizer_settings)


def _tagger_stage(*, model: TaggerConfig, training: TrainConfig, source: DataSource,
                  tokenizer_dir: str | Path | None, tokenizer_settings: dict[str, Any]):
    if tokenizer_dir is not None or tokenizer_settings:
        raise NlpLstmError("a tagger has no subword tokenizer (its words come split in the data); drop the "
                           "--tokenizer options")
    return tagging.TaggingStage(model=model, training=training, source=source, plots=False)


def _tagger_metric(source: DataSource, asked: str | None) -> str:
    """Strict span F1 for span tags (BIO/BIOES), token accuracy for plain tags (parts of speech): what
    `train tagger` picks its best epoch by."""
    plain = tagging.tag_scheme(source) == "plain"
    if asked == "span_f1" and plain:
        raise NlpLstmError("--metric span_f1 needs span tags (BIO/BIOES), and these tags are plain; "
                           "use --metric token_accuracy")
    return asked or ("token_accuracy" if plain else "span_f1")


def _fit_linear_part_once(stage, prepared) -> None:
    """The linear part's logistic regression depends on the n-gram features and labels, not on the
    BiLSTM: fitted here once per encoding (seconds to minutes on 15k texts), every trial reuses it."""
    if prepared.ngrams is not None:
        classification.fit_linear_part(stage.build(prepared), prepared.encoded, fits=prepared.linear_fits)


CLASSIFIER_SPACE = {
    "model": {
        "embedding_dim": {"low": 32, "high": 384, "log": True},
        "hidden_size": {"low": 32, "high": 384, "log": True},
        "num_layers": [1, 2],
        "dropout": {"low": 0.1, "high": 0.6},
        "pooling": ["mean", "max", "concat", "attention"],
        # Not the linear part's n-gram orders (`word_ngrams`, `char_ngrams`): each value is one more
        # encoding of the data and fit of the linear part, 1.5 minutes of a 10-minute budget on VADER
        # at load 5-8 (BENCHMARKS.md, issue 26). A space file adds them.
    },
    "train": {
        "epochs": {"low": 2, "high": 10},
        "batch_size": [32, 64, 128, 256],
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
        "weight_decay": {"low": 1e-3, "high": 0.3, "log": True},
    },
}

SUMMARIZER_SPACE = {
    "model": {
        "embedding_dim": {"low": 32, "high": 256, "log": True},
        "hidden_size": {"low": 32, "high": 384, "log": True},
        "dropout": {"low": 0.0, "high": 0.4},
        "attention": ["additive", "general"],
    },
    "train": {
        "epochs": {"low": 2, "high": 12},
        "batch_size": [16, 32, 64],
        "learning_rate": {"low": 5e-4, "high": 1e-2, "log": True},
    },
}

# Around the defaults (Lample et al. 2016; BENCHMARKS.md "Tagger defaults"): a Turkish POS run of the
# defaults takes 5-12 minutes on 2 cores, so the space reaches down to smaller, shorter runs too.
TAGGER_SPACE = {
    "model": {
        "embedding_dim": {"low": 50, "high": 300, "log": True},
        "hidden_size": {"low": 32, "high": 256, "log": True},
        "char_filters": {"low": 25, "high": 100, "log": True},
        "dropout": {"low": 0.2, "high": 0.6},
        "word_dropout": {"low": 0.0, "high": 0.15},
    },
    "train": {
        "epochs": {"low": 5, "high": 50},
        "batch_size": [8, 16, 32],
        "learning_rate": {"low": 5e-4, "high": 5e-3, "log": True},
    },
}

TUNE_KINDS: dict[str, TuneKind] = {
    "classifier": TuneKind(
        name="classifier", model_class=ClassifierConfig, metric="macro_f1", metrics=("macro_f1", "accuracy"),
        training_defaults=classification.DEFAULT_TRAINING, tokenizer_defaults=classification.DEFAULT_TOKENIZER,
        space=CLASSIFIER_SPACE, encode_fields=("max_length", "word_ngrams", "char_ngrams"),
        make_stage=_classifier_stage, evaluate=classification.evaluate_classifier,
        columns={"text_column": "text", "label_column": "label"}, precompute=_fit_linear_part_once,
    ),
    "summarizer": TuneKind(
        name="summarizer", model_class=SummarizerConfig, metric="rougeL", metrics=("rougeL", "rouge1", "rouge2"),
        training_defaults={}, tokenizer_defaults=summarization.DEFAULT_TOKENIZER,
        space=SUMMARIZER_SPACE, encode_fields=("max_source_length", "max_target_length"),
        make_stage=_summarizer_stage, evaluate=summarization.evaluate_summarizer,
        columns={"text_column": "document", "summary_column": "summary"}, source=summarization.summarization_source,
        scale=100.0,
    ),
    "tagger": TuneKind(
        name="tagger", model_class=TaggerConfig, metric="span_f1", metrics=("span_f1", "token_accuracy"),
        training_defaults=tagging.DEFAULT_TRAINING, tokenizer_defaults={}, space=TAGGER_SPACE, encode_fields=(),
        make_stage=_tagger_stage, evaluate=tagging.evaluate_tagger, columns={"text_column": "text"},
        source=tagging.tagger_source, data_metric=_tagger_metric,
    ),
}


def tune_kind(name: str) -> TuneKind:
    if name not in TUNE_KINDS:
        raise NlpLstmError(f"tune: unknown model kind {name!r}; use one of {', '.join(TUNE_KINDS)}")
    return TUNE_KINDS[name]

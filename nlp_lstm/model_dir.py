"""Model directories (DESIGN section 4): `config.json` + `model.safetensors` + `tokenizer/`.

`config.json` holds everything needed to rebuild the model: its kind, the model config, label names,
the fitted calibration, the decoding settings and the training settings. `read_model_config` reads it
once into a typed `ModelFile`; loading reads weights with safetensors only, nothing is unpickled.

Directories written before the model configs held their own length limits (format 1: `max_length`,
`max_source_length`, `max_target_length` at the top level, the coverage schedule in `training`), and
classifiers written before the n-gram bag (formats 1 and 2: no `ngram_buckets`, so none) are read into
the same `ModelFile`. Format 3's hashed n-gram bag gave way to the word n-gram linear part in format 4;
a format-3 classifier with a bag cannot be rebuilt (retrain it), one without is read as format 4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nlp_lstm.artifacts import atomic_write_json, load_tensors, read_json, save_tensors
from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.tokenize import Tokenizer, load_tokenizer
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.models.language_model import LanguageModelConfig
from nlp_lstm.models.summarizer import SummarizerConfig

FORMAT_VERSION = 4
KINDS = ("classifier", "summarizer", "language_model")
COMMANDS = {"classifier": "classify", "summarizer": "summarize", "language_model": "train classifier --init-from"}


@dataclass
class ModelFile:
    """A model directory's `config.json`, typed.

    `model` is the kind's own config dataclass (`ClassifierConfig`, `SummarizerConfig` or
    `LanguageModelConfig`); `decoding` a `DecodeConfig` for summarizers.
    """

    kind: str
    model: Any
    training: TrainConfig = field(default_factory=TrainConfig)
    labels: list[str] = field(default_factory=list)
    threshold: float = 0.5  # multi-label: the default decision threshold
    thresholds: list[float] | None = None  # multi-label: one per label, picked on validation
    temperature: float = 1.0  # classifier: logits are divided by it (fitted on validation)
    decoding: Any = None
    columns: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, "format_version": FORMAT_VERSION, "model": dataclasses.asdict(self.model),
                "training": dataclasses.asdict(self.training), "columns": self.columns}
        if self.kind == "classifier":
            data.update(labels=self.labels, threshold=self.threshold, thresholds=self.thresholds,
                        temperature=self.temperature)
        if self.decoding is not None:
            data["decoding"] = dataclasses.asdict(self.decoding)
        return data


def _model_config_class(kind: str) -> type:
    return {"classifier": ClassifierConfig, "summarizer": SummarizerConfig, "language_model": LanguageModelConfig}[kind]


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Formats 1 (length limits at the top level, coverage schedule in `training`), 2 (classifiers
    without an n-gram bag) and 3 (the hashed bag) -> format 4."""
    data = dict(data)
    version = int(data.get("format_version", 1))
    model = dict(data.get("model", {}))
    training = dict(data.get("training", {}))
    for key in ("max_length", "max_source_length", "max_target_length"):
        if key in data:
            model.setdefault(key, data.pop(key))
    training.pop("max_length", None)
    for key in ("coverage_from_epoch", "coverage_weight"):
        if key in training:
            value = training.pop(key)
            if data.get("kind") == "summarizer":
                model.setdefault(key, value)
    if version < 4 and data.get("kind") == "classifier":
        if model.pop("ngram_buckets", 0):  # the hashed bag came with format 3 and left with format 4
            raise NlpLstmError("this classifier was saved by an earlier nlp-lstm with a hashed n-gram bag, which "
                               "this version no longer has; retrain it (its word n-gram linear part replaces the bag)")
        model["word_ngrams"] = 0
    data["model"], data["training"] = model, training
    return data


def save_model(directory: Path, *, model_file: ModelFile, state: dict[str, torch.Tensor],
               tokenizer: Tokenizer | None) -> None:
    """Write a complete model directory into `directory` (callers stage it and swap it into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(state, directory / "model.safetensors", metadata={"kind": model_file.kind})
    if tokenizer is not None:
        tokenizer.save(directory / "tokenizer")
    atomic_write_json(directory / "config.json", model_file.to_json())


def read_model_config(directory: str | Path, *, expect: str | None = None) -> ModelFile:
    """Check `directory` is a model directory (of kind `expect`) and return its typed config."""
    path = Path(directory)
    if not path.exists():
        raise NlpLstmError(f"model directory {path} does not exist; pass the --output-dir of `nlp-lstm train`")
    if not path.is_dir():
        raise NlpLstmError(f"{path} is a file, not a model directory; pass the --output-dir of `nlp-lstm train`")
    if not (path / "config.json").is_file():
        raise NlpLstmError(f"{path} is not a model directory (no config.json); pass the --output-dir of `nlp-lstm train`")
    data = read_json(path / "config.json", what="model config")
    kind = data.get("kind")
    if kind not in KINDS:
        raise NlpLstmError(f"{path / 'config.json'}: unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if expect is not None and kind != expect:
        raise NlpLstmError(f"{path} holds a {kind} model, not a {expect}; use `nlp-lstm {COMMANDS[kind]}` with it")
    if not (path / "model.safetensors").is_file():
        raise NlpLstmError(f"{path} is missing model.safetensors; re-train or copy the whole model directory")
    data = _upgrade(data)
    where = str(path / "config.json")
    decoding = None
    if kind == "summarizer":
        decoding = from_dict(DecodeConfig, data.get("decoding", {}), where=f"{where} [decoding]")
    return ModelFile(
        kind=kind,
        model=from_dict(_model_config_class(kind), data["model"], where=f"{where} [model]"),
        training=from_dict(TrainConfig, data.get("training", {}), where=f"{where} [training]"),
        labels=list(data.get("labels", [])),
        threshold=float(data.get("threshold", 0.5)),
        thresholds=data.get("thresholds"),
        temperature=float(data.get("temperature", 1.0)),
        decoding=decoding,
        columns=dict(data.get("columns", {})),
        format_version=int(data.get("format_version", 1)),
        path=path,
    )


def load_state(directory: Path, module: torch.nn.Module) -> None:
    """Load `model.safetensors` into `module`, naming the file on any mismatch."""
    state = load_tensors(directory / "model.safetensors")
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NlpLstmError(
            f"{directory / 'model.safetensors'} does not match {directory / 'config.json'} ({first}); "
            "re-save the model directory as a whole"
        ) from None


def load_model_tokenizer(directory: Path, model_file: ModelFile) -> Tokenizer:
    tokenizer = load_tokenizer(directory / "tokenizer")
    expected = getattr(model_file.model, "vocab_size", None)
    if expected is not None and tokenizer.vocab_size != expected:
        raise NlpLstmError(
            f"{directory / 'tokenizer'} has {tokenizer.vocab_size} tokens but the model expects {expected}; "
            "the tokenizer files do not belong to this model"
        )
    return tokenizer

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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nlp_lstm.artifacts import atomic_write_json, load_tensors, read_json, read_tensor_shapes, save_tensors
from nlp_lstm.config import check_size_caps, from_dict, TrainConfig
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.tokenizers import load_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.kinds import KindSpec, kind_spec

FORMAT_VERSION = 4


@dataclass
class ModelFile:
    """A model directory's `config.json`, typed.

    `model` is the kind's own config dataclass (`kinds.KindSpec.config`); `decoding` its decoding
    settings where the kind has them (`KindSpec.decoding`: a `DecodeConfig` for summarizers).
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

    @property
    def spec(self) -> KindSpec:
        return kind_spec(self.kind)

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, "format_version": FORMAT_VERSION, "model": dataclasses.asdict(self.model),
                "training": dataclasses.asdict(self.training), "columns": self.columns}
        if self.spec.labels:
            data.update(labels=self.labels, threshold=self.threshold, thresholds=self.thresholds,
                        temperature=self.temperature)
        if self.decoding is not None:
            data["decoding"] = dataclasses.asdict(self.decoding)
        return data


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
    spec = kind_spec(data.get("kind"), where=str(path / "config.json"))
    kind = spec.name
    if expect is not None and kind != expect:
        raise NlpLstmError(f"{path} holds a {kind} model, not a {expect}; use `nlp-lstm {spec.command}` with it")
    if not (path / "model.safetensors").is_file():
        raise NlpLstmError(f"{path} is missing model.safetensors; re-train or copy the whole model directory")
    data = _upgrade(data)
    where = str(path / "config.json")
    decoding = None
    if spec.decoding is not None:
        decoding = from_dict(spec.decoding, data.get("decoding", {}), where=f"{where} [decoding]")
    model_file = ModelFile(
        kind=kind,
        model=from_dict(spec.config, data["model"], where=f"{where} [model]"),
        training=from_dict(TrainConfig, data.get("training", {}), where=f"{where} [training]"),
        decoding=decoding,
        path=path,
        **checked_top_level(data, where=where),
    )
    check_label_count(model_file, where=where)
    check_weight_shapes(path, model_file)
    return model_file


# --- checks of a config.json before anything is built from it (issue 23, items 4 and 7) -------------

def _fail(where: str, key: str, problem: str) -> NlpLstmError:
    return NlpLstmError(f"{where} '{key}' {problem}; fix it or re-save the model directory")


def _number(data: dict[str, Any], key: str, default: float, *, where: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, key, f"must be a finite number, got {value!r}")
    return float(value)


def checked_top_level(data: dict[str, Any], *, where: str) -> dict[str, Any]:
    """`config.json`'s own keys (labels, thresholds, temperature, columns, format_version), type-checked:
    each wrong value is one line naming the file and the key."""
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise _fail(where, "labels", f"must be a list of label names (strings), got {labels!r:.60}")
    if len(set(labels)) != len(labels):
        raise _fail(where, "labels", "names a label twice")
    threshold = _number(data, "threshold", 0.5, where=where)
    thresholds = data.get("thresholds")
    if thresholds is not None and (not isinstance(thresholds, list) or not all(
            not isinstance(t, bool) and isinstance(t, (int, float)) and 0.0 <= t <= 1.0 for t in thresholds)):
        raise _fail(where, "thresholds", f"must be null or a list of numbers in [0, 1], got {thresholds!r:.60}")
    if not 0.0 <= threshold <= 1.0:
        raise _fail(where, "threshold", f"must be in [0, 1], got {threshold}")
    temperature = _number(data, "temperature", 1.0, where=where)
    if not temperature > 0:
        raise _fail(where, "temperature", f"must be > 0 (logits are divided by it), got {temperature}")
    columns = data.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise _fail(where, "columns", f"must map names to column names (strings), got {columns!r:.60}")
    version = data.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(where, "format_version", f"must be an integer, got {version!r}")
    return {"labels": list(labels), "threshold": threshold, "temperature": temperature, "columns": dict(columns),
            "thresholds": None if thresholds is None else [float(t) for t in thresholds], "format_version": version}


def check_label_count(model_file: ModelFile, *, where: str) -> None:
    """A classifier names exactly one label per output (else every prediction fails, or is unnamed)."""
    if not model_file.spec.labels:
        return
    count = model_file.model.num_labels
    if len(model_file.labels) != count:
        raise _fail(where, "labels", f"names {len(model_file.labels)} labels but the model has num_labels={count}")
    if model_file.thresholds is not None and len(model_file.thresholds) != count:
        raise _fail(where, "thresholds", f"has {len(model_file.thresholds)} values for {count} labels")


def check_weight_shapes(directory: Path, model_file: ModelFile) -> None:
    """Refuse sizes in `config.json` that the weights do not hold, before any real tensor exists.

    The sizes are first held to `SIZE_CAPS`; the module is then built on PyTorch's "meta" device
    (shapes only, no memory) and its state's shapes compared with the safetensors header's.
    """
    where = str(directory / "config.json")
    check_size_caps(model_file.model, where=f"{where} [model]")
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in model_file.spec.module(model_file.model).state_dict().items()}
    weights = directory / "model.safetensors"
    found = read_tensor_shapes(weights)
    for name, shape in expected.items():
        if found.get(name, shape) != shape:
            raise NlpLstmError(
                f"{weights} does not match {where}: '{name}' is {list(found[name])} in the weights but the config "
                f"makes it {list(shape)}; re-save the model directory as a whole"
            )


def load_state(directory: Path, module: torch.nn.Module) -> None:
    """Load `model.safetensors` into `module`, naming the file on any mismatch."""
    state = load_tensors(directory / "model.safetensors")
    check_finite(directory / "model.safetensors", state)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NlpLstmError(
            f"{directory / 'model.safetensors'} does not match {directory / 'config.json'} ({first}); "
            "re-save the model directory as a whole"
        ) from None


def check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    """NaN or infinite weights give NaN scores (served as null) for every text: refuse them at load."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NlpLstmError(f"{path}: tensor '{name}' holds NaN or infinite values; re-train the model")


def load_model_tokenizer(directory: Path, model_file: ModelFile) -> Tokenizer:
    tokenizer = load_tokenizer(directory / "tokenizer")
    expected = getattr(model_file.model, "vocab_size", None)
    if expected is not None and tokenizer.vocab_size != expected:
        raise NlpLstmError(
            f"{directory / 'tokenizer'} has {tokenizer.vocab_size} tokens but the model expects {expected}; "
            "the tokenizer files do not belong to this model"
        )
    return tokenizer

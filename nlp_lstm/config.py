"""Typed configuration: dataclasses validated once, where they are loaded.

Each model kind's config lives beside the module it rebuilds (`models.classifier.ClassifierConfig`,
`models.summarizer.SummarizerConfig`, `models.language_model.LanguageModelConfig`, and
`decoding.beam_search.DecodeConfig`), as nanoGPT keeps `GPTConfig` beside `GPT`; this module holds
what every kind shares (`TrainConfig`) and the machinery: pipeline TOML tables, CLI options and a
model directory's `config.json` all become dataclasses through `from_dict`, which rejects unknown keys
(naming the nearest valid one) and wrong types, and `apply_overrides` applies dotted
`--set section.key=value` overrides (as spaCy's CLI does) to a set of such sections.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from nlp_lstm.errors import NlpLstmError

T = TypeVar("T")

# Upper bounds on the sizes a model file may ask for, checked before anything is built from them:
# far above any model nlp-lstm trains on one machine, low enough that a size passing them can be
# allocated (a saved num_layers of 10**6 or hidden_size of 10**6 is refused, not tried).
SIZE_CAPS = {
    "vocab_size": 2**22, "embedding_dim": 2**14, "hidden_size": 2**14, "input_size": 2**14,
    "num_layers": 64, "encoder_layers": 64, "decoder_layers": 64, "num_labels": 2**20,
    "ngram_features": 2**24, "softmax_candidates": 2**22,
    "max_length": 2**20, "max_source_length": 2**20, "max_target_length": 2**16,
}

@dataclass
class TrainConfig:
    """Optimisation settings shared by every model kind (classifier, summarizer, language model).

    Task-specific settings live with each model's own config (`ClassifierConfig.max_length`,
    `SummarizerConfig.coverage_from_epoch`, ...), so this holds nothing one task ignores.
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # adamw | adagrad (See et al. 2017 train the summarizer with Adagrad)
    clip_norm: float = 1.0
    warmup_steps: int = 0
    schedule: str = "linear"  # linear decay to 0 over all steps | constant
    patience: int = 3  # epochs without improvement of the validation metric before stopping
    seed: int = 13
    # Discriminative fine-tuning (ULMFiT sec. 3.2): each lower layer group (head, encoder layers top
    # down, embedding) learns this many times slower than the one above; 1 = one rate for all.
    layer_lr_decay: float = 1.0
    # Gradual unfreezing (ULMFiT sec. 3.3): epoch 1 trains the head only, each later epoch also the
    # next layer group down (encoder layers, then the embedding). For classifiers; one process only.
    gradual_unfreezing: bool = False
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0 = only at epoch end
    keep_checkpoints: int = 2
    # Forward passes and losses in bfloat16 autocast (torch.autocast), weights and optimizer in float32.
    # Pays on GPUs with bf16 units (A100, H100); on most CPUs it is slower than float32.
    precision: str = "float32"  # float32 | bfloat16

    def __post_init__(self) -> None:
        check_positive(epochs=self.epochs, batch_size=self.batch_size)
        if not self.learning_rate > 0:
            raise NlpLstmError(f"learning_rate must be > 0, got {self.learning_rate}")
        check_choice("optimizer", self.optimizer, ("adamw", "adagrad"))
        check_choice("schedule", self.schedule, ("linear", "constant"))
        check_choice("precision", self.precision, ("float32", "bfloat16"))
        if self.patience < 0 or self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise NlpLstmError("patience, warmup_steps and checkpoint_every must be >= 0")
        if not self.layer_lr_decay >= 1.0:
            raise NlpLstmError(f"layer_lr_decay must be >= 1 (1: one learning rate), got {self.layer_lr_decay}")
        if self.keep_checkpoints < 1:
            raise NlpLstmError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise NlpLstmError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise NlpLstmError(f"{name.replace('_', '-')} must be >= 1, got {value}")


def check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise NlpLstmError(f"{name} must be in [0, 1), got {value}")


def check_size_caps(config: Any, *, where: str) -> None:
    """Refuse a dataclass whose size fields (`SIZE_CAPS`) exceed their cap or are below 0."""
    for name, cap in SIZE_CAPS.items():
        value = getattr(config, name, None)
        if isinstance(value, int) and not 0 <= value <= cap:
            raise NlpLstmError(f"{where} '{name}' is {value}; it must be between 0 and {cap}: fix or re-create the file")


def from_dict(cls: type[T], data: dict[str, Any], *, where: str) -> T:
    """Build dataclass `cls` from plain data, rejecting unknown keys and wrong types.

    `where` names the source for messages, e.g. "pipelines/sentiment.toml [model]".
    """
    if not isinstance(data, dict):
        raise NlpLstmError(f"{where}: expected a table of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            raise NlpLstmError(f"{where}: unknown key '{key}'{hint}")
        kwargs[key] = _coerce(value, hints[key], where=f"{where} '{key}'")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise NlpLstmError(f"{where}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except NlpLstmError as error:  # a dataclass's own check (__post_init__): say which file it was
        raise NlpLstmError(f"{where}: {error}") from None


def _coerce(value: Any, hint: Any, *, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where=where)
            except NlpLstmError as error:
                errors.append(str(error))
        raise NlpLstmError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise NlpLstmError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(v, item, where=where) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # JSON readers accept NaN and Infinity; no setting means them
                raise NlpLstmError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise NlpLstmError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"train.learning_rate=1e-3"` -> (["train", "learning_rate"], 0.001).

    The value is read as a TOML value (numbers, true/false, "quoted strings", [lists]); anything
    that is not valid TOML is taken as a bare string (`model.pooling=mean`).
    """
    import tomllib

    key, sep, raw = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or len(path) < 2 or not all(path):
        raise NlpLstmError(f"--set {text!r}: write SECTION.KEY=VALUE, e.g. --set train.learning_rate=1e-3")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(sections: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return `sections` (name -> dataclass instance) with every `--set SECTION.KEY=VALUE` applied.

    Each changed section is rebuilt through `from_dict`, so an override is validated exactly like the
    same key in a pipeline file (unknown keys name the nearest valid one).
    """
    result = dict(sections)
    for text in overrides:
        (name, *keys), value = parse_override(text)
        if name not in result:
            raise NlpLstmError(f"--set {text!r}: unknown section {name!r}; use one of {', '.join(sorted(result))}")
        section = result[name]
        data = dataclasses.asdict(section)
        target = data
        for key in keys[:-1]:
            if not isinstance(target.get(key), dict):
                raise NlpLstmError(f"--set {text!r}: {name}.{key} is not a table of settings")
            target = target[key]
        target[keys[-1]] = value
        result[name] = from_dict(type(section), data, where=f"--set {text}")
    return result


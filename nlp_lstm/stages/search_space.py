"""What `tune` searches: settings of `[model]` and `[train]`, each a range or a list of choices.

A search space is written as a pipeline-style TOML file (docs/tune.md), one table per config section,
over the typed fields of the model kind's config and of `TrainConfig`:

    [search]
    replace = false          # true: only the settings below; false: the kind's default space, changed

    [model]
    hidden_size = { low = 64, high = 512, log = true }   # integers in a range (log scale)
    dropout = { low = 0.1, high = 0.5 }                  # floats in a range
    pooling = ["mean", "max"]                            # choices
    num_layers = 1                                       # fixed: not searched

    [train]
    learning_rate = { low = 1e-4, high = 1e-2, log = true }

Every key is checked against the kind's config class when the file is read: an unknown key names the
nearest valid one, a key of another kind's config says it does not apply, a range's ends must be in
order and each end (and each choice) must be a value the config itself accepts (its own checks run).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.errors import NlpLstmError

SECTIONS = ("model", "train")
# Settings that come from the data, name a file, or steer the run rather than the model: never searched.
FIXED = {
    "model": {"num_labels", "task", "vocab_size", "input_size", "ngram_features", "init_from", "embeddings", "tags",
              "char_vocab_size", "language"},
    "train": {"seed", "checkpoint_every", "keep_checkpoints"},
}
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Param:
    """One searched setting: `section.key` over an int or float range, or over choices."""

    section: str
    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    integer: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        return f"{self.low:g} to {self.high:g}" + (" (log scale)" if self.log else "")


@dataclass
class SearchSpace:
    """The searched settings (`params`) and the fixed ones the user pinned (`fixed`: section -> key -> value)."""

    params: dict[str, Param]
    fixed: dict[str, dict[str, Any]]

    def suggest(self, trial) -> dict[str, dict[str, Any]]:
        """One Optuna trial's settings, by section: {"model": {...}, "train": {...}}."""
        chosen: dict[str, dict[str, Any]] = {section: dict(self.fixed.get(section, {})) for section in SECTIONS}
        for name, param in self.params.items():
            if param.choices is not None:
                value = trial.suggest_categorical(name, list(param.choices))
            elif param.integer:
                value = trial.suggest_int(name, int(param.low), int(param.high), log=param.log,
                                          step=int(param.step or 1))
            else:
                value = trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
            chosen[param.section][param.key] = value
        return chosen


def read_space_file(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise NlpLstmError(f"search space file {file} not found; see docs/tune.md for the format")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise NlpLstmError(f"{file} is not valid TOML ({error}); fix the syntax") from None


def build_space(default: dict[str, Any], user: dict[str, Any] | None, *, kind: str, classes: dict[str, type],
                base: dict[str, Any], other_kinds: dict[str, type], where: str = "search space") -> SearchSpace:
    """The kind's `default` space changed (or replaced) by the `user`'s tables, every entry checked.

    `classes` maps each section to its config class (`model` -> the kind's, `train` -> TrainConfig),
    `base` each section to the config every trial starts from (a choice is validated inside it), and
    `other_kinds` names the other kinds' model configs, to tell a misplaced setting from a typo.
    """
    user = dict(user or {})
    options = user.pop("search", {})
    if not isinstance(options, dict) or set(options) - {"replace"}:
        raise NlpLstmError(f"{where} [search] takes one key, replace = true | false")
    for name in user:
        if name not in SECTIONS:
            near = difflib.get_close_matches(name, [*SECTIONS, "search"], n=1)
            hint = f"did you mean [{near[0]}]?" if near else "use [model], [train] or [search]"
            raise NlpLstmError(f"{where}: unknown table [{name}]; {hint}")
    tables = {section: {} if options.get("replace") else dict(default.get(section, {})) for section in SECTIONS}
    for section in SECTIONS:
        table = user.get(section, {})
        if not isinstance(table, dict):
            raise NlpLstmError(f"{where} [{section}] must be a table of settings")
        tables[section].update(table)
    params: dict[str, Param] = {}
    fixed: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for section in SECTIONS:
        for key, spec in tables[section].items():
            label = f"{where} {section}.{key}"
            check_key(section, key, classes[section], kind=kind, other_kinds=other_kinds, where=label)
            param = parse_param(section, key, spec, classes[section], where=label)
            if param is None:
                values: tuple[Any, ...] = (spec,)
                fixed[section][key] = spec
            else:
                values = param.choices if param.choices is not None else (param.low, param.high)
                params[param.name] = param
            for value in values:
                _check_value(classes[section], base[section], key, value, where=label)
    return SearchSpace(params=params, fixed=fixed)


def check_key(section: str, key: str, cls: type, *, kind: str, other_kinds: dict[str, type], where: str) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]
    if key in FIXED[section] and key in fields:
        raise NlpLstmError(f"{where}: '{key}' is not searched (it comes from the data, a file or the run); "
                           f"remove it, or give it to tune as an option")
    if key in fields:
        return
    if section == "model":
        owners = [name for name, other in other_kinds.items() if key in {f.name for f in dataclasses.fields(other)}]
        if owners:
            raise NlpLstmError(f"{where}: '{key}' does not apply to a {kind} (it is a {' / '.join(owners)} setting); "
                               f"remove it from the search space")
    near = difflib.get_close_matches(key, [f for f in fields if f not in FIXED[section]], n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(f for f in fields if f not in FIXED[section])}"
    raise NlpLstmError(f"{where}: unknown setting '{key}'; {hint}")


def parse_param(section: str, key: str, spec: Any, cls: type, *, where: str) -> Param | None:
    """A range table or a list of choices; None for a plain value (pinned, not searched)."""
    hint = _field_type(cls, key)
    if isinstance(spec, list):
        if not spec:
            raise NlpLstmError(f"{where}: an empty list of choices; give at least one value")
        if any(isinstance(value, (dict, list)) for value in spec):
            raise NlpLstmError(f"{where}: choices must be plain values (numbers, strings, true/false)")
        return Param(section=section, key=key, choices=tuple(spec))
    if not isinstance(spec, dict):
        return None
    unknown = set(spec) - RANGE_KEYS
    if unknown:
        name = sorted(unknown)[0]
        near = difflib.get_close_matches(name, sorted(RANGE_KEYS | {"choices"}), n=1)
        raise NlpLstmError(f"{where}: unknown range key '{name}'" + (f"; did you mean '{near[0]}'?" if near else
                                                                   "; use low, high, log, step"))
    if "low" not in spec or "high" not in spec:
        raise NlpLstmError(f"{where}: a range needs low and high, e.g. {{ low = 0.1, high = 0.5 }}")
    if hint not in (int, float):
        raise NlpLstmError(f"{where}: '{key}' is not a number; give a list of choices instead of a range")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise NlpLstmError(f"{where}: {name} must be a number, got {value!r}")
    if hint is int and not all(isinstance(v, int) for v in (low, high) + ((step,) if step is not None else ())):
        raise NlpLstmError(f"{where}: '{key}' is an integer setting; give whole-number low and high")
    if not isinstance(log, bool):
        raise NlpLstmError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise NlpLstmError(f"{where}: low {low} is above high {high}; swap them")
    if log and low <= 0:
        raise NlpLstmError(f"{where}: a log-scale range needs low > 0, got {low}; raise low or drop log")
    if step is not None and (step <= 0 or log):
        raise NlpLstmError(f"{where}: step must be > 0 and cannot go with log = true")
    return Param(section=section, key=key, low=low, high=high, log=log, step=step, integer=hint is int)


def _field_type(cls: type, key: str) -> Any:
    hint = typing.get_type_hints(cls)[key]
    options = [option for option in typing.get_args(hint) if option is not type(None)]
    return options[0] if len(options) == 1 else hint


def _check_value(cls: type, base: Any, key: str, value: Any, *, where: str) -> None:
    """`value` must be one the config accepts for `key`, inside the config every trial starts from."""
    data = dataclasses.asdict(base)
    data[key] = value
    from_dict(cls, data, where=where)


def classes_for(model_class: type) -> dict[str, type]:
    return {"model": model_class, "train": TrainConfig}

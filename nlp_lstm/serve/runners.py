"""What the server runs per model: loading, the batch function, and its batcher.

A `ServedModel` holds a loaded predictor (`nlp_lstm.load`, or the ONNX runtime's `load_onnx`) and the
`MicroBatcher` that feeds it. The batch function, run in the batcher's worker thread, is the
predictor's own `predict_batch` (`inference/`: one row per item, with `truncated`; long texts are
clipped first by `inference/clip.py`). For a classifier the server passes its length-bucket plan
(`buckets`): the texts of a micro-batch run in buckets planned for the batch, padded to the shape
ladder, through the path `predict` takes, so the server and `nlp-lstm classify` agree.

A classifier stand-in with only `kind`, `labels` and `predict` (a runtime without `predict_batch`)
is served through its `predict`.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.bfloat16 import bfloat16_output
from nlp_lstm.inference.clip import clip_text, clip_texts  # noqa: F401 - clip_text: imported from here by tests
from nlp_lstm.inference.runtime import bfloat16_applies, check_runtime_options, load_runtime
from nlp_lstm.serve.batching import MicroBatcher
from nlp_lstm.serve.buckets import fixed_buckets, padded_length, plan_buckets, step_rows
from nlp_lstm.serve.endpoints import ENDPOINTS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def classify_batch(classifier, texts: list[str], *, bucket_rows: int | None = None) -> list[dict[str, Any]]:
    """`classifier.predict_batch` over the length buckets the server plans for a micro-batch
    (`buckets.plan_buckets`, each padded to the shape ladder); `bucket_rows` N: sorted chunks of N
    instead, as `predict` runs them (benchmarks/bench_serve.py --buckets compares the two)."""
    if bucket_rows is not None:
        return classifier.predict_batch(texts, plan=lambda lengths: fixed_buckets(lengths, size=bucket_rows))
    config = classifier.model.config
    return classifier.predict_batch(texts, plan=lambda lengths: plan_buckets(lengths, step_rows=step_rows(config)),
                                    pad_length=padded_length)


def _classify_by_predict(classifier, texts: list[str]) -> list[dict[str, Any]]:
    """A classifier without `predict_batch` (a stand-in runtime): what its `predict` gives, in the same shape."""
    tokenizer, limit = getattr(classifier, "tokenizer", None), getattr(classifier, "max_length", None)
    if tokenizer is not None and limit is not None:
        clipped, truncated = clip_texts(texts, tokenizer, limit)
        truncated = [cut if cut is not None else len(ids) > limit
                     for cut, ids in zip(truncated, tokenizer.encode_batch(clipped))]
    else:
        clipped, truncated = list(texts), [False] * len(texts)
    rows = []
    for row, cut in zip(classifier.predict(clipped, batch_size=max(1, len(clipped))), truncated):
        if "labels" in row:  # multi-label: labels above the threshold and their scores
            scores = dict(zip(row["labels"], row["scores"]))
            best = max(scores, key=scores.get) if scores else None
            rows.append({"label": best, "score": scores.get(best, 0.0), "scores": scores, "labels": row["labels"],
                         "truncated": cut})
        else:
            rows.append({"label": row["label"], "score": row["score"], "scores": {row["label"]: row["score"]},
                         "truncated": cut})
    return rows


# --------------------------------------------------------------------------------------------
# Served models
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ServedModel:
    """One model behind the server: its name, the loaded object, its batcher, and what `/v1/models`
    shows of its directory (`config.json`, `metrics.json`), read once at load.

    Nothing is read from the directory after load: editing, deleting or retraining into it while it
    is served changes nothing served (the weights in memory stay the ones loaded).
    """

    name: str
    model: Any
    runtime: str = "torch"
    config: dict | None = None  # config.json, filesystem paths hidden (`without_paths`)
    metrics: dict | None = None  # metrics.json, likewise
    batcher: MicroBatcher | None = field(default=None, repr=False)

    @classmethod
    def from_directory(cls, name: str, model: Any, directory: Path, *, runtime: str) -> "ServedModel":
        return cls(name=name, model=model, runtime=runtime, config=without_paths(_read_json(directory / "config.json")),
                   metrics=without_paths(_read_json(directory / "metrics.json")))

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def max_input_tokens(self) -> int | None:
        return getattr(self.model, "max_input_length", getattr(self.model, "max_length", None))

    def run_batch(self, items: list) -> list[dict[str, Any]]:
        """The predictor's own batch method; a classifier's texts in length buckets planned for the batch."""
        if not hasattr(self.model, "predict_batch"):
            return _classify_by_predict(self.model, items)
        if self.takes_bucket_plan:  # one LSTM pass per bucket (a classifier): buckets planned for this batch
            return classify_batch(self.model, items)
        return self.model.predict_batch(items)

    @functools.cached_property
    def takes_bucket_plan(self) -> bool:
        return "plan" in inspect.signature(self.model.predict_batch).parameters

    def start(self, *, max_batch_size: int, max_wait: float, max_queue: int) -> None:
        self.batcher = MicroBatcher(self.run_batch, max_batch_size=max_batch_size, max_wait=max_wait,
                                    max_queue=max_queue, name=f"batcher-{self.name}").start()

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


PATH_KEYS = frozenset({"init_from"})  # config.json keys that hold a directory (`train --init-from`)
HIDDEN_PATH = "(a path on the server, not shown)"


def without_paths(value, key: str | None = None):
    """`value` with every filesystem path replaced by `HIDDEN_PATH`: the values of `PATH_KEYS`, and
    any string that is an absolute path (`/...`, `~...`, `C:\\...`). A client learns that a model was
    initialised from another, not where the server keeps its files."""
    if isinstance(value, dict):
        return {name: without_paths(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [without_paths(item) for item in value]
    if isinstance(value, str) and (key in PATH_KEYS or value.startswith(("/", "~", "\\")) or _DRIVE.match(value)):
        return HIDDEN_PATH
    return value


_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def _read_json(path: Path) -> dict | None:
    """A JSON file's object with NaN and infinities as null (JSON has no such numbers), or None."""
    try:
        return _finite(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def parse_model_specs(values: Sequence[str]) -> dict[str, Path]:
    """`--model` values (`DIR` or `NAME=DIR`) -> {name: directory}, in the order given.

    A bare DIR is named after the directory, or after its parent when the directory is called
    `model` (`nlp-lstm run` writes `runs/<pipeline>/model`).
    """
    if not values:
        raise NlpLstmError("no model given; pass --model DIR (or --model NAME=DIR, repeatable)")
    specs: dict[str, Path] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if sep and _NAME.match(name) and not Path(value).exists():
            directory = Path(rest)
        else:
            directory = Path(value)
            resolved = directory.resolve()
            name = resolved.parent.name if resolved.name == "model" and resolved.parent.name else resolved.name
        if not _NAME.match(name or ""):
            raise NlpLstmError(f"cannot name the model in {value!r}; pass --model NAME=DIR with a name of letters, digits, '_', '.', '-'")
        if name in specs:
            raise NlpLstmError(f"two models are named {name!r}; give each its own name with --model NAME=DIR")
        specs[name] = directory
    return specs


def load_models(models: Mapping[str, Any], *, kinds: Sequence[str] = tuple(ENDPOINTS), runtime: str = "torch", device: str = "auto",
                bf16_output: bool = False) -> dict[str, ServedModel]:
    """{name: loaded model or model directory} -> {name: ServedModel}; directories are loaded here.

    `kinds`: the kinds served (default: every kind with an HTTP endpoint). `bf16_output` decodes every summarizer among
    them with its output layer in bfloat16 (`nlp_lstm.inference.bfloat16`); classifiers are served as
    they are.
    """
    check_runtime_options(runtime)
    if not models:
        raise NlpLstmError("no model given; pass --model DIR (or --model NAME=DIR, repeatable)")
    check_runtime_options(runtime, bf16_output=bf16_output)
    served: dict[str, ServedModel] = {}
    for name, value in models.items():
        if isinstance(value, (str, Path)):
            directory = Path(value)
            served[name] = ServedModel.from_directory(name, load_runtime(directory, runtime=runtime, device=device), directory,
                                                      runtime=runtime)
        else:
            served[name] = ServedModel(name=name, model=value, runtime=runtime)
        kind = getattr(served[name].model, "kind", None)
        if kind not in kinds:
            raise NlpLstmError(f"model {name!r} is a {type(value).__name__} of kind {kind!r}; serve a {' or '.join(kinds)}")
        refusal = getattr(served[name].model, "serve_refusal", None)
        if refusal:
            raise NlpLstmError(f"model {name!r} {refusal}")
    if bf16_output:
        decoders = [name for name, model in served.items() if bfloat16_applies(model.model)]
        if not decoders:
            raise NlpLstmError("--bf16-output is for summarizers and none of the served models is one: drop the option")
        for name in decoders:
            served[name] = replace(served[name], model=bfloat16_output(served[name].model))
    return served

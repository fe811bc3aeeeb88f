"""What the server runs per model: loading, one batch function per model kind, and its batcher.

A `ServedModel` holds a loaded model (`nlp_lstm.load`, or the ONNX runtime's `load_onnx`) and the
`MicroBatcher` that feeds it. The batch functions run in the batcher's worker thread:

- `classify_batch(classifier, texts)`: one row per text with the top label and every label's
  probability (`Classifier.predict` returns only the top one), computed over `classifier.batches`
  as `predict` does, in length buckets planned for the batch (`buckets`), so the server and
  `nlp-lstm classify` agree.
- `summarize_batch(summarizer, items)`: items are `(text, Decoding)`; texts sharing decoding
  settings are decoded together.

Long texts are first cut (`clip_text`) to a prefix that still holds more tokens than the model
reads, so a 1 MB text costs a few kilobytes of tokenization; the model then truncates that prefix
as it would have truncated the whole text, and the result says `truncated`.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.nn import functional as F

from nlp_lstm.data.collate import classifier_arguments
from nlp_lstm.data.specials import PAD_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.load import load
from nlp_lstm.serve.batching import MicroBatcher
from nlp_lstm.serve.buckets import fixed_buckets, padded_length, plan_buckets, step_rows

KINDS = ("classifier", "summarizer")
RUNTIMES = ("torch", "onnx")
CLIP_CHARS_PER_TOKEN = 16  # first prefix tried: 16 characters per token the model reads
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Decoding:
    """Decoding settings a summarize request may set; requests with equal settings batch together."""

    beam_size: int
    max_length: int


# --------------------------------------------------------------------------------------------
# Long texts
# --------------------------------------------------------------------------------------------


def clip_text(text: str, tokenizer, limit: int) -> tuple[str, bool | None]:
    """`(text or a prefix of it, True if the model truncates it, None if not known without a count)`.

    The prefix ends before a space, and both tokenizers split at spaces first (spaCy's rules apply
    within space-separated chunks; sentencepiece pieces never cross a space), so the prefix's tokens
    are the first tokens of the whole text. Once the prefix holds more than `limit` tokens, its first
    `limit` tokens are exactly those the model would keep. Prefixes grow 4x until one suffices, so a
    text with few spaces costs at most about 1.3x one tokenization of the whole text.
    """
    size = CLIP_CHARS_PER_TOKEN * (limit + 1)
    while size < len(text):
        cut = text.rfind(" ", 0, size)
        if cut > 0:
            prefix = text[:cut]
            if len(tokenizer.encode_batch([prefix])[0]) > limit:
                return prefix, True
        size *= 4
    return text, None  # short enough to tokenize whole: the caller counts its tokens


def clip_texts(texts: Sequence[str], tokenizer, limit: int) -> tuple[list[str], list[bool | None]]:
    """`clip_text` over texts: texts to run, and True / None (not known yet: count the tokens)."""
    clipped, truncated = [], []
    for text in texts:
        if len(text) <= CLIP_CHARS_PER_TOKEN * (limit + 1):
            clipped.append(text)
            truncated.append(None)
        else:
            prefix, cut = clip_text(text, tokenizer, limit)
            clipped.append(prefix)
            truncated.append(cut)
    return clipped, truncated


# --------------------------------------------------------------------------------------------
# Batch functions (run in the batcher's worker thread)
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def classify_batch(classifier, texts: list[str], *, bucket_rows: int | None = None) -> list[dict[str, Any]]:
    """Per text: `{"label", "score", "scores": {label: probability}, "truncated"}` (+ `"labels"` multi-label).

    The texts are tokenized once to learn their lengths, grouped into length buckets
    (`buckets.plan_buckets`; `bucket_rows` N: sorted chunks of N instead, as `predict` does), and each
    bucket runs as one forward pass through `classifier.batches`, the path `predict` takes.
    """
    if not (hasattr(classifier, "batches") and hasattr(getattr(classifier, "model", None), "scores")):
        return _classify_by_predict(classifier, texts)
    limit, tokenizer = classifier.max_length, classifier.tokenizer
    clipped, truncated = clip_texts(texts, tokenizer, limit)
    counts = [len(ids) for ids in tokenizer.encode_batch(clipped)]
    truncated = [cut if cut is not None else count > limit for cut, count in zip(truncated, counts)]
    lengths = [min(max(count, 1), limit) for count in counts]  # as batches() runs them: empty -> [unk]
    if bucket_rows is None:
        plan = plan_buckets(lengths, step_rows=step_rows(classifier.model.config))
    else:
        plan = fixed_buckets(lengths, size=bucket_rows)
    multilabel = classifier.model.config.task == "multilabel"
    labels, device = classifier.labels, classifier.device
    rows: list[dict[str, Any]] = [{}] * len(texts)
    for bucket in plan:
        for indices, batch in classifier.batches([clipped[i] for i in bucket], batch_size=len(bucket)):
            inputs, pad_mask = batch["input_ids"], batch["pad_mask"]  # (B, T)
            if bucket_rows is None:  # pad to the shape ladder (buckets.padded_length); padding is masked
                extra = padded_length(inputs.shape[1]) - inputs.shape[1]
                inputs = F.pad(inputs, (0, extra), value=PAD_ID)  # (B, T')
                pad_mask = F.pad(pad_mask, (0, extra), value=True)  # (B, T')
            batch = {**batch, "input_ids": inputs, "pad_mask": pad_mask}
            logits = classifier.model(*classifier_arguments(batch, "input_ids", device))
            # Temperature-scaled, as `predict` gives them (fitted on validation at the end of training).
            probabilities = classifier.model.scores(logits / classifier.temperature).cpu().tolist()  # (B, num_labels)
            for position, row in zip(indices, probabilities):
                index = bucket[position]
                best = max(range(len(row)), key=row.__getitem__)
                result = {"label": labels[best], "score": round(row[best], 4), "truncated": truncated[index],
                          "scores": {label: round(p, 4) for label, p in zip(labels, row)}}
                if multilabel:
                    cuts = classifier.thresholds or [classifier.threshold] * len(labels)  # per label, from validation
                    result["labels"] = [label for label, p, cut in zip(labels, row, cuts) if p >= cut]
                rows[index] = result
    return rows


def _classify_by_predict(classifier, texts: list[str]) -> list[dict[str, Any]]:
    """A runtime without torch internals (ONNX): what its `predict` gives, in the same shape."""
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


def summarize_batch(summarizer, items: list[tuple[str, Decoding]]) -> list[dict[str, Any]]:
    """Per `(text, decoding)` item: `{"summary", "truncated"}`; items are grouped by decoding settings."""
    limit = summarizer.max_source_length
    texts = [text for text, _ in items]
    clipped, truncated = clip_texts(texts, summarizer.tokenizer, limit)
    unknown = [i for i, cut in enumerate(truncated) if cut is None]
    for i, ids in zip(unknown, summarizer.tokenizer.encode_batch([clipped[i] for i in unknown])):
        truncated[i] = len(ids) > limit
    groups: dict[Decoding, list[int]] = {}
    for index, (_, decoding) in enumerate(items):
        groups.setdefault(decoding, []).append(index)
    rows: list[dict[str, Any]] = [{}] * len(items)
    # All of a group in one decode batch, where the runtime's summarize takes a batch size.
    sized = "batch_size" in inspect.signature(summarizer.summarize).parameters
    for decoding, indices in groups.items():
        summaries = summarizer.summarize([clipped[i] for i in indices], beam_size=decoding.beam_size,
                                         max_length=decoding.max_length, **({"batch_size": len(indices)} if sized else {}))
        for index, summary in zip(indices, summaries):
            rows[index] = {"summary": summary, "truncated": truncated[index]}
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
        return getattr(self.model, "max_length" if self.kind == "classifier" else "max_source_length", None)

    def default_decoding(self) -> Decoding:
        """The model's own decoding settings (config.json `decoding`), else `summarize`'s defaults."""
        saved = (self.config or {}).get("decoding") or {}
        return Decoding(beam_size=int(saved.get("beam_size", 4)), max_length=int(saved.get("max_length", 30)))

    def run_batch(self, items: list) -> list[dict[str, Any]]:
        if self.kind == "classifier":
            return classify_batch(self.model, items)
        return summarize_batch(self.model, items)

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


def load_models(models: Mapping[str, Any], *, runtime: str = "torch", device: str = "auto",
                bf16_output: bool = False) -> dict[str, ServedModel]:
    """{name: loaded model or model directory} -> {name: ServedModel}; directories are loaded here.

    `bf16_output` decodes every summarizer among them with its output layer in bfloat16
    (`nlp_lstm.inference.bfloat16`); classifiers are served as they are.
    """
    if runtime not in RUNTIMES:
        raise NlpLstmError(f"unknown --runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if not models:
        raise NlpLstmError("no model given; pass --model DIR (or --model NAME=DIR, repeatable)")
    if bf16_output and runtime != "torch":
        raise NlpLstmError("--bf16-output is for the PyTorch runtime; drop it with --runtime onnx")
    served: dict[str, ServedModel] = {}
    for name, value in models.items():
        if isinstance(value, (str, Path)):
            directory = Path(value)
            served[name] = ServedModel.from_directory(name, _load(directory, runtime=runtime, device=device), directory,
                                                      runtime=runtime)
        else:
            served[name] = ServedModel(name=name, model=value, runtime=runtime)
        kind = getattr(served[name].model, "kind", None)
        if kind not in KINDS:
            raise NlpLstmError(f"model {name!r} is a {type(value).__name__} of kind {kind!r}; serve a classifier or summarizer")
    if bf16_output:
        summarizers = [name for name, model in served.items() if model.kind == "summarizer"]
        if not summarizers:
            raise NlpLstmError("--bf16-output is for summarizers and none of the served models is one: drop the option")
        from nlp_lstm.inference.bfloat16 import bfloat16_output

        for name in summarizers:
            served[name] = replace(served[name], model=bfloat16_output(served[name].model))
    return served


def _load(directory: Path, *, runtime: str, device: str):
    if runtime == "torch":
        return load(directory, device=device)
    from nlp_lstm.inference.onnx_runtime import load_onnx  # onnxruntime is an optional extra

    return load_onnx(directory)

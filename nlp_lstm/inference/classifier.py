"""A trained classifier with its tokenizer, labels and calibration: what `nlp_lstm.load` returns for one."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.nn import functional as F

from nlp_lstm.data.collate import classifier_arguments, collate_classification, collate_features
from nlp_lstm.data.encode import classification_inputs
from nlp_lstm.data.specials import PAD_ID
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.word_ngrams import WordNgrams, load_word_ngrams
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.clip import clip_and_count
from nlp_lstm.inference.explain import DEFAULT_STEPS, explain_classifier
from nlp_lstm.model_dir import ModelFile, load_model_tokenizer, load_state
from nlp_lstm.models.classifier import TextClassifier


def as_texts(texts: str | Iterable[str]) -> list[str]:
    """Any iterable of strings (a list, a generator, one string) -> a list; a non-string item is a
    user error naming its index."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Iterable):
        raise NlpLstmError(f"texts must be a string or an iterable of strings, got {type(texts).__name__}")
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise NlpLstmError(f"text {index} is {type(item).__name__}, not a string; pass strings only (use '' for none)")
    return items


class ClassifierPredictor:
    """A `TextClassifier` with its tokenizer, word n-gram features, label names, temperature and thresholds."""

    kind = "classifier"

    def __init__(self, model: TextClassifier, tokenizer: Tokenizer | None, *, labels: list[str],
                 temperature: float = 1.0, threshold: float = 0.5, thresholds: list[float] | None = None,
                 device: torch.device | None = None, ngrams: WordNgrams | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.ngrams = ngrams if model.config.has_linear_part else None
        self.labels = labels
        self.temperature = temperature
        self.threshold = threshold
        self.thresholds = thresholds
        self.device = device or torch.device("cpu")
        self.model.to(self.device)

    @property
    def max_length(self) -> int:
        return self.model.config.max_length

    @property
    def max_input_length(self) -> int:
        """Tokens of a text the model reads (the rest is truncated); the same name on every predictor."""
        return self.max_length

    @classmethod
    def load(cls, path: Path, model_file: ModelFile, *, device: torch.device) -> "ClassifierPredictor":
        return load_classifier(path, model_file, device=device)

    @torch.no_grad()
    def predict(self, texts: str | Iterable[str], *, batch_size: int = 64) -> list[dict[str, Any]]:
        """Label and score per text: `{"text", "label", "score"}` (multi-label: `"labels"`, `"scores"`).

        Scores are temperature-scaled probabilities (Guo et al. 2017), fitted on validation at the
        end of training. Texts longer than the model's `max_length` tokens are truncated, with one
        warning per call giving the count.
        """
        texts = as_texts(texts)
        if any(not text.strip() for text in texts):
            warnings.warn("empty or whitespace-only text: predicted from the unknown token alone", stacklevel=3)
        results: list[dict[str, Any]] = [{}] * len(texts)
        for indices, batch in self.batches(texts, batch_size=batch_size):
            for index, row in zip(indices, self.describe(self.probabilities(batch))):
                results[index] = {"text": texts[index], **row}
        return results

    def batches(self, texts: Sequence[str], *, batch_size: int = 64, warn: bool = True
                ) -> Iterator[tuple[list[int], dict]]:
        """Tokenized batches as `predict` runs them: `(indices into texts, collated batch)` pairs.

        Texts are sorted by token count first, so each batch pads little: the LSTM runs every row to
        the batch's longest. `indices` restore the input order.
        """
        examples, truncated = classification_inputs(self.tokenizer, self.ngrams, list(texts), max_length=self.max_length)
        if truncated and warn:
            warnings.warn(f"{truncated} text(s) longer than the model's limit of {self.max_length} tokens were "
                          "truncated", stacklevel=4)
        order = sorted(range(len(examples)), key=lambda i: examples[i]["length"])
        for start in range(0, len(order), batch_size):  # collated as predict reaches them, not all at once
            chunk = order[start : start + batch_size]
            yield chunk, collate_classification([examples[i] for i in chunk])

    @torch.no_grad()
    def predict_batch(self, texts: list[str], *, plan: Callable[[list[int]], list[list[int]]] | None = None,
                      pad_length: Callable[[int], int] | None = None) -> list[dict[str, Any]]:
        """What the server runs per batch. Per text: `{"label", "score", "scores": {label: probability},
        "truncated"}` (+ `"labels"` multi-label): the top label, as `predict` gives it, and every label's.

        Long texts are clipped first (`clip.py`). The texts are tokenized once to learn their lengths;
        `plan(lengths)` groups them into buckets (indices; default: one bucket), and each bucket runs as
        one forward pass through `batches`, the path `predict` takes, padded to `pad_length(T)` steps
        when given (padding is masked, so the result does not change).
        """
        limit = self.max_length
        clipped, truncated, counts = clip_and_count(texts, self.tokenizer, limit)
        lengths = [min(max(count, 1), limit) for count in counts]  # as batches() runs them: empty -> [unk]
        buckets = plan(lengths) if plan is not None else [list(range(len(texts)))]
        labels, multilabel = self.labels, self.model.config.task == "multilabel"
        cuts = self.thresholds or [self.threshold] * len(labels)  # multi-label: per label, from validation
        rows: list[dict[str, Any]] = [{}] * len(texts)
        for bucket in buckets:
            for indices, batch in self.batches([clipped[i] for i in bucket], batch_size=len(bucket)):
                if pad_length is not None:
                    extra = pad_length(batch["input_ids"].shape[1]) - batch["input_ids"].shape[1]
                    batch = {**batch, "input_ids": F.pad(batch["input_ids"], (0, extra), value=PAD_ID),  # (B, T')
                             "pad_mask": F.pad(batch["pad_mask"], (0, extra), value=True)}  # (B, T')
                for position, row in zip(indices, self.probabilities(batch).tolist()):  # (B, num_labels)
                    index = bucket[position]
                    best = max(range(len(row)), key=row.__getitem__)
                    result = {"label": labels[best], "score": round(row[best], 4), "truncated": truncated[index],
                              "scores": {label: round(p, 4) for label, p in zip(labels, row)}}
                    if multilabel:
                        result["labels"] = [label for label, p, cut in zip(labels, row, cuts) if p >= cut]
                    rows[index] = result
        return rows

    def logits(self, batch: dict) -> torch.Tensor:
        """`(B, 1)` (binary) or `(B, num_labels)` raw logits of a collated batch."""
        key = "input_ids" if "input_ids" in batch else "features"
        return self.model(*classifier_arguments(batch, key, self.device))

    def probabilities(self, batch: dict) -> torch.Tensor:
        """`(B, num_labels)` calibrated probabilities (on the CPU)."""
        return self.model.scores(self.logits(batch) / self.temperature).cpu()

    def describe(self, scores: torch.Tensor) -> list[dict[str, Any]]:
        """`(B, num_labels)` probabilities -> per row `{"label", "score"}` (multi-label: `"labels"`, `"scores"`)."""
        rows = scores.tolist()  # one conversion per batch, not an .item() per value
        if self.model.config.task == "multilabel":
            cut = self.thresholds or [self.threshold] * len(self.labels)
            return [{"labels": [self.labels[i] for i, s in enumerate(row) if s >= cut[i]],
                     "scores": [round(s, 4) for i, s in enumerate(row) if s >= cut[i]]} for row in rows]  # fmt: skip
        best = scores.argmax(dim=-1).tolist()
        return [{"label": self.labels[b], "score": round(row[b], 4)} for b, row in zip(best, rows)]

    def explain(self, texts: str | Iterable[str], *, label: str | None = None, steps: int = DEFAULT_STEPS
                ) -> list[dict[str, Any]]:
        """Per text, signed attributions per word for `label` (default: the predicted one) from the
        BiLSTM (integrated gradients, `steps` steps) and the n-gram part (exact); `inference/explain.py`."""
        return explain_classifier(self, as_texts(texts), label=label, steps=steps)

    @torch.no_grad()
    def predict_features(self, sequences: Sequence[Any], *, batch_size: int = 64) -> list[dict[str, Any]]:
        """For feature-sequence models (time series): each item a (T, D) array or nested list."""
        results = []
        for start in range(0, len(sequences), batch_size):
            chunk = [{"features": torch.as_tensor(s, dtype=torch.float32)} for s in sequences[start : start + batch_size]]
            results += [{"text": None, **row} for row in self.describe(self.probabilities(collate_features(chunk)))]
        return results


def load_classifier(path: Path, model_file: ModelFile, *, device: torch.device) -> ClassifierPredictor:
    """Rebuild a `ClassifierPredictor` from a model directory whose `config.json` was already read."""
    model = TextClassifier(model_file.model)
    load_state(path, model)
    tokenizer = load_model_tokenizer(path, model_file) if model_file.model.vocab_size is not None else None
    return ClassifierPredictor(
        model, tokenizer, labels=model_file.labels, temperature=model_file.temperature,
        threshold=model_file.threshold, thresholds=model_file.thresholds, device=device,
        ngrams=load_model_ngrams(path, model),
    )


def load_model_ngrams(path: Path, model: TextClassifier) -> WordNgrams | None:
    """The n-gram features of a model with a linear part (`word_ngrams.json` and `.tsv` beside its config)."""
    if not model.config.has_linear_part:
        return None
    ngrams = load_word_ngrams(path)
    if len(ngrams) != model.config.ngram_features:
        raise NlpLstmError(f"{path} has {len(ngrams)} word n-grams but the model expects {model.config.ngram_features}; "
                           "the word_ngrams files do not belong to this model")
    return ngrams

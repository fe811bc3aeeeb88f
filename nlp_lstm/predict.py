"""Loaded models ready to predict: `nlp_lstm.load(DIR)` returns one of these."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from nlp_lstm.config import ClassifierConfig, from_dict
from nlp_lstm.data.collate import collate_classification, collate_features
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.model_dir import load_model_tokenizer, load_state, read_model_config
from nlp_lstm.models.classifier import TextClassifier


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from nlp_lstm.errors import NlpLstmError

        raise NlpLstmError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


class Classifier:
    """A text classifier with its tokenizer and label names."""

    kind = "classifier"

    def __init__(self, model: TextClassifier, tokenizer: Tokenizer | None, *, labels: list[str], max_length: int,
                 threshold: float = 0.5, device: torch.device | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.threshold = threshold
        self.device = device or torch.device("cpu")
        self.model.to(self.device)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[dict[str, Any]]:
        """Label and score per text: `{"text", "label", "score"}` (multi-label: `"labels"`, `"scores"`)."""
        if isinstance(texts, str):
            texts = [texts]
        if any(not text.strip() for text in texts):
            # stacklevel 3: past torch.no_grad's wrapper, to the caller's line.
            warnings.warn("empty or whitespace-only text: predicted from the unknown token alone", stacklevel=3)
        results: list[dict[str, Any]] = [{}] * len(texts)
        for indices, batch in self.batches(texts, batch_size=batch_size):
            scores = self._scores(batch["input_ids"], batch)
            for index, row in zip(indices, self._describe_rows(scores)):
                results[index] = {"text": texts[index], **row}
        return results

    def batches(self, texts: Sequence[str], *, batch_size: int = 64) -> Iterator[tuple[list[int], dict]]:
        """Tokenized batches as `predict` runs them: `(indices into texts, collated batch)` pairs.

        Texts are sorted by token count first, so each batch pads little: the LSTM runs every row to
        the batch's longest (the float and int8 encoders both compute through padding for a
        classifier). `indices` restore the input order.
        """
        ids = [seq[: self.max_length] or [self.tokenizer.unk_id] for seq in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):  # collated as predict reaches them, not all at once
            chunk = order[start : start + batch_size]
            yield chunk, collate_classification([{"input_ids": ids[i], "length": len(ids[i])} for i in chunk])

    def _scores(self, inputs: torch.Tensor, batch: dict) -> torch.Tensor:
        logits = self.model(inputs.to(self.device), batch["lengths"].to(self.device), batch["pad_mask"].to(self.device))
        return self.model.scores(logits).cpu()

    def _describe_rows(self, scores: torch.Tensor) -> list[dict[str, Any]]:
        """`(B, num_labels)` probabilities -> per row `{"label", "score"}` (multi-label: `"labels"`, `"scores"`)."""
        rows = scores.tolist()  # one conversion per batch, not an .item() per value
        if self.model.config.task == "multilabel":
            return [{"labels": [self.labels[i] for i, s in enumerate(row) if s >= self.threshold],
                     "scores": [round(s, 4) for s in row if s >= self.threshold]} for row in rows]  # fmt: skip
        best = scores.argmax(dim=-1).tolist()
        return [{"label": self.labels[b], "score": round(row[b], 4)} for b, row in zip(best, rows)]

    @torch.no_grad()
    def predict_features(self, sequences: Sequence[Any], *, batch_size: int = 64) -> list[dict[str, Any]]:
        """For feature-sequence models (time series): each item a (T, D) array or nested list."""
        results = []
        for start in range(0, len(sequences), batch_size):
            chunk = [{"features": torch.as_tensor(s, dtype=torch.float32)} for s in sequences[start : start + batch_size]]
            batch = collate_features(chunk)
            scores = self._scores(batch["features"], batch)
            results += [{"text": None, **row} for row in self._describe_rows(scores)]
        return results


def load(directory: str | Path, *, device: str = "auto"):
    """Rebuild a saved model from its directory (config.json + model.safetensors + tokenizer/)."""
    path = Path(directory)
    config = read_model_config(path)
    if config["kind"] == "summarizer":
        from nlp_lstm.summarization import load_summarizer

        return load_summarizer(path, config, device=pick_device(device))
    model_config = from_dict(ClassifierConfig, config["model"], where=f"{path / 'config.json'} [model]")
    model = TextClassifier(model_config)
    load_state(path, model)
    tokenizer = load_model_tokenizer(path, config) if model_config.vocab_size is not None else None
    return Classifier(
        model, tokenizer, labels=config["labels"], max_length=config["max_length"],
        threshold=config.get("threshold", 0.5), device=pick_device(device),
    )

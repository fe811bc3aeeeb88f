"""Task adapters: what the shared training loop needs to know about each model family."""

from __future__ import annotations

from typing import Any, Callable

import torch

from nlp_lstm.data.collate import collate_classification, collate_features
from nlp_lstm.metrics.classification import ClassificationCounts
from nlp_lstm.training import distributed


class ClassificationTask:
    """Token-id or float-feature classification, scored by macro-F1 on validation."""

    metric_name = "macro_f1"

    def __init__(self, label_names: list[str], *, features: bool = False, threshold: float = 0.5) -> None:
        self.label_names = label_names
        self.threshold = threshold
        self.collate = collate_features if features else collate_classification
        self.input_key = "features" if features else "input_ids"

    def logits(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(batch[self.input_key], batch["lengths"], batch["pad_mask"])

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        # The forward goes through `model` (a DDP wrapper during distributed training, whose forward
        # sets up the gradient all-reduce); `loss` is a method of the module inside.
        return distributed.unwrap(model).loss(self.logits(model, batch), batch["labels"])

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        pass

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class scores and the mean loss over `batches()`.

        `all_reduce=True` (DDP: each rank passes its own part of the split): the counts and the loss
        sum are summed over ranks first, so every rank returns the whole split's metrics.
        """
        model.eval()
        counts = ClassificationCounts(len(self.label_names))
        loss_sum, total = 0.0, 0
        for batch in batches():
            logits = self.logits(model, batch)
            loss_sum += model.loss(logits, batch["labels"]).item() * logits.size(0)
            total += logits.size(0)
            counts.update(model.predict_labels(logits, self.threshold).cpu(), batch["labels"].cpu())
        model.train()
        if all_reduce:
            counts = distributed.all_reduce_counts(counts)
            loss_sum, total = distributed.all_reduce_sum(torch.tensor([loss_sum, total], dtype=torch.float64)).tolist()
        metrics = counts.compute(self.label_names)
        metrics["loss"] = loss_sum / max(1, total)
        return metrics

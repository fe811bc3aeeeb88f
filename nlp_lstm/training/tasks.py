"""Task adapters: what the shared training loop (`loop.fit`) needs to know about each model family.

Each adapter gives the loop its `collate`, `loss`, `on_epoch_start` and `evaluate` (the validation
metrics, `metric_name` the one to maximise). `evaluate` leaves the model in the mode it found it in.
Under DDP the loop calls `evaluate(model, batches, all_reduce=True)`: `batches` are this rank's part
of the split, and counts are summed over ranks before ratios are computed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from nlp_lstm.config import TrainConfig
from nlp_lstm.data.collate import classifier_arguments, collate_classification, collate_features, collate_summarization
from nlp_lstm.data.encode import ids_to_text
from nlp_lstm.data.specials import EOS_ID
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.decoding.greedy import greedy_decode
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.calibration import CalibrationCounts
from nlp_lstm.metrics.classification import ClassificationCounts
from nlp_lstm.metrics.rouge import RougeCounts
from nlp_lstm.models.transfer import apply_gradual_unfreezing, discriminative_parameter_groups
from nlp_lstm.nn.modes import evaluation_mode
from nlp_lstm.training import distributed

VALIDATION_DECODE_LIMIT = 500  # summarizer examples greedily decoded per validation pass (keeps epochs fast)


class ClassificationTask:
    """Token-id or float-feature classification, scored by macro-F1 on validation."""

    metric_name = "macro_f1"

    def __init__(self, label_names: list[str], *, features: bool = False, threshold: float | list[float] = 0.5,
                 temperature: float = 1.0) -> None:
        self.label_names = label_names
        self.threshold = torch.tensor(threshold) if isinstance(threshold, list) else threshold  # (L,) per label
        self.temperature = temperature
        self.collate = collate_features if features else collate_classification
        self.input_key = "features" if features else "input_ids"
        self.unfreezing_groups: list[dict] | None = None  # set by `parameter_groups` for gradual unfreezing

    def logits(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(*classifier_arguments(batch, self.input_key))

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        # The forward goes through `model` (a DDP wrapper during distributed training, whose forward
        # sets up the gradient all-reduce); `loss` is a method of the module inside.
        parts = model(*classifier_arguments(batch, self.input_key), parts=True)
        return distributed.unwrap(model).training_loss(parts, batch["labels"])

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        if self.unfreezing_groups is not None:
            apply_gradual_unfreezing(self.unfreezing_groups, epoch)

    def parameter_groups(self, model: torch.nn.Module, config: TrainConfig) -> list[dict] | None:
        """ULMFiT's layer groups when `config.layer_lr_decay` > 1 (discriminative learning rates) or
        `config.gradual_unfreezing` is on; else None (one group)."""
        if getattr(model, "embedding", None) is None or (config.layer_lr_decay == 1.0 and not config.gradual_unfreezing):
            return None
        groups = discriminative_parameter_groups(model, learning_rate=config.learning_rate, decay=config.layer_lr_decay)
        if config.gradual_unfreezing:
            if distributed.world_size() > 1:
                raise NlpLstmError("gradual_unfreezing trains in one process (DistributedDataParallel cannot "
                                   "freeze parameters after wrapping): drop --nproc-per-node or the setting")
            self.unfreezing_groups = groups
        return groups

    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class scores, the mean loss, and the calibration of the
        temperature-scaled probabilities (`ece` over 15 bins, `brier`, `reliability` bins) over `batches()`."""
        counts = ClassificationCounts(len(self.label_names))
        calibration = CalibrationCounts()
        loss_sum, total = 0.0, 0
        with evaluation_mode(model):
            for batch in batches():
                logits = self.logits(model, batch)
                labels = batch["labels"]
                loss_sum += model.loss(logits, labels).item() * logits.size(0)
                total += logits.size(0)
                threshold = self.threshold.to(logits.device) if torch.is_tensor(self.threshold) else self.threshold
                counts.update(model.predict_labels(logits, threshold).cpu(), labels.cpu())
                scores = model.scores(logits / self.temperature).cpu()
                binary = getattr(model, "config", None) is not None and model.config.task == "binary"
                calibration.update(scores[:, 1] if binary else scores, labels.cpu())
        if all_reduce:
            counts = distributed.all_reduce_counts(counts)
            calibration = distributed.all_reduce_counts(calibration)
            loss_sum, total = distributed.all_reduce_sum(torch.tensor([loss_sum, total], dtype=torch.float64)).tolist()
        metrics = counts.compute(self.label_names)
        metrics["loss"] = loss_sum / max(1, total)
        metrics["ece"] = calibration.expected_calibration_error()
        metrics["brier"] = calibration.brier_score()
        metrics["reliability"] = calibration.reliability().to_dict()
        return metrics


class SummarizationTask:
    """Teacher-forced NLL (+ coverage loss late in training); validated by ROUGE-L of greedy outputs.

    ROUGE-L is computed on the first `decode_limit` validation examples in the sampler's order (the
    loss on all of them), against the references as the encoder saw them (truncated to the target
    limit; target words outside the vocabulary and the source read as `<unk>`).
    """

    metric_name = "rougeL"

    def __init__(self, tokenizer: Tokenizer, *, coverage_from_epoch: int = 0, coverage_weight: float = 1.0,
                 max_length: int, decode_limit: int = VALIDATION_DECODE_LIMIT) -> None:
        self.tokenizer = tokenizer
        self.coverage_from_epoch = coverage_from_epoch
        self.coverage_weight = coverage_weight
        self.max_length = max_length
        self.decode_limit = decode_limit
        self.collate = collate_summarization

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(batch)["loss"]

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        # See et al. (2017) sec. 4: coverage is trained only for the last part of training.
        start = self.coverage_from_epoch
        distributed.unwrap(model).coverage_weight = self.coverage_weight if start and epoch >= start else 0.0

    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False
                 ) -> dict[str, Any]:
        """Mean NLL per target token over `batches()`, ROUGE of greedy outputs on the first `decode_limit`."""
        model = distributed.unwrap(model)
        loss_sum, tokens, decoded = 0.0, 0, 0
        counts = RougeCounts()
        with evaluation_mode(model):
            for batch in batches():
                out = model(batch)
                loss_sum += out["nll"].item() * out["num_tokens"]
                tokens += out["num_tokens"]
                if decoded < self.decode_limit:
                    outputs = greedy_decode(model, batch, max_length=self.max_length)
                    references = [
                        ids_to_text(row[: length - (row[length - 1] == EOS_ID)], oovs, self.tokenizer)  # no EOS
                        for row, length, oovs in zip(
                            batch["target_ids"].tolist(), batch["tgt_lengths"].tolist(), batch["oovs"]
                        )
                    ]
                    predictions = [ids_to_text(ids, oovs, self.tokenizer) for ids, oovs in zip(outputs, batch["oovs"])]
                    counts.update(predictions, references)
                    decoded += len(outputs)
        if all_reduce:
            counts = distributed.all_reduce_counts(counts)
            sums = distributed.all_reduce_sum(torch.tensor([loss_sum, tokens], dtype=torch.float64))
            loss_sum, tokens = sums.tolist()
        metrics = counts.compute()
        metrics["loss"] = loss_sum / max(1, tokens)
        return metrics


class LanguageModelTask:
    """Forward + backward next-token NLL; validated by perplexity (lower is better)."""

    metric_name = "perplexity"
    metric_goal = "min"

    def __init__(self) -> None:
        self.collate = collate_classification  # ids without specials; the model frames them

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(batch["input_ids"], batch["lengths"], batch["pad_mask"])["loss"]

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        pass

    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False) -> dict[str, Any]:
        """Perplexity of both directions (and each) over `batches()`, summed over ranks under DDP."""
        sums = torch.zeros(4, dtype=torch.float64)  # nll, tokens, forward nll, backward nll
        with evaluation_mode(model):
            for batch in batches():
                out = distributed.unwrap(model)(batch["input_ids"], batch["lengths"], batch["pad_mask"])
                sums += torch.tensor([float(out["nll_sum"]), float(out["num_tokens"]), float(out["forward_nll_sum"]),
                                      float(out["backward_nll_sum"])], dtype=torch.float64)
        if all_reduce:
            sums = distributed.all_reduce_sum(sums)
        nll, tokens, forward, backward = sums.tolist()
        tokens = max(tokens, 1.0)
        return {"perplexity": math.exp(nll / tokens), "forward_perplexity": math.exp(2 * forward / tokens),
                "backward_perplexity": math.exp(2 * backward / tokens), "loss": nll / tokens}

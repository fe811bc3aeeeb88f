"""The classifier's stages: `encode`, `train` (through the shared skeleton), `evaluate_classifier`, `classify`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import torch

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, read_json, staged_directory
from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.columns import drop_unknown_labels, is_multilabel, is_stream, label_names
from nlp_lstm.data.encode import encode_classification
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.tokenize import Tokenizer, load_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.inference.load import load
from nlp_lstm.model_dir import ModelFile, save_model
from nlp_lstm.metrics.calibration import calibrated_nll, fit_temperature, pick_thresholds
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.models.transfer import init_classifier_from_language_model
from nlp_lstm.plots import plot_confusion_matrix, plot_reliability_diagram
from nlp_lstm.stages.language_model import language_model_weights, read_language_model, with_encoder_sizes
from nlp_lstm.stages.run import run_tokenizer, score_dataset, train_stage
from nlp_lstm.training.loop import TrainResult, iterate_batches
from nlp_lstm.nn.modes import evaluation_mode
from nlp_lstm.training.tasks import ClassificationTask

ENCODE_META = "encode.json"
# A classifier's defaults, measured on three corpora (BENCHMARKS.md, "Classifier defaults"): subword
# pieces so no word is unknown, and a shorter, more regularised schedule than the shared TrainConfig's.
DEFAULT_TOKENIZER = {"kind": "sentencepiece", "vocab_size": 8000}
DEFAULT_TRAINING = {"epochs": 8, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 0.1, "patience": 2}


def default_training(**settings) -> TrainConfig:
    """The classifier's training defaults with `settings` (given options) on top."""
    return from_dict(TrainConfig, {**DEFAULT_TRAINING, **settings}, where="training settings")


def encode(source: DataSource, tokenizer_dir: str | Path, output_dir: str | Path, *, max_length: int = 256,
           num_proc: int | None = None, overwrite: bool = False) -> datasets.DatasetDict:
    """Tokenize every split into ids and save it (Arrow, `save_to_disk`) with the label names.

    `num_proc` encodes Arrow data in that many processes (`Dataset.map(num_proc=...)`); a streamed
    source (`source.streaming`) is read once per split in this process instead.
    """
    output = Path(output_dir)
    check_output_dir(output, overwrite=overwrite)
    tokenizer = load_tokenizer(tokenizer_dir)
    if not source.label_column:
        raise NlpLstmError("encode for classification needs --label-column")
    splits = load_splits(source)
    names = label_names(splits["train"], source.label_column)
    multi_label = is_multilabel(splits["train"], source.label_column)
    encoded = _encode_splits(splits, tokenizer, source, names, multi_label=multi_label, max_length=max_length,
                             num_proc=num_proc)
    with staged_directory(output) as staging:
        encoded.save_to_disk(str(staging / "data"))
        tokenizer.save(staging / "tokenizer")
        atomic_write_json(staging / ENCODE_META, {
            "task": "classifier", "label_names": names, "multi_label": multi_label, "max_length": max_length,
            "text_column": source.text_column, "label_column": source.label_column,
        })
    return encoded


def _encode_splits(splits, tokenizer: Tokenizer, source: DataSource, names: list[str], *, multi_label: bool,
                   max_length: int, num_proc: int | None = None) -> datasets.DatasetDict:
    return datasets.DatasetDict({
        split: encode_classification(
            data, tokenizer, text_column=source.text_column, label_column=source.label_column, label_names=names,
            multi_label=multi_label, max_length=max_length, num_proc=num_proc,
        )
        for split, data in splits.items()
    })


def load_encoded(encoded_dir: str | Path) -> tuple[datasets.DatasetDict, Tokenizer, dict[str, Any]]:
    path = Path(encoded_dir)
    meta = read_json(path / ENCODE_META, what="encoded dataset description")
    return datasets.load_from_disk(str(path / "data")), load_tokenizer(path / "tokenizer"), meta


@dataclass
class ClassifierData:
    """What `ClassificationStage.prepare` gives the skeleton."""

    encoded: datasets.DatasetDict
    tokenizer: Tokenizer
    labels: list[str]
    multi_label: bool
    max_length: int  # the length the data was encoded with (an `encode` output's own)
    columns: dict[str, str] = field(default_factory=dict)


@dataclass
class ClassificationStage:
    """Train a `TextClassifier` from raw data (`source`) or an `encode` output (`encoded_dir`)."""

    model: ClassifierConfig
    training: TrainConfig
    source: DataSource | None = None
    encoded_dir: str | Path | None = None
    tokenizer_dir: str | Path | None = None
    tokenizer_settings: dict[str, Any] | None = None

    def describe_data(self) -> tuple[str, str | None]:
        if self.source is None:
            return f"the encoded dataset {self.encoded_dir}", None
        return self.source.describe(), self.source.dataset

    def prepare(self, output: Path, *, reuse_tokenizer: bool) -> ClassifierData:
        tokenizer_dir = self.tokenizer_dir
        if self.model.init_from is not None:
            # The language model's tokenizer: its ids are what the pretrained embedding rows mean.
            lm_tokenizer = Path(self.model.init_from) / "tokenizer"
            read_language_model(self.model.init_from)
            if tokenizer_dir is not None and load_tokenizer(tokenizer_dir).fingerprint != load_tokenizer(lm_tokenizer).fingerprint:
                raise NlpLstmError(f"--tokenizer {tokenizer_dir} is not the tokenizer of --init-from {self.model.init_from}; "
                                   "drop --tokenizer (the language model's is used)")
            tokenizer_dir = lm_tokenizer
        if self.encoded_dir is not None:
            encoded, tokenizer, meta = load_encoded(self.encoded_dir)
            if self.model.init_from is not None and tokenizer.fingerprint != load_tokenizer(tokenizer_dir).fingerprint:
                raise NlpLstmError(f"--encoded {self.encoded_dir} was encoded with another tokenizer than --init-from "
                                   f"{self.model.init_from}'s; encode with --tokenizer {tokenizer_dir}")
            return ClassifierData(encoded, tokenizer, meta["label_names"], meta["multi_label"], meta["max_length"],
                                  {"text": meta["text_column"], "label": meta["label_column"]})
        source = self.source
        if source is None:
            raise NlpLstmError("train needs a data source (--train-file or --dataset) or an encoded dataset")
        if not source.label_column:
            raise NlpLstmError("training a classifier needs --label-column")
        splits = load_splits(source)
        names = label_names(splits["train"], source.label_column)
        multi_label = is_multilabel(splits["train"], source.label_column)
        for split in ("validation", "test"):
            if split in splits and not is_stream(splits[split]):
                splits[split] = drop_unknown_labels(splits[split], source.label_column, names, f"the {split} split")
        tokenizer = run_tokenizer(output, splits["train"], [source.text_column], tokenizer_dir,
                                  self.tokenizer_settings, reuse=reuse_tokenizer)
        encoded = _encode_splits(splits, tokenizer, source, names, multi_label=multi_label,
                                 max_length=self.model.max_length)
        return ClassifierData(encoded, tokenizer, names, multi_label, self.model.max_length,
                              {"text": source.text_column, "label": source.label_column})

    def build(self, prepared: ClassifierData) -> TextClassifier:
        names = prepared.labels
        task = "multilabel" if prepared.multi_label else ("binary" if len(names) == 2 else "multiclass")
        network = TextClassifier(replace(self.model, num_labels=len(names), task=task,
                                         vocab_size=prepared.tokenizer.vocab_size, max_length=prepared.max_length))
        if self.model.init_from is not None:
            state, lm_config, _ = language_model_weights(self.model.init_from)
            with torch.no_grad():
                init_classifier_from_language_model(network, state, lm_config)
        return network

    def task(self, prepared: ClassifierData) -> ClassificationTask:
        return ClassificationTask(prepared.labels)

    def finish(self, network: TextClassifier, prepared: ClassifierData, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]:
        temperature, thresholds, bag_weight = calibrate(network, prepared.encoded["validation"],
                                                        labels=prepared.labels, device=device)
        predictor = ClassifierPredictor(network, prepared.tokenizer, labels=prepared.labels, temperature=temperature,
                                        thresholds=thresholds, device=device)
        metrics: dict[str, Any] = {"temperature": temperature}
        if network.ngrams is not None:
            metrics["ngram_weight"] = bag_weight
        for split in ("validation", "test"):
            if split in prepared.encoded:
                metrics[split] = score_encoded(predictor, task_for(predictor), prepared.encoded[split])
                unscaled = ClassificationTask(prepared.labels, threshold=thresholds or 0.5)
                metrics[split]["ece_before_scaling"] = score_encoded(predictor, unscaled, prepared.encoded[split])["ece"]
        model_file = ModelFile(kind="classifier", model=network.config, training=self.training,
                               labels=prepared.labels, temperature=temperature, thresholds=thresholds,
                               columns=prepared.columns)
        save_model(staging, model_file=model_file, state=network.state_dict(), tokenizer=prepared.tokenizer)
        final = metrics.get("test", metrics["validation"])
        plot_confusion_matrix(final["confusion_matrix"], prepared.labels, staging / "plots" / "confusion_matrix.png")
        plot_reliability_diagram(final["reliability"], staging / "plots" / "reliability_diagram.png")
        return metrics


def task_for(predictor: ClassifierPredictor) -> ClassificationTask:
    """The task adapter that scores `predictor` as it predicts: its thresholds and temperature."""
    return ClassificationTask(predictor.labels, threshold=predictor.thresholds or predictor.threshold,
                              temperature=predictor.temperature)


# Weights of the n-gram bag against the BiLSTM tried on validation; the first of equals wins. Above 1
# the bag leads: with the temperature fitted after, w = 3 is the BiLSTM's logits at a third of the bag's
# (validation NLL lowest at 3-4 on the three corpora measured; BENCHMARKS.md, "The bag's weight above 1").
BAG_WEIGHTS = (1.0, 1.5, 2.0, 3.0, 4.0, 0.75, 0.5, 0.25, 0.0)


@torch.no_grad()
def calibrate(network: TextClassifier, validation: datasets.Dataset, *, labels: list[str], device: torch.device
              ) -> tuple[float, list[float] | None, float | list[float]]:
    """Fit on the validation split, in order:

    1. the n-gram bag's weight against the BiLSTM: the one of `BAG_WEIGHTS` (0 to 4) whose combined
       logits `lstm + w * bag` have the lowest validation NLL (after temperature scaling); the bag's
       table is multiplied by it in place, so every runtime (PyTorch, ONNX, int8) predicts with it. A
       bag that cannot see what decides a label (a text's length, say) only adds noise, and falls to 0;
       one that sees more than the BiLSTM (topic words) rises above 1.
       Multi-label models get one weight per label;
    2. temperature scaling (Guo et al. 2017), or for multi-label models per-label thresholds that
       maximise each label's validation F1.

    Returns (temperature, thresholds, bag weight or per-label weights); the weight is 1.0 without a bag.
    """
    task = ClassificationTask(labels)
    sampler = LengthBucketSampler(validation["length"], batch_size=128, shuffle=False)
    lstm, bag, targets = [], [], []
    with evaluation_mode(network):
        for batch in iterate_batches(validation, sampler, task.collate, device):
            head, ngrams = network(batch[task.input_key], batch["lengths"], batch["pad_mask"], parts=True)
            lstm.append(head.cpu())
            if ngrams is not None:
                bag.append(ngrams.cpu())
            targets.append(batch["labels"].cpu())
    lstm, targets = torch.cat(lstm), torch.cat(targets)
    multilabel, binary = network.config.task == "multilabel", network.config.task == "binary"

    def form(logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1) if binary else logits

    weight: float | list[float] = 1.0
    logits = lstm
    if network.ngrams is not None:
        bag = torch.cat(bag)
        if multilabel:  # each label is its own binary classifier, with its own weight
            weight = [min(BAG_WEIGHTS, key=lambda w: calibrated_nll(lstm[:, j] + w * bag[:, j], targets[:, j], fit=False))
                      for j in range(lstm.shape[1])]  # fmt: skip
        else:
            weight = min(BAG_WEIGHTS, key=lambda w: calibrated_nll(form(lstm + w * bag), targets))
        scale = torch.tensor(weight, dtype=bag.dtype)  # () or (L,): one weight per output column
        network.ngrams.table.weight.mul_(scale.to(network.ngrams.table.weight.device))
        logits = lstm + scale * bag  # as the saved model predicts
    if multilabel:
        return 1.0, pick_thresholds(torch.sigmoid(logits), targets), weight
    return fit_temperature(form(logits), targets), None, weight


def train(*, output_dir: str | Path, source: DataSource | None = None, encoded_dir: str | Path | None = None,
          tokenizer_dir: str | Path | None = None, tokenizer_settings: dict[str, Any] | None = None,
          model: ClassifierConfig | dict[str, Any] | None = None, training: TrainConfig | None = None,
          overwrite: bool = False, resume: bool = False, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train a text classifier from raw data (`source`) or an `encode` output, into `output_dir`.

    Fits a tokenizer when none is given (sentencepiece, 8,000 pieces, unless `tokenizer_settings` say
    otherwise); `training` defaults to `default_training()`. `model` is a `ClassifierConfig` (or a dict of its fields);
    the label count, task and vocabulary size come from the data. Returns the metrics
    (`validation`, and `test` when there is a test split).
    """
    if not isinstance(model, ClassifierConfig):
        settings = dict(model or {})
        if settings.get("init_from"):
            settings = with_encoder_sizes(settings["init_from"], settings)  # sizes not given come from the LM
        model = from_dict(ClassifierConfig, settings, where="model settings")
    stage = ClassificationStage(model=model, training=training or default_training(), source=source,
                                encoded_dir=encoded_dir, tokenizer_dir=tokenizer_dir,
                                tokenizer_settings={**DEFAULT_TOKENIZER, **(tokenizer_settings or {})})
    return train_stage(stage, output_dir=output_dir, overwrite=overwrite, resume=resume, device=device,
                       progress=progress)


def score_encoded(predictor: ClassifierPredictor, task: ClassificationTask, data: datasets.Dataset) -> dict[str, Any]:
    return score_dataset(predictor.model, task, data, predictor.device)


def evaluate_classifier(model_dir: str | Path, source: DataSource, *, split: str = "test",
                        plots_dir: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Score a saved classifier on one split: accuracy, macro-F1, per class, confusion matrix."""
    predictor = load(model_dir, device=device, expect="classifier")
    if not source.label_column:
        raise NlpLstmError("evaluate needs --label-column")
    data = load_split(source, split)
    encoded = encode_classification(
        data, predictor.tokenizer, text_column=source.text_column, label_column=source.label_column,
        label_names=predictor.labels, multi_label=predictor.model.config.task == "multilabel",
        max_length=predictor.max_length,
    )
    metrics = score_encoded(predictor, task_for(predictor), encoded)
    metrics["split"] = split
    if plots_dir is not None:
        plot_confusion_matrix(metrics["confusion_matrix"], predictor.labels, Path(plots_dir) / "confusion_matrix.png")
        plot_reliability_diagram(metrics["reliability"], Path(plots_dir) / "reliability_diagram.png")
    return metrics

"""The classifier's stages: `encode`, `train` (through the shared skeleton), `evaluate_classifier`, `classify`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, read_json, staged_directory
from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.collate import classifier_arguments, take_rows
from nlp_lstm.data.columns import drop_unknown_labels, is_multilabel, is_stream, iter_texts, label_names
from nlp_lstm.data.encode import encode_classification
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.tokenizers import load_tokenizer
from nlp_lstm.data.vectors import PretrainedEmbedding, load_pretrained_embedding, vector_dim
from nlp_lstm.data.word_ngrams import WordNgrams, fit_word_ngrams, load_word_ngrams
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.inference.load import load
from nlp_lstm.model_dir import ModelFile, save_model
from nlp_lstm.metrics.calibration import calibrated_nll, fit_temperature, pick_thresholds
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.models.transfer import init_classifier_from_language_model
from nlp_lstm.plots import plot_confusion_matrix, plot_reliability_diagram
from nlp_lstm.stages.language_model import language_model_weights, read_language_model, with_encoder_sizes
from nlp_lstm.stages.run import DEFAULT_TOKENIZER, StageKind, run_tokenizer, score_dataset, train_stage
from nlp_lstm.training.linear_fit import fit_linear, sparse_rows
from nlp_lstm.training.loop import TrainResult, iterate_batches
from nlp_lstm.nn.modes import evaluation_mode
from nlp_lstm.training.tasks import ClassificationTask

ENCODE_META = "encode.json"
# A classifier's defaults, measured on three corpora (BENCHMARKS.md, "Classifier defaults"): subword
# pieces so no word is unknown, and a shorter, more regularised schedule than the shared TrainConfig's.
DEFAULT_TRAINING = {"epochs": 8, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 0.1, "patience": 2}


def default_training(**settings) -> TrainConfig:
    """The classifier's training defaults with `settings` (given options) on top."""
    return from_dict(TrainConfig, {**DEFAULT_TRAINING, **settings}, where="training settings")


def encode(source: DataSource, tokenizer_dir: str | Path, output_dir: str | Path, *, max_length: int = 256,
           word_ngrams: int = ClassifierConfig.word_ngrams, char_ngrams: int = ClassifierConfig.char_ngrams,
           num_proc: int | None = None, overwrite: bool = False) -> datasets.DatasetDict:
    """Tokenize every split into ids and save it (Arrow, `save_to_disk`) with the label names, and
    the word n-gram features of the classifier's linear part (fitted on the training split; 0: none).

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
    ngrams = fit_ngrams(splits["train"], source.text_column, order=word_ngrams, char_order=char_ngrams)
    encoded = _encode_splits(splits, tokenizer, source, names, multi_label=multi_label, max_length=max_length,
                             ngrams=ngrams, num_proc=num_proc)
    with staged_directory(output) as staging:
        encoded.save_to_disk(str(staging / "data"))
        tokenizer.save(staging / "tokenizer")
        if ngrams is not None:
            ngrams.save(staging)
        atomic_write_json(staging / ENCODE_META, {
            "task": "classifier", "label_names": names, "multi_label": multi_label, "max_length": max_length,
            "text_column": source.text_column, "label_column": source.label_column,
        })
    return encoded


def fit_ngrams(train: datasets.Dataset, text_column: str, *, order: int, char_order: int) -> WordNgrams | None:
    """The linear part's n-gram vocabulary, fitted on the training texts (None for word order 0)."""
    if not order:
        return None
    return fit_word_ngrams(iter_texts(train, [text_column]), order=order, char_order=char_order)


def _encode_splits(splits, tokenizer: Tokenizer, source: DataSource, names: list[str], *, multi_label: bool,
                   max_length: int, ngrams: WordNgrams | None, num_proc: int | None = None) -> datasets.DatasetDict:
    return datasets.DatasetDict({
        split: encode_classification(
            data, tokenizer, text_column=source.text_column, label_column=source.label_column, label_names=names,
            multi_label=multi_label, max_length=max_length, ngrams=ngrams, num_proc=num_proc,
        )
        for split, data in splits.items()
    })


def load_encoded(encoded_dir: str | Path) -> tuple[datasets.DatasetDict, Tokenizer, WordNgrams | None, dict[str, Any]]:
    path = Path(encoded_dir)
    meta = read_json(path / ENCODE_META, what="encoded dataset description")
    ngrams = load_word_ngrams(path) if (path / "word_ngrams.json").is_file() else None
    return datasets.load_from_disk(str(path / "data")), load_tokenizer(path / "tokenizer"), ngrams, meta


@dataclass
class ClassifierData:
    """What `ClassificationStage.prepare` gives the skeleton."""

    encoded: datasets.DatasetDict
    tokenizer: Tokenizer
    labels: list[str]
    multi_label: bool
    max_length: int  # the length the data was encoded with (an `encode` output's own)
    ngrams: WordNgrams | None = None  # the linear part's features (None: no linear part)
    columns: dict[str, str] = field(default_factory=dict)
    embedding: PretrainedEmbedding | None = None  # word vectors the embedding starts from (`--embeddings`)
    # The linear part's fit depends on these features and labels alone, not on the BiLSTM: a search
    # (`stages/tune.py`) training many models on the same prepared data fits it once.
    linear_fits: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClassificationStage:
    """Train a `TextClassifier` from raw data (`source`) or an `encode` output (`encoded_dir`)."""

    model: ClassifierConfig
    training: TrainConfig
    source: DataSource | None = None
    encoded_dir: str | Path | None = None
    tokenizer_dir: str | Path | None = None
    tokenizer_settings: dict[str, Any] | None = None
    plots: bool = True  # the confusion matrix and reliability diagram in the model directory

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
        if self.model.embeddings is not None and (self.encoded_dir is not None or tokenizer_dir is not None):
            raise NlpLstmError("--embeddings brings its own word tokenizer (the vectors' words); "
                               "drop --tokenizer / --encoded and train from the raw data")
        if self.encoded_dir is not None:
            encoded, tokenizer, ngrams, meta = load_encoded(self.encoded_dir)
            wanted = (self.model.word_ngrams, self.model.char_ngrams if self.model.word_ngrams else 0)
            found = (ngrams.order, ngrams.char_order) if ngrams is not None else (0, 0)
            if self.model.word_ngrams and wanted != found:
                raise NlpLstmError(f"--encoded {self.encoded_dir} has n-gram features of orders {found} (words, "
                                   f"characters), not {wanted}; re-encode with --word-ngrams {wanted[0]} --char-ngrams "
                                   f"{wanted[1]}, or train with --word-ngrams {found[0]} --char-ngrams {found[1]}")
            if self.model.init_from is not None and tokenizer.fingerprint != load_tokenizer(tokenizer_dir).fingerprint:
                raise NlpLstmError(f"--encoded {self.encoded_dir} was encoded with another tokenizer than --init-from "
                                   f"{self.model.init_from}'s; encode with --tokenizer {tokenizer_dir}")
            return ClassifierData(encoded, tokenizer, meta["label_names"], meta["multi_label"], meta["max_length"],
                                  ngrams if self.model.word_ngrams else None,
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
        embedding = None
        if self.model.embeddings is not None:
            def fit_from_vectors() -> Tokenizer:
                nonlocal embedding
                embedding = load_pretrained_embedding(self.model.embeddings, iter_texts(splits["train"], [source.text_column]),
                                                      lang=(self.tokenizer_settings or {}).get("lang", "en"))
                return embedding.tokenizer
        tokenizer = run_tokenizer(output, splits["train"], [source.text_column], tokenizer_dir,
                                  self.tokenizer_settings, reuse=reuse_tokenizer,
                                  fit=fit_from_vectors if self.model.embeddings is not None else None)
        ngrams = fit_ngrams(splits["train"], source.text_column, order=self.model.word_ngrams,
                            char_order=self.model.char_ngrams)
        encoded = _encode_splits(splits, tokenizer, source, names, multi_label=multi_label,
                                 max_length=self.model.max_length, ngrams=ngrams)
        return ClassifierData(encoded, tokenizer, names, multi_label, self.model.max_length, ngrams,
                              {"text": source.text_column, "label": source.label_column}, embedding)

    def build(self, prepared: ClassifierData) -> TextClassifier:
        names = prepared.labels
        task = "multilabel" if prepared.multi_label else ("binary" if len(names) == 2 else "multiclass")
        ngram_features = len(prepared.ngrams) if prepared.ngrams is not None else None
        network = TextClassifier(replace(self.model, num_labels=len(names), task=task, ngram_features=ngram_features,
                                         vocab_size=prepared.tokenizer.vocab_size, max_length=prepared.max_length))
        if self.model.init_from is not None:
            state, lm_config, _ = language_model_weights(self.model.init_from)
            with torch.no_grad():
                init_classifier_from_language_model(network, state, lm_config)
        if prepared.embedding is not None:  # on --resume the checkpoint's weights replace these
            dim = prepared.embedding.weight.shape[1]
            if dim != network.config.embedding_dim:
                raise NlpLstmError(f"embedding_dim {network.config.embedding_dim} does not match the {dim}-dimensional "
                                   f"vectors in {self.model.embeddings}; set embedding_dim = {dim}")
            with torch.no_grad():
                network.embedding.weight.copy_(torch.from_numpy(prepared.embedding.weight))
        if self.model.embeddings is not None and self.model.freeze_embeddings:
            network.embedding.weight.requires_grad_(False)
        return network

    def task(self, prepared: ClassifierData) -> ClassificationTask:
        return ClassificationTask(prepared.labels)

    def finish(self, network: TextClassifier, prepared: ClassifierData, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if prepared.embedding is not None:
            coverage = prepared.embedding.coverage
            metrics["embeddings"] = {"found": coverage.found, "lowercased": coverage.lowercased,
                                     "missing": coverage.missing, "coverage": coverage.describe()}
        if network.ngrams is not None:
            metrics["linear_part"] = fit_linear_part(network, prepared.encoded, fits=prepared.linear_fits)
        temperature, thresholds, mix = calibrate(network, prepared.encoded["validation"],
                                                 labels=prepared.labels, device=device)
        predictor = ClassifierPredictor(network, prepared.tokenizer, labels=prepared.labels, temperature=temperature,
                                        thresholds=thresholds, device=device, ngrams=prepared.ngrams)
        metrics["temperature"] = temperature
        if network.ngrams is not None:
            metrics["linear_part"]["mix"] = mix
        for split in ("validation", "test"):
            if split in prepared.encoded:
                metrics[split] = score_encoded(predictor, task_for(predictor), prepared.encoded[split])
                unscaled = ClassificationTask(prepared.labels, threshold=thresholds or 0.5)
                metrics[split]["ece_before_scaling"] = score_encoded(predictor, unscaled, prepared.encoded[split])["ece"]
        model_file = ModelFile(kind="classifier", model=network.config, training=self.training,
                               labels=prepared.labels, temperature=temperature, thresholds=thresholds,
                               columns=prepared.columns)
        save_model(staging, model_file=model_file, state=network.state_dict(), tokenizer=prepared.tokenizer)
        if prepared.ngrams is not None:
            prepared.ngrams.save(staging)
        final = metrics.get("test", metrics["validation"])
        if self.plots:
            plot_confusion_matrix(final["confusion_matrix"], prepared.labels, staging / "plots" / "confusion_matrix.png")
            plot_reliability_diagram(final["reliability"], staging / "plots" / "reliability_diagram.png")
        return metrics


def task_for(predictor: ClassifierPredictor) -> ClassificationTask:
    """The task adapter that scores `predictor` as it predicts: its thresholds and temperature."""
    return ClassificationTask(predictor.labels, threshold=predictor.thresholds or predictor.threshold,
                              temperature=predictor.temperature)


def fit_linear_part(network: TextClassifier, encoded: datasets.DatasetDict, *, fits: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Fit the linear part's weights (a logistic regression on the word n-gram features of the
    training split, its L2 strength chosen on validation: `training/linear_fit.py`), in place.
    `fits` keeps the fit for the next model trained on the same `encoded` data."""
    def rows(split: str):
        data = encoded[split]
        columns = take_rows(data, np.arange(len(data)))  # Arrow columns, as training batches read them
        return (sparse_rows(columns.column("ngram_ids"), columns.column("ngram_weights"), network.config.ngram_features),
                np.asarray(data["labels"]))
    fit = (fits or {}).get("linear")
    if fit is None:
        train, train_labels = rows("train")
        validation, validation_labels = rows("validation")
        fit = fit_linear(train, train_labels, validation, validation_labels, task=network.config.task,
                         num_labels=network.config.num_labels)
        if fits is not None:
            fits["linear"] = fit
    device = network.ngrams.table.device
    network.ngrams.table.copy_(fit.table.to(device))
    network.ngrams.bias.copy_(fit.bias.to(device))
    return {"c": fit.c, "validation_score": round(fit.validation_score, 6), "features": network.config.ngram_features}


# Shares of the linear part in the stacked logits `(1 - a) * lstm + a * linear`, tried on validation.
MIX = tuple(i / 10 for i in range(11))


@torch.no_grad()
def calibrate(network: TextClassifier, validation: datasets.Dataset, *, labels: list[str], device: torch.device
              ) -> tuple[float, list[float] | None, float | list[float]]:
    """Fit on the validation split, in order:

    1. stacking: the share `a` of `MIX` whose logits `(1 - a) * lstm + a * linear` have the lowest
       validation NLL after temperature scaling (a held-out choice: the linear part fits the training
       split almost perfectly, so only held-out scores can say how far to trust it). The head and the
       linear part are scaled by `1 - a` and `a` in place, so every runtime (PyTorch, ONNX, int8)
       predicts with the mix. A model without a linear part keeps `a = 0`. Multi-label models get
       one share per label;
    2. temperature scaling (Guo et al. 2017), or for multi-label models per-label thresholds that
       maximise each label's validation F1.

    Returns (temperature, thresholds, the share or per-label shares).
    """
    task = ClassificationTask(labels)
    sampler = LengthBucketSampler(validation["length"], batch_size=128, shuffle=False)
    lstm, linear, targets = [], [], []
    with evaluation_mode(network):
        for batch in iterate_batches(validation, sampler, task.collate, device):
            head, part = network(*classifier_arguments(batch, task.input_key), parts=True)
            lstm.append(head.cpu())
            if part is not None:
                linear.append(part.cpu())
            targets.append(batch["labels"].cpu())
    lstm, targets = torch.cat(lstm), torch.cat(targets)
    multilabel, binary = network.config.task == "multilabel", network.config.task == "binary"

    def form(logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1) if binary else logits

    share: float | list[float] = 0.0
    logits = lstm
    if network.ngrams is not None:
        linear = torch.cat(linear)
        if multilabel:  # each label is its own binary classifier, with its own share
            # Without a temperature: multi-label models predict at T = 1, with per-label thresholds.
            share = [min(MIX, key=lambda a: calibrated_nll((1 - a) * lstm[:, j] + a * linear[:, j], targets[:, j],
                                                           fit=False))
                     for j in range(lstm.shape[1])]  # fmt: skip
        else:
            share = min(MIX, key=lambda a: calibrated_nll(form((1 - a) * lstm + a * linear), targets))
        weight = torch.tensor(share, dtype=lstm.dtype)  # () or (L,): one share per output column
        for tensor, scale in ((network.head.weight, (1 - weight).unsqueeze(-1)), (network.head.bias, 1 - weight),
                              (network.ngrams.table, weight), (network.ngrams.bias, weight)):
            tensor.mul_(scale.to(tensor.device))
        logits = (1 - weight) * lstm + weight * linear  # as the saved model predicts
    if multilabel:
        return 1.0, pick_thresholds(torch.sigmoid(logits), targets), share
    return fit_temperature(form(logits), targets), None, share


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
        if settings.get("embeddings"):
            settings = with_vector_size(settings["embeddings"], settings)
        model = from_dict(ClassifierConfig, settings, where="model settings")
    stage = ClassificationStage(model=model, training=training or default_training(), source=source,
                                encoded_dir=encoded_dir, tokenizer_dir=tokenizer_dir,
                                tokenizer_settings={**DEFAULT_TOKENIZER, **(tokenizer_settings or {})})
    return train_stage(stage, output_dir=output_dir, overwrite=overwrite, resume=resume, device=device,
                       progress=progress)


def with_vector_size(path: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with `embedding_dim` set to the vectors' dimension; one given must match it."""
    dim = vector_dim(path)
    given = settings.get("embedding_dim")
    if given is not None and int(given) != dim:
        raise NlpLstmError(f"--embedding-dim {given} does not match the {dim}-dimensional vectors in {path}; "
                           f"drop --embedding-dim (it follows the vectors) or pick vectors of {given} dimensions")
    return {**settings, "embedding_dim": dim}


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
        max_length=predictor.max_length, ngrams=predictor.ngrams,
    )
    metrics = score_encoded(predictor, task_for(predictor), encoded)
    metrics["split"] = split
    if plots_dir is not None:
        plot_confusion_matrix(metrics["confusion_matrix"], predictor.labels, Path(plots_dir) / "confusion_matrix.png")
        plot_reliability_diagram(metrics["reliability"], Path(plots_dir) / "reliability_diagram.png")
    return metrics


# --- what `nlp-lstm run` and `evaluate` do for a classifier (`stages/kinds.py`) -----------------------

def _pipeline_model(table: dict[str, Any]) -> dict[str, Any]:
    """Sizes a pipeline's `[model]` leaves out: the language model's (`init_from`), the vectors' dimension."""
    if table.get("init_from"):
        table = with_encoder_sizes(table["init_from"], table)
    if table.get("embeddings") and "embedding_dim" not in table:
        table = with_vector_size(table["embeddings"], table)
    return table


def _pipeline_train(pipe, *, source: DataSource, model_dir: Path, vocab_dir: Path, encoded_dir: Path, device: str,
                    progress: bool) -> None:
    if pipe.model.embeddings is not None:  # word vectors bring their own word tokenizer: trained from the data itself
        train(output_dir=model_dir, source=source, model=pipe.model, training=pipe.train, overwrite=True,
              device=device, progress=progress)
    else:
        train(output_dir=model_dir, encoded_dir=encoded_dir, model=pipe.model, training=pipe.train,
              overwrite=True, device=device, progress=progress)


def _pipeline_encode(pipe, *, source: DataSource, vocab_dir: Path, encoded_dir: Path) -> None:
    encode(source, vocab_dir, encoded_dir, max_length=pipe.model.max_length, word_ngrams=pipe.model.word_ngrams,
           char_ngrams=pipe.model.char_ngrams, overwrite=True)


STAGE = StageKind(
    kind="classifier", evaluate=evaluate_classifier, pipeline_train=_pipeline_train, pipeline_encode=_pipeline_encode,
    pipeline_inputs=lambda pipe: () if pipe.model.embeddings is not None else ("vocab", "encode"),
    model_table=_pipeline_model,
)

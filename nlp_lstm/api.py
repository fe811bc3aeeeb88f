"""The stage functions that the CLI and users call: vocab, encode, train, evaluate, classify.

Each takes keyword arguments and plain dataclasses and returns plain data; all behaviour lives here
(or below), so everything is testable without the command line.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import datasets

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, read_json, staged_directory
from nlp_lstm.config import ClassifierConfig, TrainConfig, from_dict
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.columns import label_names as find_label_names
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.encode import encode_classification
from nlp_lstm.data.tokenize import Tokenizer, fit_tokenizer, load_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.model_dir import read_model_config, save_model
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.plots import plot_confusion_matrix, plot_training_curves
from nlp_lstm.predict import Classifier, load, pick_device
from nlp_lstm.training.loop import fit, iterate_batches, seed_everything
from nlp_lstm.training.tasks import ClassificationTask

ENCODE_META = "encode.json"


def vocab(source: DataSource, output_dir: str | Path, *, kind: str = "spacy", vocab_size: int = 20000,
          min_freq: int = 2, lowercase: bool = True, model_type: str = "unigram") -> Tokenizer:
    """Fit a tokenizer on the training split's text (and summary) column and save it to `output_dir`."""
    train = load_split(source, "train")
    columns = [c for c in (source.text_column, source.summary_column) if c]
    tokenizer = fit_tokenizer(
        _texts(train, columns), kind=kind, vocab_size=vocab_size, min_freq=min_freq, lowercase=lowercase,
        model_type=model_type,
    )
    tokenizer.save(Path(output_dir))
    return tokenizer


def _texts(dataset: datasets.Dataset, columns: list[str]):
    """Stream texts batch by batch from Arrow; never the whole column as one Python list."""
    for batch in dataset.iter(batch_size=1000):
        for column in columns:
            yield from (text or "" for text in batch[column])


def _is_multilabel(dataset: datasets.Dataset, label_column: str) -> bool:
    feature = dataset.features[label_column]
    return isinstance(feature, (datasets.Sequence, list)) or getattr(feature, "_type", "") == "List"


def encode(source: DataSource, tokenizer_dir: str | Path, output_dir: str | Path, *, max_length: int = 256,
           num_proc: int | None = None, overwrite: bool = False) -> datasets.DatasetDict:
    """Tokenize every split into ids and save it (Arrow, `save_to_disk`) with the label names.

    `num_proc` encodes Arrow data in that many processes (`Dataset.map(num_proc=...)`); a streamed
    source (`source.streaming`) is read once per split in this process instead.
    """
    output = Path(output_dir)
    check_output_dir(output, overwrite=overwrite)
    tokenizer = load_tokenizer(tokenizer_dir)
    splits = load_splits(source)
    if not source.label_column:
        raise NlpLstmError("encode for classification needs --label-column")
    names = find_label_names(splits["train"], source.label_column)
    multi_label = _is_multilabel(splits["train"], source.label_column)
    encoded = datasets.DatasetDict({
        split: encode_classification(
            data, tokenizer, text_column=source.text_column, label_column=source.label_column,
            label_names=names, multi_label=multi_label, max_length=max_length, num_proc=num_proc,
        )
        for split, data in splits.items()
    })
    with staged_directory(output) as staging:
        encoded.save_to_disk(str(staging / "data"))
        tokenizer.save(staging / "tokenizer")
        atomic_write_json(staging / ENCODE_META, {
            "task": "classifier", "label_names": names, "multi_label": multi_label, "max_length": max_length,
            "text_column": source.text_column, "label_column": source.label_column,
        })
    return encoded


def load_encoded(encoded_dir: str | Path) -> tuple[datasets.DatasetDict, Tokenizer, dict[str, Any]]:
    path = Path(encoded_dir)
    meta = read_json(path / ENCODE_META, what="encoded dataset description")
    return datasets.load_from_disk(str(path / "data")), load_tokenizer(path / "tokenizer"), meta


def train(
    *,
    output_dir: str | Path,
    source: DataSource | None = None,
    encoded_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    tokenizer_settings: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    training: TrainConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a text classifier from raw data (`source`) or an `encode` output, into `output_dir`.

    Fits a tokenizer when none is given. The model directory is written only when training succeeds:
    a failed run leaves an earlier model in `output_dir` untouched. Returns the metrics.

    Under torchrun every rank calls this: each trains on its part of every batch (DDP), rank 0 alone
    writes the checkpoints and the model directory, and every rank returns rank 0's metrics.
    """
    from nlp_lstm.training import distributed

    training = training or TrainConfig()
    output = Path(output_dir)
    with distributed.process_group(pick_device(device)) as torch_device:
        main = distributed.is_main()

        def prepare():
            # Rank 0 first (`main_first`): it clears the output, fits and saves the tokenizer and fills
            # the datasets cache; the other ranks then reuse them (the kept tokenizer, as on --resume).
            if not resume and main:
                start_run_dir(output, overwrite=overwrite)
            if encoded_dir is not None:
                encoded, tokenizer, meta = load_encoded(encoded_dir)
                columns = {"text": meta["text_column"], "label": meta["label_column"]}
                return encoded, tokenizer, meta["label_names"], meta["multi_label"], columns
            if source is None:
                raise NlpLstmError("train needs a data source (--train-file or --dataset) or an encoded dataset")
            if not source.label_column:
                raise NlpLstmError("training a classifier needs --label-column")
            splits = load_splits(source)
            names = find_label_names(splits["train"], source.label_column)
            multi_label = _is_multilabel(splits["train"], source.label_column)
            tokenizer = resume_or_fit_tokenizer(output, splits["train"], [source.text_column], tokenizer_dir,
                                                tokenizer_settings, reuse=resume or not main)
            encoded = datasets.DatasetDict({
                split: encode_classification(
                    data, tokenizer, text_column=source.text_column, label_column=source.label_column,
                    label_names=names, multi_label=multi_label, max_length=training.max_length,
                )
                for split, data in splits.items()
            })
            return encoded, tokenizer, names, multi_label, {"text": source.text_column, "label": source.label_column}

        encoded, tokenizer, names, multi_label, columns = distributed.main_first(prepare)
        task_name = "multilabel" if multi_label else ("binary" if len(names) == 2 else "multiclass")
        config = from_dict(
            ClassifierConfig,
            {"num_labels": len(names), "task": task_name, "vocab_size": tokenizer.vocab_size, **(model or {})},
            where="model settings",
        )
        seed_everything(training.seed)  # the initial weights too, not only the data order
        network = TextClassifier(config)
        task = ClassificationTask(names)
        if "validation" not in encoded:
            raise NlpLstmError("no validation split; give --validation-file or leave validation_fraction > 0")
        result = fit(
            network, task=task, train_data=encoded["train"], validation_data=encoded["validation"], config=training,
            run_dir=output, device=torch_device, resume=resume, progress=progress,
        )
        metrics: dict[str, Any] | None = None
        if main:  # the other ranks wait in `broadcast_object` below
            network.load_state_dict(result.best_state)
            classifier = Classifier(network, tokenizer, labels=names, max_length=training.max_length, device=torch_device)
            metrics = {
                "best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                "train_seconds": round(result.seconds, 1),
                "validation": _score_encoded(classifier, task, encoded["validation"]),
            }
            if "test" in encoded:
                metrics["test"] = _score_encoded(classifier, task, encoded["test"])
            with staged_directory(output) as staging:
                save_model(staging, kind="classifier", state=network.state_dict(), tokenizer=tokenizer, config={
                    "model": asdict(config), "labels": names, "max_length": training.max_length, "threshold": 0.5,
                    "training": asdict(training), "columns": columns,
                })
                atomic_write_json(staging / "metrics.json", metrics)
                plot_training_curves(result.log, staging / "plots" / "training_curves.png")
                final = metrics.get("test", metrics["validation"])
                plot_confusion_matrix(final["confusion_matrix"], names, staging / "plots" / "confusion_matrix.png")
                keep_run_files(output, staging)
        return distributed.broadcast_object(metrics)


def start_run_dir(output: Path, *, overwrite: bool) -> None:
    """A new (not resumed) run: refuse a non-empty output without --overwrite; drop old checkpoints."""
    check_output_dir(output, overwrite=overwrite)
    shutil.rmtree(output / "checkpoints", ignore_errors=True)


def resume_or_fit_tokenizer(output: Path, train_split: datasets.Dataset, columns: list[str], tokenizer_dir,
                            settings: dict[str, Any] | None, *, reuse: bool) -> Tokenizer:
    """The run's tokenizer: given, or fitted on `columns` of the training split.

    It is kept beside the checkpoints, so --resume (and DDP ranks other than 0, `reuse`) continue
    with the same ids.
    """
    kept = output / "checkpoints" / "tokenizer"
    if reuse and kept.is_dir():
        return load_tokenizer(kept)
    if tokenizer_dir is not None:
        tokenizer = load_tokenizer(tokenizer_dir)
    else:
        tokenizer = fit_tokenizer(_texts(train_split, columns), **(settings or {}))
    tokenizer.save(kept)
    return tokenizer


def keep_run_files(output: Path, staging: Path) -> None:
    """Carry the training log and checkpoints into the staged model directory before it is swapped in."""
    for name in ("train_log.jsonl", "checkpoints"):
        if (output / name).exists():
            shutil.move(str(output / name), str(staging / name))


def _score_encoded(classifier: Classifier, task: ClassificationTask, data: datasets.Dataset) -> dict[str, Any]:
    sampler = LengthBucketSampler(data["length"], batch_size=128, shuffle=False)
    return task.evaluate(classifier.model, lambda: iterate_batches(data, sampler, task.collate, classifier.device))


def evaluate(model_dir: str | Path, source: DataSource, *, split: str = "test", plots_dir: str | Path | None = None,
             device: str = "auto", **decoding: Any) -> dict[str, Any]:
    """Score a saved classifier on one split: accuracy, macro-F1, per class, confusion matrix."""
    config = read_model_config(model_dir)
    if config["kind"] == "summarizer":
        from nlp_lstm.summarization import evaluate_summarizer

        return evaluate_summarizer(model_dir, source, split=split, device=device, plots_dir=plots_dir, **decoding)
    classifier = load(model_dir, device=device)
    data = load_split(source, split)
    label_column = source.label_column
    if not label_column:
        raise NlpLstmError("evaluate needs --label-column")
    encoded = encode_classification(
        data, classifier.tokenizer, text_column=source.text_column, label_column=label_column,
        label_names=classifier.labels, multi_label=classifier.model.config.task == "multilabel",
        max_length=classifier.max_length,
    )
    metrics = _score_encoded(classifier, ClassificationTask(classifier.labels, threshold=classifier.threshold), encoded)
    metrics["split"] = split
    if plots_dir is not None:
        plot_confusion_matrix(metrics["confusion_matrix"], classifier.labels, Path(plots_dir) / "confusion_matrix.png")
    return metrics


def classify(model_dir: str | Path, texts: Sequence[str], *, device: str = "auto", batch_size: int = 64,
             int8: bool = False) -> list[dict[str, Any]]:
    """Predict label and score for each text with a saved classifier.

    `int8` runs the encoder and head with dynamic int8 quantization (CPU only; see BENCHMARKS.md for
    its speed and accuracy on the sentiment pipeline).
    """
    read_model_config(model_dir, expect="classifier")
    classifier = load(model_dir, device="cpu" if int8 else device)
    if int8:
        from nlp_lstm.quantize import quantize_classifier

        classifier = quantize_classifier(classifier)
    return classifier.predict(texts, batch_size=batch_size)

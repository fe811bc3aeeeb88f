"""The `pretrain` stage: a forward + backward LSTM language model on unlabelled text (through the
shared skeleton), and what a classifier needs to start from one (`--init-from`).

Any data source works: unlabelled files (one text per line, or a text column), the training texts of
the task itself, a stream. Every given text column is a text of its own (e.g. `extract` and
`description` both). Validation perplexity per epoch is logged and plotted like any metric.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch

from nlp_lstm.artifacts import load_tensors
from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.columns import is_stream
from nlp_lstm.data.encode import encode_classification
from nlp_lstm.data.sources import DataSource, load_splits
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.data.tokenizers import load_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.model_dir import ModelFile, read_model_config, save_model
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig
from nlp_lstm.stages.run import DEFAULT_TOKENIZER, run_tokenizer, score_dataset, train_stage
from nlp_lstm.training.loop import TrainResult
from nlp_lstm.training.tasks import LanguageModelTask

ENCODER_SIZES = ("embedding_dim", "hidden_size", "num_layers")


def _stack_text_columns(split: datasets.Dataset, columns: list[str]) -> datasets.Dataset:
    """One `text` column holding every given column's texts, blank texts dropped."""
    parts = [split.select_columns([column]).rename_column(column, "text") if column != "text"
             else split.select_columns(["text"]) for column in columns]
    stacked = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return stacked.filter(lambda texts: [bool(t and t.strip()) for t in texts], input_columns=["text"], batched=True)


@dataclass
class LanguageModelData:
    encoded: dict[str, datasets.Dataset]
    tokenizer: Tokenizer


@dataclass
class LanguageModelStage:
    """Pretrain a `LanguageModel` on the text columns of `source`."""

    model: LanguageModelConfig
    training: TrainConfig
    source: DataSource
    text_columns: list[str]
    max_length: int = 128
    tokenizer_dir: str | Path | None = None
    tokenizer_settings: dict[str, Any] | None = None

    def describe_data(self) -> tuple[str, str | None]:
        return self.source.describe(), self.source.dataset

    def prepare(self, output: Path, *, reuse_tokenizer: bool) -> LanguageModelData:
        source = replace(self.source.without_labels(), text_column=self.text_columns[0])
        splits = load_splits(source)
        for split, data in splits.items():
            missing = [c for c in self.text_columns if c not in data.column_names]
            if missing:
                raise NlpLstmError(f"text column {missing[0]!r} not found in the {split} split; available columns: "
                                   f"{', '.join(data.column_names)} (choose with --text-column)")
        if not is_stream(splits["train"]):
            splits = {name: _stack_text_columns(data, self.text_columns) for name, data in splits.items()}
            if len(splits["train"]) == 0:
                raise NlpLstmError(f"every text of {source.describe()} is empty or whitespace; give a file with text")
        tokenizer = run_tokenizer(output, splits["train"], ["text"] if not is_stream(splits["train"]) else self.text_columns,
                                  self.tokenizer_dir, {**DEFAULT_TOKENIZER, **(self.tokenizer_settings or {})},
                                  reuse=reuse_tokenizer)
        column = "text" if not is_stream(splits["train"]) else self.text_columns[0]
        encoded = {
            name: encode_classification(data, tokenizer, text_column=column, label_column=None, label_names=[],
                                        max_length=self.max_length)
            for name, data in splits.items()
        }
        return LanguageModelData(encoded, tokenizer)

    def build(self, prepared: LanguageModelData) -> LanguageModel:
        return LanguageModel(replace(self.model, vocab_size=prepared.tokenizer.vocab_size))

    def task(self, prepared: LanguageModelData) -> LanguageModelTask:
        return LanguageModelTask()

    def finish(self, network: LanguageModel, prepared: LanguageModelData, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]:
        task = LanguageModelTask()
        metrics = {split: score_dataset(network, task, prepared.encoded[split], device)
                   for split in ("validation", "test") if split in prepared.encoded}
        model_file = ModelFile(kind="language_model", model=network.config, training=self.training,
                               columns={"text": ",".join(self.text_columns)})
        save_model(staging, model_file=model_file, state=network.state_dict(), tokenizer=prepared.tokenizer)
        return metrics


def pretrain(*, output_dir: str | Path, source: DataSource, text_columns: list[str] | None = None,
             tokenizer_dir: str | Path | None = None, tokenizer_settings: dict[str, Any] | None = None,
             model: LanguageModelConfig | dict[str, Any] | None = None, training: TrainConfig | None = None,
             max_length: int = 128, overwrite: bool = False, resume: bool = False, device: str = "auto",
             progress: bool = True) -> dict[str, Any]:
    """Pretrain a forward + backward LSTM language model on `source`'s text columns into `output_dir`.

    The directory (`kind: "language_model"`) loads with `nlp_lstm.load` (perplexity, sampling) and
    initialises a classifier's tokenizer, embedding and encoder (`train(model={"init_from": DIR})`).
    A failed run leaves an earlier model in `output_dir` untouched. Returns validation (and test)
    perplexity.
    """
    if source is None:
        raise NlpLstmError("pretrain needs a data source (--train-file or --dataset)")
    if not isinstance(model, LanguageModelConfig):
        model = from_dict(LanguageModelConfig, model or {}, where="model settings")
    stage = LanguageModelStage(model=model, training=training or TrainConfig(), source=source,
                               text_columns=list(text_columns or [source.text_column]), max_length=max_length,
                               tokenizer_dir=tokenizer_dir, tokenizer_settings=tokenizer_settings)
    return train_stage(stage, output_dir=output_dir, overwrite=overwrite, resume=resume, device=device,
                       progress=progress)


def read_language_model(lm_dir: str | Path) -> ModelFile:
    """A language model directory's config; anything else is a one-line error naming the fix."""
    path = Path(lm_dir)
    model_file = read_model_config(path)
    if model_file.kind != "language_model":
        raise NlpLstmError(f"--init-from {path} holds a {model_file.kind} model, not a language model; "
                           "give the --output-dir of `nlp-lstm pretrain`")
    return model_file


def with_encoder_sizes(lm_dir: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Classifier settings with the language model's encoder sizes filling the ones not given (a
    size that is given and differs is caught with a one-line error when the weights are copied)."""
    config = read_language_model(lm_dir).model
    return {**{name: getattr(config, name) for name in ENCODER_SIZES}, **settings, "init_from": str(lm_dir)}


def language_model_weights(lm_dir: str | Path) -> tuple[dict[str, torch.Tensor], LanguageModelConfig, Tokenizer]:
    model_file = read_language_model(lm_dir)
    path = Path(lm_dir)
    return load_tensors(path / "model.safetensors"), model_file.model, load_tokenizer(path / "tokenizer")

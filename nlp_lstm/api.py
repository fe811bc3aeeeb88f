"""The library's front door: one function per stage, the same names as the CLI's commands.

Each takes keyword arguments and plain dataclasses and returns plain data; the behaviour lives in
`nlp_lstm.stages` (one module per task over one training skeleton) and `nlp_lstm.inference`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nlp_lstm.data.sources import DataSource
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.load import load
from nlp_lstm.inference.onnx import export_onnx, load_onnx
from nlp_lstm.model_dir import ModelFile, read_model_config
from nlp_lstm.inference.predict import classify, summarize
from nlp_lstm.stages.classification import encode, train
from nlp_lstm.stages.kinds import STAGE_KINDS
from nlp_lstm.stages.language_model import pretrain
from nlp_lstm.stages.pipeline import run_pipeline
from nlp_lstm.stages.sequences import fit_sequences
from nlp_lstm.stages.summarization import train_summarizer
from nlp_lstm.stages.tagging import train_tagger
from nlp_lstm.stages.tokenizer import vocab
from nlp_lstm.stages.tune import tune

__all__ = ["classify", "encode", "evaluate", "export_onnx", "fit_sequences", "load", "load_onnx", "pretrain", "run_pipeline", "summarize", "train",
           "train_summarizer", "train_tagger", "tune", "vocab"]

_DEFAULT_COLUMNS = {"text": DataSource.text_column, "label": DataSource.label_column, "summary": None}


def with_model_columns(source: DataSource, model_file: ModelFile) -> DataSource:
    """`source` with each column it leaves at the DataSource default replaced by the column the model
    was trained on (saved in `config.json`: a model saves the columns of its kind only, `label` or
    `summary`), so a model evaluates on its own kind of file unasked."""
    saved = model_file.columns
    changes: dict[str, Any] = {}
    if source.text_column == _DEFAULT_COLUMNS["text"] and saved.get("text"):
        changes["text_column"] = saved["text"]
    if source.summary_column is None and saved.get("summary"):
        changes["summary_column"] = saved["summary"]
    elif source.label_column == _DEFAULT_COLUMNS["label"] and saved.get("label") and source.binarize is None:
        changes["label_column"] = saved["label"]
    return replace(source, **changes) if changes else source


def evaluate(model_dir: str | Path, source: DataSource, *, split: str = "test", plots_dir: str | Path | None = None,
             device: str = "auto", bf16_output: bool = False, **decoding: Any) -> dict[str, Any]:
    """Score a saved model on one split of `source`: accuracy, macro-F1, per class, confusion matrix
    (classifier), or ROUGE beside a lead baseline (summarizer; `decoding` overrides its saved
    decoding settings; `bf16_output` decodes with the output layer in bfloat16). Columns left at
    their defaults are the ones the model was trained on."""
    model_file = read_model_config(model_dir)
    source = with_model_columns(source, model_file)
    if model_file.kind not in STAGE_KINDS:  # a language model is scored through the classifier it initialises
        raise NlpLstmError(f"{model_dir} holds a {model_file.kind} model, which `nlp-lstm evaluate` does not score; "
                           f"use `nlp-lstm {model_file.spec.command}` with it")
    stage = STAGE_KINDS[model_file.kind]
    if stage.decodes:
        return stage.evaluate(model_dir, source, split=split, device=device, plots_dir=plots_dir,
                              bf16_output=bf16_output, **decoding)
    if bf16_output:
        raise NlpLstmError(f"--bf16-output is for summarizers; {model_dir} holds a {model_file.kind} model: drop the option")
    return stage.evaluate(model_dir, source, split=split, plots_dir=plots_dir, device=device)

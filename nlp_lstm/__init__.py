"""nlp-lstm: LSTM text classification and abstractive summarization.

The stage functions mirror the CLI: `vocab`, `encode`, `train`, `train_summarizer`, `evaluate`,
`classify`, `summarize`, `pretrain`, `export_onnx`, `run_pipeline`, `tune`; `load(DIR)` returns a model ready to predict. Imports are lazy
so that `nlp-lstm --help` starts fast.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "vocab": "nlp_lstm.api",
    "encode": "nlp_lstm.api",
    "train": "nlp_lstm.api",
    "evaluate": "nlp_lstm.api",
    "classify": "nlp_lstm.inference.predict",  # the prediction path imports no training code
    "train_summarizer": "nlp_lstm.api",
    "train_tagger": "nlp_lstm.api",
    "pretrain": "nlp_lstm.api",
    "summarize": "nlp_lstm.inference.predict",
    "tag": "nlp_lstm.inference.predict",
    "explain": "nlp_lstm.inference.predict",
    "fit_sequences": "nlp_lstm.api",
    "load": "nlp_lstm.inference.load",
    "export_onnx": "nlp_lstm.api",
    "load_onnx": "nlp_lstm.api",
    "run_pipeline": "nlp_lstm.api",
    "tune": "nlp_lstm.api",
    "LSTM": "nlp_lstm.nn.lstm",
    "TextClassifier": "nlp_lstm.models.classifier",
    "ClassifierConfig": "nlp_lstm.models.classifier",
    "SummarizerConfig": "nlp_lstm.models.summarizer",
    "DecodeConfig": "nlp_lstm.decoding.beam_search",
    "TrainConfig": "nlp_lstm.config",
    "DataSource": "nlp_lstm.data.sources",
    "Binarize": "nlp_lstm.data.columns",
    "NlpLstmError": "nlp_lstm.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nlp_lstm' has no attribute {name!r}")

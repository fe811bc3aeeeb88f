"""`load(DIR)`: rebuild any saved model directory as a predictor, reading `config.json` once."""

from __future__ import annotations

from pathlib import Path

from nlp_lstm.devices import pick_device
from nlp_lstm.inference.classifier import ClassifierPredictor, load_classifier
from nlp_lstm.inference.summarizer import SummarizerPredictor, load_summarizer
from nlp_lstm.model_dir import read_model_config

LOADERS = {"classifier": load_classifier, "summarizer": load_summarizer}


def load(directory: str | Path, *, device: str = "auto", expect: str | None = None
         ) -> ClassifierPredictor | SummarizerPredictor:
    """Rebuild a saved model from its directory (config.json + model.safetensors + tokenizer/).

    `expect` ("classifier", "summarizer") turns a directory of another kind into a one-line error
    naming the command that fits it.
    """
    path = Path(directory)
    model_file = read_model_config(path, expect=expect)
    return LOADERS[model_file.kind](path, model_file, device=pick_device(device))

"""`load(DIR)`: rebuild any saved model directory as a predictor, reading `config.json` once.

`PREDICTORS` maps each model kind (`nlp_lstm.kinds`) to its predictor class, which carries the
kind's behaviour: `load`, `max_input_length`, `predict_batch` (what the server runs). The runtime
front door (PyTorch or ONNX Runtime, `--int8`, `--bf16-output`) is `runtime.py`, above the ONNX code.
"""

from __future__ import annotations

from pathlib import Path

from nlp_lstm.devices import pick_device
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.inference.language_model import LanguageModelPredictor
from nlp_lstm.inference.summarizer import SummarizerPredictor
from nlp_lstm.inference.tagger import TaggerPredictor
from nlp_lstm.model_dir import read_model_config

PREDICTORS = {predictor.kind: predictor
              for predictor in (ClassifierPredictor, SummarizerPredictor, LanguageModelPredictor, TaggerPredictor)}


def load(directory: str | Path, *, device: str = "auto", expect: str | None = None
         ) -> ClassifierPredictor | SummarizerPredictor | LanguageModelPredictor | TaggerPredictor:
    """Rebuild a saved model from its directory (config.json + model.safetensors + tokenizer/).

    `expect` (a kind: "classifier", "summarizer", ...) turns a directory of another kind into a
    one-line error naming the command that fits it.
    """
    path = Path(directory)
    model_file = read_model_config(path, expect=expect)
    return PREDICTORS[model_file.kind].load(path, model_file, device=pick_device(device))

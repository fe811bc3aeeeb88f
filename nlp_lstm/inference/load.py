"""`load(DIR)`: rebuild any saved model directory as a predictor, reading `config.json` once."""

from __future__ import annotations

from pathlib import Path

from nlp_lstm.devices import pick_device
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import ClassifierPredictor, load_classifier
from nlp_lstm.inference.language_model import LanguageModelPredictor, load_language_model
from nlp_lstm.inference.summarizer import SummarizerPredictor, load_summarizer
from nlp_lstm.model_dir import read_model_config

LOADERS = {"classifier": load_classifier, "summarizer": load_summarizer, "language_model": load_language_model}


def load(directory: str | Path, *, device: str = "auto", expect: str | None = None
         ) -> ClassifierPredictor | SummarizerPredictor | LanguageModelPredictor:
    """Rebuild a saved model from its directory (config.json + model.safetensors + tokenizer/).

    `expect` ("classifier", "summarizer") turns a directory of another kind into a one-line error
    naming the command that fits it.
    """
    path = Path(directory)
    model_file = read_model_config(path, expect=expect)
    return LOADERS[model_file.kind](path, model_file, device=pick_device(device))


RUNTIMES = ("torch", "onnx")


def load_predictor(directory: str | Path, *, expect: str, device: str = "auto", runtime: str = "torch",
                   int8: bool = False, bf16_output: bool = False) -> ClassifierPredictor | SummarizerPredictor:
    """`load` with the runtime a command asked for: PyTorch (float32; dynamic int8 on the CPU for a
    classifier; a bfloat16 output layer for a summarizer) or ONNX Runtime over the graphs
    `export_onnx` wrote."""
    if runtime not in RUNTIMES:
        raise NlpLstmError(f"--runtime {runtime!r} is unknown; use one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        if int8:
            raise NlpLstmError("--int8 is for the PyTorch runtime; drop it with --runtime onnx")
        if bf16_output:
            raise NlpLstmError("--bf16-output is for the PyTorch runtime; drop it with --runtime onnx")
        from nlp_lstm.inference.onnx_runtime import load_onnx  # onnxruntime is an optional extra

        predictor = load_onnx(directory)
        if predictor.kind != expect:
            read_model_config(directory, expect=expect)  # the one-line error naming the right command
        return predictor
    predictor = load(directory, device="cpu" if int8 else device, expect=expect)
    if int8:
        from nlp_lstm.inference.quantize import quantize_classifier

        predictor = quantize_classifier(predictor)
    if bf16_output:
        from nlp_lstm.inference.bfloat16 import bfloat16_output

        predictor = bfloat16_output(predictor)
    return predictor

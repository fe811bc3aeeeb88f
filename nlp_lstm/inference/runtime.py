"""The runtime a command asks for: PyTorch (float32, `--int8`, `--bf16-output`) or ONNX Runtime.

The front door above both `load.py` (PyTorch) and `onnx_runtime.py` (which itself loads through
`load.py`), so neither imports the other's caller. The options that only one runtime or one kind
has are checked here, once, for the CLI commands and the server alike.
"""

from __future__ import annotations

from pathlib import Path

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.bfloat16 import bfloat16_output
from nlp_lstm.inference.load import load
from nlp_lstm.inference.onnx_runtime import load_onnx
from nlp_lstm.inference.quantize import quantize_classifier
from nlp_lstm.inference.summarizer import SummarizerPredictor
from nlp_lstm.model_dir import read_model_config

RUNTIMES = ("torch", "onnx")


def check_runtime_options(runtime: str, *, int8: bool = False, bf16_output: bool = False) -> None:
    """One line naming the option a runtime does not have (`--runtime onnx` runs the exported graphs as
    they are)."""
    if runtime not in RUNTIMES:
        raise NlpLstmError(f"unknown --runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        for option, given in (("--int8", int8), ("--bf16-output", bf16_output)):
            if given:
                raise NlpLstmError(f"{option} is for the PyTorch runtime; drop it with --runtime onnx")


def bfloat16_applies(predictor) -> bool:
    """`--bf16-output` runs a decoder's output layer in bfloat16: a predictor that decodes (a summarizer)."""
    return isinstance(predictor, SummarizerPredictor)


def load_runtime(directory: str | Path, *, runtime: str = "torch", device: str = "auto"):
    """The predictor of `directory`, its model run by `runtime` (ONNX Runtime: on the CPU)."""
    check_runtime_options(runtime)
    return load_onnx(directory) if runtime == "onnx" else load(directory, device=device)


def load_predictor(directory: str | Path, *, expect: str, device: str = "auto", runtime: str = "torch",
                   int8: bool = False, bf16_output: bool = False):
    """`load` with the runtime a command asked for: PyTorch (float32; dynamic int8 on the CPU for a
    classifier; a bfloat16 output layer for a summarizer) or ONNX Runtime over the graphs
    `export_onnx` wrote."""
    check_runtime_options(runtime, int8=int8, bf16_output=bf16_output)
    if runtime == "onnx":
        predictor = load_onnx(directory)
        if predictor.kind != expect:
            read_model_config(directory, expect=expect)  # the one-line error naming the right command
        return predictor
    predictor = load(directory, device="cpu" if int8 else device, expect=expect)
    if int8:
        predictor = quantize_classifier(predictor)
    if bf16_output:
        predictor = bfloat16_output(predictor)
    return predictor

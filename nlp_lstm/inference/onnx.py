"""ONNX export and ONNX Runtime inference (DESIGN.md section 1, "deploy"; docs/deploy-onnx.md).

- `export_onnx(model_dir, output_dir=None)`: the model's graphs and `onnx.json` into `DIR/onnx`
  (`nlp-lstm export --model DIR --format onnx`): `onnx_export.py`, tracing the modules of
  `onnx_graphs.py`.
- `load_onnx(model_dir)`: the predictor `nlp_lstm.load(DIR)` returns, its model run by ONNX Runtime
  (`classify --runtime onnx`, `summarize --runtime onnx`). The runtime side: `onnx_runtime.py`.
"""

from nlp_lstm.inference.onnx_export import export_onnx
from nlp_lstm.inference.onnx_runtime import load_onnx

__all__ = ["export_onnx", "load_onnx"]

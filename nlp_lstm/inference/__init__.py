"""Running trained models: predictors over PyTorch, int8 and ONNX Runtime (DESIGN.md sections 1 and 9)."""

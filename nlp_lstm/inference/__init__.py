"""Loaded models ready to predict: `load(DIR)` gives a `ClassifierPredictor` or `SummarizerPredictor`."""

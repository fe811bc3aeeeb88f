"""The stages a user runs, one module per task over one training skeleton (`run.py`)."""

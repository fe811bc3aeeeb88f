"""The one exception type a user can cause.

Its message names the bad value and the fix; the CLI prints it as one line on stderr and exits 2.
"""


class NlpLstmError(Exception):
    """A usage or input error: bad option, missing file, unknown column, corrupt model, ..."""


class TrainingInterrupted(NlpLstmError):
    """Ctrl-C during training: a checkpoint was saved (the CLI exits 130)."""

"""Each model kind's `StageKind` (`stages/run.py`): what `nlp-lstm evaluate` and `nlp-lstm run` do for it.

A kind listed here can be evaluated (`api.evaluate`) and, where it has a `pipeline_train`, named as
`[pipeline] task` in a pipeline file. A language model has neither (it is evaluated by the classifier
it initialises).
"""

from __future__ import annotations

from nlp_lstm.stages import classification, summarization, tagging
from nlp_lstm.stages.run import StageKind

STAGE_KINDS: dict[str, StageKind] = {stage.kind: stage for stage in (classification.STAGE, summarization.STAGE, tagging.STAGE)}

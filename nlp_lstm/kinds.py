"""Model kinds: what each kind of saved model *is*, said once (the way spaCy registers architectures).

A `KindSpec` names a kind's config dataclass and `nn.Module`, the command that uses a saved model of
that kind, what its `config.json` carries besides the model (labels, decoding settings), and the text
of its model card. Everything that reads a model directory dispatches on the spec: `model_dir`
(rebuilding, checks), `model_card`, and above them the predictors (`inference/load.py` maps each kind
to its predictor class, which carries the per-kind behaviour: batch prediction, input limits, ONNX
hooks), serving, pipelines and the CLI.

Adding a kind: one `register(KindSpec(...))` here; docs/adding-a-kind.md lists the other lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from nlp_lstm.models.tagger import SequenceTagger, TaggerConfig


@dataclass(frozen=True)
class KindSpec:
    """One model kind.

    Attributes:
        name: the `kind` in `config.json` (also the predictor's `.kind`).
        config: the model config dataclass (`config.json [model]`).
        module: the `nn.Module` built from `config` (weights checked against it on the meta device).
        command: the `nlp-lstm` command to use a saved model of this kind with (error messages).
        labels: `config.json` carries label names, thresholds and a temperature.
        decoding: the decoding settings dataclass `config.json [decoding]` holds, or None.
        pipeline_tag: the Hugging Face hub task of the model card.
        description: the card's "This is ..." text; `{field}` is filled from the model config.
        metrics: the hub metric names of the card's front matter.
        usage: the card's "How to use" text.
        files: the card's line on what the directory holds besides weights and `config.json`.
    """

    name: str
    config: type
    module: type
    command: str
    pipeline_tag: str
    description: str
    metrics: tuple[str, ...]
    usage: str
    labels: bool = False
    decoding: type | None = None
    files: str = "`tokenizer/` holds its tokenizer"

    @property
    def title(self) -> str:
        return self.name.replace("_", " ")


KINDS: dict[str, KindSpec] = {}


def register(spec: KindSpec) -> KindSpec:
    if spec.name in KINDS:
        raise ValueError(f"model kind {spec.name!r} is registered twice")
    KINDS[spec.name] = spec
    return spec


def kind_spec(name: object, *, where: str = "config.json") -> KindSpec:
    """The spec of kind `name`; an unknown kind is one line naming `where` and the known kinds."""
    if name not in KINDS:
        raise NlpLstmError(f"{where}: unknown model kind {name!r}; expected one of {', '.join(KINDS)}")
    return KINDS[name]  # type: ignore[index]


register(KindSpec(
    name="classifier", config=ClassifierConfig, module=TextClassifier, command="classify", labels=True,
    pipeline_tag="text-classification", metrics=("accuracy", "f1"),
    description="a bidirectional LSTM text classifier (embedding -> BiLSTM -> {pooling} pooling -> linear{ngrams})",
    usage=("```bash\nnlp-lstm classify --model DIR \"some text\"\nnlp-lstm serve --model DIR\n```\n\n"
           "```python\nimport nlp_lstm\nmodel = nlp_lstm.load(\"DIR\")\nmodel.predict([\"some text\"])\n```"),
))
register(KindSpec(
    name="summarizer", config=SummarizerConfig, module=Summarizer, command="summarize", decoding=DecodeConfig,
    pipeline_tag="summarization", metrics=("rouge",),
    description="an LSTM pointer-generator summarizer (BiLSTM encoder, attention decoder with copy{coverage}; "
                "See et al. 2017)",
    usage=("```bash\nnlp-lstm summarize --model DIR \"a long text ...\"\nnlp-lstm serve --model DIR\n```\n\n"
           "```python\nimport nlp_lstm\nmodel = nlp_lstm.load(\"DIR\")\nmodel.summarize([\"a long text ...\"])\n```"),
))
register(KindSpec(
    name="language_model", config=LanguageModelConfig, module=LanguageModel, command="train classifier --init-from",
    pipeline_tag="text-generation", metrics=("perplexity",),
    description="a forward + backward LSTM language model (AWD-LSTM regularisation; Merity et al. 2018)",
    usage=("```bash\nnlp-lstm train classifier --init-from DIR --train-file labelled.csv --output-dir runs/clf\n```\n\n"
           "```python\nimport nlp_lstm\nlm = nlp_lstm.load(\"DIR\")\nlm.perplexity([\"some text\"])\n"
           "lm.sample(\"the film\", max_new_tokens=20)\n```"),
))
register(KindSpec(
    name="tagger", config=TaggerConfig, module=SequenceTagger, command="tag", labels=True,
    pipeline_tag="token-classification", metrics=("accuracy", "f1"),
    files="`tagging_vocab.json` holds its word, character and tag vocabularies",
    description="a BiLSTM sequence tagger (words and character CNN -> BiLSTM -> CRF or softmax; Lample et al. 2016)",
    usage=("```bash\nnlp-lstm tag --model DIR \"some text\"\nnlp-lstm serve --model DIR\n```\n\n"
           "```python\nimport nlp_lstm\nmodel = nlp_lstm.load(\"DIR\")\nmodel.tag([\"some text\"])\n```"),
))

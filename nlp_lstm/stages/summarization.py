"""The summarizer's stages: `train_summarizer` (through the shared skeleton), `evaluate_summarizer`, `summarize`.

Scores are ROUGE-1/2/L and summary-level ROUGE-Lsum F1 x 100 (`rouge-score`, stemmed), always reported beside the lead-k baseline
(the first k source words, k = the mean reference length in words). Decoding uses the model's saved
`DecodeConfig` unless a call overrides a field of it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch

from nlp_lstm.config import from_dict, TrainConfig
from nlp_lstm.data.columns import iter_texts
from nlp_lstm.data.encode import encode_summarization
from nlp_lstm.data.readable import build_lexicon
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.runtime import load_predictor
from nlp_lstm.inference.summarizer import SummarizerPredictor
from nlp_lstm.metrics.rouge import lead_baseline, rouge_scores
from nlp_lstm.model_dir import ModelFile, save_model
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from nlp_lstm.stages.run import DEFAULT_TOKENIZER, StageKind, run_tokenizer, train_stage
from nlp_lstm.training.loop import TrainResult
from nlp_lstm.training.tasks import SummarizationTask



def summarization_source(source: DataSource) -> DataSource:
    """`source` read for summarization: needs a summary column; reads no label column (the
    DataSource default "label" means nothing here)."""
    if not source.summary_column:
        raise NlpLstmError("a summarizer needs --summary-column (the reference summaries)")
    return source.without_labels()


def score_texts(summarizer: SummarizerPredictor, sources: list[str], references: list[str], *,
                batch_size: int = 32, decoding: DecodeConfig) -> dict[str, Any]:
    """ROUGE of the model's summaries and of the lead-k baseline against `references`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation and empty texts are expected in a corpus
        predictions = summarizer.summarize(sources, batch_size=batch_size, **asdict(decoding))
    metrics = rouge_scores(predictions, references)
    k = max(1, round(sum(len(r.split()) for r in references) / max(1, len(references))))
    lead = rouge_scores(lead_baseline(sources, k), references)
    metrics["lead_baseline"] = {"k": k, **{name: lead[name] for name in ("rouge1", "rouge2", "rougeL", "rougeLsum")}}
    return metrics


def _plot_first(summarizer: SummarizerPredictor, texts: list[str], path: Path, decoding: DecodeConfig) -> None:
    """An attention heatmap of the first non-empty text (nothing when its summary is empty)."""
    text = next((t for t in texts if t.strip()), None)
    if text is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a truncated example is fine for a picture
            summarizer.plot_attention(text, path, **asdict(decoding))
    except NlpLstmError:
        pass  # an empty example summary has nothing to draw


@dataclass
class SummarizerData:
    """What `SummarizationStage.prepare` gives the skeleton."""

    splits: datasets.DatasetDict  # the raw texts, for scoring
    encoded: dict[str, datasets.Dataset]
    tokenizer: Tokenizer


@dataclass
class SummarizationStage:
    """Train a pointer-generator `Summarizer` from raw data."""

    model: SummarizerConfig
    training: TrainConfig
    source: DataSource
    decoding: DecodeConfig
    tokenizer_dir: str | Path | None = None
    tokenizer_settings: dict[str, Any] | None = None

    def describe_data(self) -> tuple[str, str | None]:
        return self.source.describe(), self.source.dataset

    def prepare(self, output: Path, *, reuse_tokenizer: bool) -> SummarizerData:
        source = self.source
        splits = load_splits(source)
        if "validation" not in splits:
            raise NlpLstmError("no validation split; give --validation-file or leave validation_fraction > 0")
        # One vocabulary for sources and summaries (See et al. 2017, sec. 3): summary-only words get ids too.
        tokenizer = run_tokenizer(output, splits["train"], [source.text_column, source.summary_column],
                                  self.tokenizer_dir, {**DEFAULT_TOKENIZER, **(self.tokenizer_settings or {})},
                                  reuse=reuse_tokenizer)
        encoded = {
            split: encode_summarization(
                data, tokenizer, text_column=source.text_column, summary_column=source.summary_column,
                max_source_length=self.model.max_source_length, max_target_length=self.model.max_target_length,
            )
            for split, data in splits.items()
        }
        return SummarizerData(splits, encoded, tokenizer)

    def build(self, prepared: SummarizerData) -> Summarizer:
        return Summarizer(replace(self.model, vocab_size=prepared.tokenizer.vocab_size))

    def task(self, prepared: SummarizerData) -> SummarizationTask:
        return SummarizationTask(prepared.tokenizer, coverage_from_epoch=self.model.coverage_from_epoch,
                                 coverage_weight=self.model.coverage_weight, max_length=self.model.max_target_length)

    def finish(self, network: Summarizer, prepared: SummarizerData, result: TrainResult, staging: Path,
               device: torch.device) -> dict[str, Any]:
        text, summary = self.source.text_column, self.source.summary_column
        train = prepared.splits["train"]
        lexicon = build_lexicon(iter_texts(train, [text]), iter_texts(train, [summary]))
        summarizer = SummarizerPredictor(network, prepared.tokenizer, decoding=self.decoding, device=device,
                                         lexicon=lexicon)
        metrics: dict[str, Any] = {"decoding": asdict(self.decoding)}
        for split in ("validation", "test"):
            if split in prepared.splits:
                data = prepared.splits[split]
                metrics[split] = score_texts(summarizer, list(iter_texts(data, [text])),
                                             list(iter_texts(data, [summary])), decoding=self.decoding)
        model_file = ModelFile(kind="summarizer", model=network.config, training=self.training, decoding=self.decoding,
                               columns={"text": text, "summary": summary})
        save_model(staging, model_file=model_file, state=network.state_dict(), tokenizer=prepared.tokenizer)
        lexicon.save(staging)
        first = prepared.splits.get("test", prepared.splits["validation"])
        _plot_first(summarizer, list(iter_texts(first.take(20), [text])), staging / "plots" / "attention_example.png",
                    self.decoding)
        return metrics


def train_summarizer(*, output_dir: str | Path, source: DataSource, tokenizer_dir: str | Path | None = None,
                     tokenizer_settings: dict[str, Any] | None = None,
                     model: SummarizerConfig | dict[str, Any] | None = None, training: TrainConfig | None = None,
                     decoding: DecodeConfig | dict[str, Any] | None = None, overwrite: bool = False,
                     resume: bool = False, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train a pointer-generator summarizer from raw data into the model directory `output_dir`.

    Fits a sentencepiece tokenizer on the training sources and summaries when `tokenizer_dir` is not
    given. `model` is a `SummarizerConfig` (or a dict of its fields: sizes, attention, copy, coverage,
    length limits, coverage schedule); `decoding` the `DecodeConfig` saved with the model and used to
    score it (default: beam 4, `max_length` = the model's `max_target_length`). Returns the metrics:
    `best_epoch`, `stop_reason`, `train_seconds`, `decoding`, and `validation` (and `test`) ROUGE with
    the lead baseline.
    """
    if source is None:
        raise NlpLstmError("train_summarizer needs a data source (--train-file or --dataset)")
    if not isinstance(model, SummarizerConfig):
        model = from_dict(SummarizerConfig, model or {}, where="model settings")
    if not isinstance(decoding, DecodeConfig):
        decoding = from_dict(DecodeConfig, {"max_length": model.max_target_length, **(decoding or {})},
                             where="decoding settings")
    stage = SummarizationStage(model=model, training=training or TrainConfig(), source=summarization_source(source),
                               decoding=decoding, tokenizer_dir=tokenizer_dir, tokenizer_settings=tokenizer_settings)
    return train_stage(stage, output_dir=output_dir, overwrite=overwrite, resume=resume, device=device,
                       progress=progress)


def evaluate_summarizer(model_dir: str | Path, source: DataSource, *, split: str = "test", device: str = "auto",
                        plots_dir: str | Path | None = None, batch_size: int = 32, bf16_output: bool = False,
                        **decoding: Any) -> dict[str, Any]:
    """ROUGE-1/2/L (F1 x 100) of a saved summarizer on one split, beside the lead-k baseline.

    `decoding` overrides fields of the model's saved `DecodeConfig`. Returns `rouge1`, `rouge2`,
    `rougeL`, `count`, `split`, `lead_baseline` (`k` and its ROUGE), and the `decoding` settings used.
    `plots_dir` receives an attention heatmap of the split's first text. `bf16_output` decodes with
    the output layer in bfloat16 (`nlp_lstm.inference.bfloat16`).
    """
    summarizer = load_predictor(model_dir, expect="summarizer", device=device, bf16_output=bf16_output)
    source = summarization_source(source)
    config = summarizer.decode_config(**decoding)
    data = load_split(source, split)
    sources = list(iter_texts(data, [source.text_column]))
    metrics = score_texts(summarizer, sources, list(iter_texts(data, [source.summary_column])), batch_size=batch_size,
                          decoding=config)
    metrics["split"] = split
    metrics["decoding"] = asdict(config)
    if plots_dir is not None:
        _plot_first(summarizer, sources, Path(plots_dir) / "attention_example.png", config)
    return metrics


# --- what `nlp-lstm run` and `evaluate` do for a summarizer (`stages/kinds.py`) -----------------------

def _pipeline_train(pipe, *, source: DataSource, model_dir: Path, vocab_dir: Path, encoded_dir: Path, device: str,
                    progress: bool) -> None:
    train_summarizer(output_dir=model_dir, source=source, tokenizer_dir=vocab_dir, model=pipe.model,
                     training=pipe.train, decoding=pipe.decoding, overwrite=True, device=device, progress=progress)


def _finish_pipeline(sections: dict[str, Any], file: Path) -> None:
    sections["data"] = sections["data"].without_labels()  # TOML has no null to unset the default label column
    sections.setdefault("decoding", DecodeConfig(max_length=sections["model"].max_target_length))


STAGE = StageKind(kind="summarizer", evaluate=evaluate_summarizer, decodes=True, pipeline_train=_pipeline_train,
                  finish_pipeline=_finish_pipeline)

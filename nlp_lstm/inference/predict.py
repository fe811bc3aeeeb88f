"""`classify`, `summarize` and `tag`: predict with a saved model, importing only what prediction needs.

No `datasets`, matplotlib or training code is loaded on this path, so `nlp-lstm classify` of one text
starts about as fast as torch itself (BENCHMARKS.md, cold start).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import as_texts
from nlp_lstm.inference.explain import DEFAULT_STEPS, check_steps, check_texts
from nlp_lstm.inference.load import load
from nlp_lstm.inference.runtime import load_predictor


def classify(model_dir: str | Path, texts: Iterable[str], *, device: str = "auto", batch_size: int = 64,
             int8: bool = False, runtime: str = "torch") -> list[dict[str, Any]]:
    """Predict label and score for each text with a saved classifier.

    `int8` runs the encoder and head with dynamic int8 quantization (CPU only); `runtime="onnx"` runs
    the graphs `export_onnx` wrote with ONNX Runtime. BENCHMARKS.md has the speed of each.
    """
    predictor = load_predictor(model_dir, expect="classifier", device=device, runtime=runtime, int8=int8)
    return predictor.predict(texts, batch_size=batch_size)


def summarize(model_dir: str | Path, texts: Iterable[str], *, attention_plot: str | Path | None = None,
              device: str = "auto", batch_size: int = 32, runtime: str = "torch", bf16_output: bool = False,
              **decoding: Any) -> list[dict[str, str]]:
    """Summarize each text with a saved summarizer: `[{"text", "summary"}, ...]` in input order.

    `decoding` overrides fields of the model's saved `DecodeConfig` (None values keep the saved
    ones). `attention_plot` writes a PNG heatmap of the first non-empty text's attention (and p_gen).
    `runtime="onnx"` decodes with the graphs `export_onnx` wrote, run by ONNX Runtime. `bf16_output`
    runs the output layer in bfloat16 (`nlp_lstm.inference.bfloat16`: faster decoding, summaries may
    differ slightly).
    """
    summarizer = load_predictor(model_dir, expect="summarizer", device=device, runtime=runtime,
                                bf16_output=bf16_output)
    texts = as_texts(texts)
    summaries = summarizer.summarize(texts, batch_size=batch_size, **decoding)
    if attention_plot is not None:
        first = next((t for t in texts if t.strip()), None)
        if first is None:
            raise NlpLstmError("--attention-plot needs a non-empty text")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already warned above
            summarizer.plot_attention(first, attention_plot, **decoding)
    return [{"text": text, "summary": summary} for text, summary in zip(texts, summaries)]


def tag(model_dir: str | Path, texts: Any, *, pretokenized: bool = False, confidences: bool = True,
        device: str = "auto", runtime: str = "torch") -> list[dict[str, Any]]:
    """Tag each text with a saved tagger (`TaggerPredictor.tag`): tokens, tags, per-token confidences and
    spans (with character offsets for raw text). `texts` are raw texts, or token lists; with
    `pretokenized`, each string is whitespace-separated tokens. `runtime="onnx"` runs the emission
    graph `export_onnx` wrote (decoding is the same numpy code either way)."""
    predictor = load_predictor(model_dir, expect="tagger", device=device, runtime=runtime)
    return predictor.tag(texts, pretokenized=pretokenized, confidences=confidences)


EXPLAINED = ("classifier", "summarizer", "tagger")
NOT_ATTRIBUTED = {"summarizer": "a summarizer has no labels and no gradient steps",
                  "tagger": "a tagger explains every token's own tag, by exact marginals (no gradient steps)"}


def explain(model_dir: str | Path, texts: Iterable[str], *, device: str = "auto", label: str | None = None,
            steps: int | None = None, **decoding: Any) -> list[dict[str, Any]]:
    """Why a saved model answered as it did, per text (`inference/explain.py`): a classifier's signed
    attributions per word for `label` (default: the predicted one; `steps`: the most gradient
    evaluations, default `DEFAULT_STEPS`) from each of its parts; a summarizer's attention, p_gen and
    copy source per output word (`decoding` overrides its saved decoding settings); a tagger's
    marginal probability of each token's tag and the runner-up tag's (`TaggerPredictor.explain`)."""
    if steps is not None:
        check_steps(steps)
    texts = as_texts(texts)
    check_texts(texts)
    predictor = load(model_dir, device=device)
    if predictor.kind not in EXPLAINED:
        raise NlpLstmError(f"{model_dir} holds a {predictor.kind}, which explain cannot take apart; "
                           "pass a classifier, summarizer or tagger model directory")
    if predictor.kind != "classifier":
        which = "--label" if label is not None else "--steps" if steps is not None else None
        if which is not None:
            raise NlpLstmError(f"{which} is for classifiers; {NOT_ATTRIBUTED[predictor.kind]}: drop it")
        return predictor.explain(texts, **decoding)
    return predictor.explain(texts, label=label, steps=DEFAULT_STEPS if steps is None else steps)

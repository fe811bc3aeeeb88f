"""`explain`: why a model answered as it did (DESIGN section 1, "inspect").

Classifiers: a signed attribution per word for one label (the predicted one unless asked), from
each of the model's two parts, whose logits add up (`models/classifier.py`):

- the BiLSTM part: integrated gradients (Sundararajan et al. 2017) of the label's score
  (`explain_ngrams.label_score`, in logit units) with respect to the embedding output, by Captum
  (`integrated_gradients`: Gauss-Legendre on segments cut where the score changes fast). The
  baseline is a zero vector at every position (what `<pad>` embeds to: `padding_idx`, never trained)
  with the text's own length and mask, "the same number of steps carrying no word"; the unknown
  token's embedding would be a word of its own (rare words), not an absence. Completeness: the
  attributions sum to score(text) - score(baseline) up to the quadrature error, reported as
  `residual` (and relative to that difference);
- the linear n-gram part: its exact contributions (`explain_ngrams`).

The per-piece values are spread onto the words the user typed (`words`). Summarizers: per output
word, the attention over the source words, p_gen and what it was copied from (`explain_summarizer`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nlp_lstm.data.collate import classifier_arguments, collate_classification
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.explain_ngrams import label_score, linear_contributions
from nlp_lstm.inference.integrated_gradients import integrate
from nlp_lstm.inference.words import spread, word_spans

# The most gradient evaluations per text (`integrated_gradients`: segments of 8 Gauss-Legendre nodes,
# cut where the integrand is steep). Measured on a trained VADER classifier (BENCHMARKS.md,
# "explain"): 256 keeps the completeness residual under 1% of the score difference on 100 of 100
# test texts, most stopping far sooner (0.13 s of CPU per text, median, on one thread; 0.94 s at most).
DEFAULT_STEPS = 256
MAX_STEPS = 4096
BASELINE = "zero embeddings (what <pad> embeds to), the text's length"


def check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise NlpLstmError(f"steps={steps!r} is invalid: use 1 to {MAX_STEPS} integrated-gradient steps "
                           f"(default {DEFAULT_STEPS})")


def check_texts(texts: Sequence[str]) -> None:
    """A one-line error for no text or an empty one (`as_texts` has checked that they are strings)."""
    if not texts:
        raise NlpLstmError("no text to explain; pass one or more non-empty texts")
    for index, text in enumerate(texts):
        if not text.strip():
            raise NlpLstmError(f"text {index} is empty: there is nothing to explain; pass a text with words")


def explain_classifier(predictor, texts: Sequence[str], *, label: str | None = None,
                       steps: int = DEFAULT_STEPS) -> list[dict[str, Any]]:
    """Per text: the label explained, its calibrated probability, and each part's attributions per
    word (see the module docstring). `label` names the label to explain (default: the predicted one).

    Returns per text a dict: `kind` ("classifier"), `text`, `label`, `predicted` (the top label),
    `probability` (the label's), `scores` (every label's probability), `score` (the label's score in
    logit units, before the temperature), `truncated`, `words` (per word: `word`, `start`, `end`,
    `lstm`, `linear`, `total`), `pieces` (per model token: `piece`, `start`, `end`, `attribution`),
    `lstm` (`score`, `baseline_score`, `attribution_sum`, `residual`, `relative_residual`, `steps`
    (gradient evaluations used), `segments`, `baseline`), `linear` (`score`, `bias`, `ngrams`; None without a linear part) and `decided_by`.
    """
    check_steps(steps)
    check_texts(texts)
    model = predictor.model
    if getattr(model, "embedding", None) is None or predictor.tokenizer is None:
        raise NlpLstmError("this classifier reads float feature sequences, not text: explain works on text "
                           "classifiers (token attributions need words)")
    if label is not None and label not in predictor.labels:
        raise NlpLstmError(f"the model has no label {label!r}; its labels are {', '.join(predictor.labels)}")
    return [_explain_one(predictor, text, label=label, steps=steps) for text in texts]


def _explain_one(predictor, text: str, *, label: str | None, steps: int) -> dict[str, Any]:
    model, tokenizer, task = predictor.model, predictor.tokenizer, predictor.model.config.task
    ids, spans = tokenizer.encode(text), tokenizer.spans(text)
    if len(ids) != len(spans):
        raise NlpLstmError("the tokenizer's offsets do not match its tokens for this text; report it as a bug")
    limit = predictor.max_length
    truncated = len(ids) > limit
    if not ids:  # no token at all (only characters the tokenizer drops): predicted from <unk>, as `predict` does
        ids, spans = [tokenizer.unk_id], [(0, len(text))]
    ids, spans = ids[:limit], spans[:limit]
    # The words read: up to the end of the last token kept. The linear part reads them too (`predict`
    # gives it the kept tokens decoded, which for a truncated text can differ in case and spacing).
    read = text[: spans[-1][1]] if truncated else text
    example = {"input_ids": ids, "length": len(ids)}
    if predictor.ngrams is not None:
        [example["ngram_ids"]], [example["ngram_weights"]] = predictor.ngrams.transform([read])
    inputs, lengths, pad_mask, ngram_ids, ngram_weights = classifier_arguments(
        collate_classification([example]), "input_ids", predictor.device)
    with torch.no_grad():
        lstm_logits, linear_logits = model(inputs, lengths, pad_mask, ngram_ids, ngram_weights, parts=True)
        logits = lstm_logits if linear_logits is None else lstm_logits + linear_logits
        probabilities = model.scores(logits / predictor.temperature)[0].cpu()  # (num_labels,)
    predicted = int(probabilities.argmax())
    index = predicted if label is None else predictor.labels.index(label)

    def score(embedded, lengths, pad_mask) -> torch.Tensor:  # (B, T, E) -> (B,)
        return label_score(model.lstm_logits(embedded, lengths, pad_mask), task=task, label=index)

    was_training = model.training
    model.eval()  # dropout off; gradients on (cuDNN's LSTM backward refuses eval mode: the plain kernel then)
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            embedded = model.embedding(inputs).detach()  # (1, T, E)
            found = integrate(score, embedded, torch.zeros_like(embedded), additional=(lengths, pad_mask), steps=steps)
    finally:
        model.train(was_training)
    at_input, at_baseline = found.at_input, found.at_baseline
    per_piece = found.attributions[0].sum(dim=-1).cpu().double().tolist()  # (T,) summed over the embedding
    words = word_spans(read)
    lstm_words = spread([(start, end, value) for (start, end), value in zip(spans, per_piece)], words)
    difference = at_input - at_baseline
    lstm = {"score": at_input, "baseline_score": at_baseline, "attribution_sum": sum(per_piece),
            "residual": found.residual, "relative_residual": abs(found.residual) / max(abs(difference), 1e-12),
            "steps": found.steps, "segments": found.segments, "baseline": BASELINE}
    linear = None
    if predictor.ngrams is not None:
        linear = linear_contributions(predictor.ngrams, model.ngrams.table, model.ngrams.bias, read, words,
                                      task=task, label=index)
    linear_words = linear.pop("words") if linear else [0.0] * len(words)
    total = at_input + (linear["score"] if linear else 0.0)
    return {
        "kind": "classifier", "text": text, "label": predictor.labels[index],
        "predicted": predictor.labels[predicted], "probability": round(float(probabilities[index]), 4),
        "scores": {name: round(float(p), 4) for name, p in zip(predictor.labels, probabilities.tolist())},
        "score": total, "temperature": predictor.temperature, "truncated": truncated,
        "words": [{"word": read[start:end], "start": start, "end": end, "lstm": a, "linear": b, "total": a + b}
                  for (start, end), a, b in zip(words, lstm_words, linear_words)],
        "pieces": [{"piece": tokenizer.id_to_token(i), "start": start, "end": end, "attribution": value}
                   for i, (start, end), value in zip(ids, spans, per_piece)],
        "lstm": lstm, "linear": linear, "decided_by": decided_by(at_input, linear["score"] if linear else None),
    }


def decided_by(lstm: float, linear: float | None) -> str:
    """Which part carried the label's score: "bilstm", "linear" (the n-gram part), or "both" (each
    pushes the same way and neither gives more than 3/4 of the total)."""
    if linear is None:
        return "bilstm"
    total = lstm + linear
    if lstm * linear > 0 and min(abs(lstm), abs(linear)) >= abs(total) / 4:
        return "both"
    return "bilstm" if abs(lstm) >= abs(linear) else "linear"

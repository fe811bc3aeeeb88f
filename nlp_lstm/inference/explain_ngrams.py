"""The classifier's linear n-gram part, taken apart exactly (it is linear: nothing to approximate).

For one text with TF-IDF features x_k (`data/word_ngrams.py`) and the part's table W and bias b
(`nn/ngram_linear.py`), the label's score is

    s = sum_k x_k * u(W[k]) + u(b)

where u maps a row of logits to the label's score (`label_score`, also used for the BiLSTM part). So
each n-gram k contributes x_k * u(W[k]), and the contributions plus u(b) are the part's score.

On the words: an n-gram's contribution is split equally among its occurrences in the text (TF-IDF
counts them together; each counts alike), and each occurrence's share goes to the words it covers:
a word bigram gives half to each of its two words; a character n-gram gives its share to the word it
lies in (to two words in proportion to their characters, as in "t," which spans "t" and ",").
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nlp_lstm.data.word_ngrams import CHAR_PREFIX, WordNgrams
from nlp_lstm.inference.words import ngram_occurrences, spread


def label_score(logits: torch.Tensor, *, task: str, label: int) -> torch.Tensor:
    """`(..., outputs)` logits -> `(...)` the score of label index `label`, in logit units.

    binary (one logit z for the second label): z for it, -z for the first. multiclass: the label's
    logit minus the mean of all logits (softmax ignores a shift common to all logits, so the raw
    logit of one class carries an arbitrary offset; the centred one does not, and stays linear, so
    the parts' scores still add up). multilabel: the label's own logit (a sigmoid per label).
    """
    if task == "binary":
        return logits[..., 0] if label == 1 else -logits[..., 0]
    if task == "multiclass":
        return logits[..., label] - logits.mean(dim=-1)
    return logits[..., label]


def linear_contributions(ngrams: WordNgrams, table: torch.Tensor, bias: torch.Tensor, text: str,
                         words: Sequence[tuple[int, int]], *, task: str, label: int) -> dict[str, Any]:
    """The linear part's score for `label` on `text`, per n-gram and per word.

    Args:
        table: `(F, outputs)` the part's weights; bias `(outputs,)`.
        words: character spans of the words to report on (`words.word_spans`).
    Returns:
        `score` (contributions + bias, computed in float64), `bias`, `ngrams` (per n-gram present:
        `ngram`, `kind` word | char, `value` (its TF-IDF), `contribution`; largest first) and `words`
        (per word, the sum of its shares).
    """
    [ids], [values] = ngrams.transform([text])
    table64 = table.detach().to("cpu", torch.float64)
    if ids:
        rows = table64[torch.tensor(ids)] * torch.tensor(values, dtype=torch.float64).unsqueeze(-1)  # (K, outputs)
        contributions = label_score(rows, task=task, label=label).tolist()
    else:
        contributions = []
    bias_score = float(label_score(bias.detach().to("cpu", torch.float64), task=task, label=label))
    occurrences = ngram_occurrences(text, order=ngrams.order, char_order=ngrams.char_order, char_prefix=CHAR_PREFIX)
    pieces, listed = [], []
    for feature, value, contribution in zip(ids, values, contributions):
        gram = ngrams.vocabulary[feature]
        found = occurrences.get(gram, [])
        for occurrence in found:  # each occurrence alike; within one, each word of a word n-gram alike
            pieces += [(start, end, contribution / len(found) / len(occurrence)) for start, end in occurrence]
        is_char = gram.startswith(CHAR_PREFIX)
        listed.append({"ngram": gram[len(CHAR_PREFIX):] if is_char else gram, "kind": "char" if is_char else "word",
                       "value": round(float(value), 6), "contribution": contribution})
    listed.sort(key=lambda row: -abs(row["contribution"]))
    return {"score": sum(contributions) + bias_score, "bias": bias_score, "ngrams": listed,
            "words": spread(pieces, words)}

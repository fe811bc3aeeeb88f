"""A trained sequence tagger with its vocabulary: what `nlp_lstm.load` returns for a tagger.

`tag(texts)` takes raw texts (split into words by spaCy's rule tokenizer of the model's language,
character offsets kept) or pre-tokenized sentences (lists of tokens), and gives per sentence:

    tokens, tags            the best tag sequence (Viterbi under the CRF, else per-token argmax;
                            a softmax model's tags repaired as conlleval reads them, once)
    confidences             per token, the marginal probability of its tag, p(y_t = tag | x)
                            (CRF forward-backward; a softmax model's own probability)
    spans                   type, start/end token (end exclusive), start_char/end_char (raw text),
                            text, and confidence: the exact probability of the span's tags (with, in
                            BIO, no I-X after them) under the CRF (`decoding/crf_numpy.py`); under a
                            softmax model the product of its tokens' probabilities (tokens are
                            independent there), times p(next tag is not I-X)

Speed (the hot path has no per-token tensor work): sentences sorted by length run in batches of about
`BATCH_TOKENS` padded tokens; each distinct word's characters go through the character CNN once per
batch (`tagger_batch.py`); Viterbi, forward-backward and span probabilities run batched in numpy over
the emission scores, the same code for the PyTorch and ONNX runtimes. `confidences=False` skips the
forward-backward pass. Figures: benchmarks/bench_tagger_peer.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp_lstm.data.tagging import VOCAB_FILE, TaggingVocab, load_vocab
from nlp_lstm.data.text_words import split_words
from nlp_lstm.decoding import crf_numpy
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.clip import clip_text, CLIP_CHARS_PER_TOKEN
from nlp_lstm.inference.tagger_batch import CharTables, TypeBatch, TypeEmissionGraph, TypeEncoder, torch_emissions
from nlp_lstm.metrics.spans import repair, spans as tag_spans, split_tag
from nlp_lstm.model_dir import ModelFile, load_state
from nlp_lstm.models.tagger import SequenceTagger

BATCH_TOKENS = 4096  # padded tokens per forward pass (sentences sorted by length pad little)
MAX_INPUT_TOKENS = 1024  # tokens of one text the server tags (`predict_batch`); `tag` reads them all


def as_sentences(texts: Any, *, pretokenized: bool = False) -> list[str | list[str]]:
    """What `tag` accepts -> a list of items, each a text (str) or a sentence (list of str tokens).

    One string is one text; a list holds texts and/or token lists. With `pretokenized`, each string
    is one sentence of whitespace-separated tokens."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Iterable):
        raise NlpLstmError(f"texts must be a string, or a list of texts or of token lists, got {type(texts).__name__}")
    items: list[str | list[str]] = []
    for index, item in enumerate(texts):
        if isinstance(item, str):
            items.append(item.split() if pretokenized else item)
        elif isinstance(item, (list, tuple)) and all(map(isinstance, item, repeat(str))):  # no Python step per token
            items.append(list(item))
        else:
            raise NlpLstmError(f"text {index} is {type(item).__name__}; give a string (raw text) or a list of "
                               "token strings (pre-tokenized)")
    return items


class TaggerPredictor:
    """A `SequenceTagger` with its `TaggingVocab`, the spaCy language of raw text, and its CRF's
    constrained scores for decoding in numpy (module doc)."""

    kind = "tagger"

    def __init__(self, model: SequenceTagger, vocab: TaggingVocab, *, device: torch.device | None = None) -> None:
        if list(vocab.tags) != list(model.config.tags):
            raise NlpLstmError(f"the tagging vocabulary's tags ({', '.join(vocab.tags[:6])} ...) are not the model's "
                               f"({', '.join(model.config.tags[:6])} ...); the files do not belong together: re-save the model")
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.vocab = vocab
        self.labels = list(model.config.tags)
        self.scheme = model.config.scheme
        self.encoder = TypeEncoder(vocab)
        self.char_tables = CharTables(self.model.chars)
        self.crf_scores = None
        if model.crf is not None:
            with torch.no_grad():
                self.crf_scores = crf_numpy.CrfScores(*(s.detach().float().cpu().numpy() for s in model.crf.constrained_scores()))
        # BIO: a span goes on while I-X follows; the id of I-X per span type (-1: the tag set has none).
        self._continues = {label: self.labels.index(f"I-{label}") if f"I-{label}" in self.labels else -1
                           for prefix, label in map(split_tag, self.labels) if prefix in ("B", "S")}
        self._valid_paths = self.crf_scores is not None and model.config.constrained  # no repair needed

    @property
    def language(self) -> str:
        return self.config.language

    @property
    def max_input_length(self) -> int:
        """Tokens of one text the server tags (the rest is cut, `truncated`); `tag` reads whole texts."""
        return MAX_INPUT_TOKENS

    @property
    def serve_refusal(self) -> str | None:
        """Why `serve` cannot run this model, or None: `/v1/tag` takes texts only, no per-token feature."""
        if self.config.feature_embedding_dim > 0:
            return ("reads a per-token feature column (such as a predicate indicator), which /v1/tag cannot "
                    "carry; tag with it from Python: nlp_lstm.load(DIR).tag(tokens, features=...)")
        return None

    @classmethod
    def load(cls, path: Path, model_file: ModelFile, *, device: torch.device) -> "TaggerPredictor":
        model = SequenceTagger(model_file.model)
        load_state(path, model)
        vocab = load_vocab(path)
        if len(vocab.words) != model.config.vocab_size or len(vocab.chars) != model.config.char_vocab_size:
            raise NlpLstmError(f"{path / VOCAB_FILE} has {len(vocab.words)} words and {len(vocab.chars)} characters but the "
                               f"model expects {model.config.vocab_size} and {model.config.char_vocab_size}; "
                               "the vocabulary does not belong to this model")
        return cls(model, vocab, device=device)

    # --- the user's method ---------------------------------------------------------------------

    def tag(self, texts: Any, *, features: Sequence[Sequence[int]] | None = None, confidences: bool = True,
            pretokenized: bool = False, runner_up: bool = False) -> list[dict[str, Any]]:
        """Tags, per-token confidences and spans per text (module doc), in input order.

        Args:
            texts: a text, or a list of texts (str) and/or pre-tokenized sentences (lists of str).
            features: one 0/1 list per sentence, for a model that reads a per-token feature (a
                predicate indicator); one value per token (of raw text: per word as split).
            confidences: compute the per-token and per-span probabilities (one forward-backward pass).
            pretokenized: each string is a sentence of whitespace-separated tokens.
            runner_up: also `"runner_up"`: per token the next most probable tag and its probability.
        Returns:
            per item `{"tokens", "tags", "confidences", "spans"}` (+ `"text"`, `"offsets"` for raw text).
        """
        items = as_sentences(texts, pretokenized=pretokenized)
        if features is not None and len(features) != len(items):
            raise NlpLstmError(f"{len(features)} feature lists for {len(items)} texts; give one per text")
        raw = [index for index, item in enumerate(items) if isinstance(item, str)]
        split = split_words([items[index] for index in raw], self.language) if raw else []
        sentences = list(items)
        offsets: dict[int, list[tuple[int, int]]] = {}
        for index, (words, spans) in zip(raw, split):
            sentences[index], offsets[index] = words, spans
        results = self.tag_sentences(sentences, features=features, confidences=confidences or runner_up,
                                     runner_up=runner_up)
        for index in raw:
            text, result = items[index], results[index]
            word_offsets = offsets[index]
            result["spans"] = [with_offsets(span, text, word_offsets) for span in result["spans"]]
            results[index] = {"text": text, **result, "offsets": [list(pair) for pair in word_offsets]}
        return results

    def tag_sentences(self, sentences: Sequence[Sequence[str]], *, features: Sequence[Sequence[int]] | None = None,
                      confidences: bool = True, runner_up: bool = False) -> list[dict[str, Any]]:
        """`tag` over token lists (the hot path): `{"tokens", "tags", "confidences", "spans"}` each."""
        results: list[dict[str, Any]] = [{}] * len(sentences)
        for index, tokens in enumerate(sentences):
            if not tokens:  # nothing to tag: no model call
                results[index] = {"tokens": [], "tags": [], **({"confidences": []} if confidences else {}), "spans": [],
                                  **({"runner_up": []} if runner_up else {})}
        order = sorted((i for i, tokens in enumerate(sentences) if tokens), key=lambda i: len(sentences[i]))
        for chunk in self._batches(order, [len(tokens) for tokens in sentences]):
            batch = self.encoder.encode([sentences[i] for i in chunk],
                                        None if features is None else [features[i] for i in chunk])
            for index, row in zip(chunk, self.decode(batch, confidences=confidences, runner_up=runner_up)):
                tokens = list(sentences[index])
                for span in row["spans"]:
                    span["text"] = " ".join(tokens[span["start"] : span["end"]])
                results[index] = {"tokens": tokens, "tags": row["tags"],
                                  **({"confidences": row["confidences"]} if confidences else {}), "spans": row["spans"],
                                  **({"runner_up": row["runner_up"]} if runner_up else {})}
        return results

    @staticmethod
    def _batches(order: list[int], lengths: list[int]) -> Iterable[list[int]]:
        """Indices sorted by length -> chunks of about `BATCH_TOKENS` padded tokens."""
        chunk: list[int] = []
        for index in order:
            if chunk and (len(chunk) + 1) * lengths[index] > BATCH_TOKENS:
                yield chunk
                chunk = []
            chunk.append(index)
        if chunk:
            yield chunk

    # --- decoding --------------------------------------------------------------------------------

    def emissions(self, batch: TypeBatch) -> np.ndarray:
        """`(B, T, K)` float32 emission scores: the ONNX graph's (`onnx_runtime.OnnxTagger`) or PyTorch's."""
        run = getattr(self.model, "type_emissions", None)
        if run is not None:
            return run(batch)
        return torch_emissions(TypeEmissionGraph(self.model), self.char_tables, batch, self.device)

    def decode(self, batch: TypeBatch, *, confidences: bool = True, runner_up: bool = False) -> list[dict[str, Any]]:
        """Per row of a batch: `{"tags", "confidences", "spans"}` (spans without `text`), and with
        `runner_up` (which needs `confidences`) each token's second most probable tag `[tag, p]`."""
        emissions, lengths = self.emissions(batch), batch.lengths
        crf = self.crf_scores
        if crf is not None:
            paths = crf_numpy.viterbi(emissions, lengths, crf)
        else:
            paths = emissions.argmax(axis=2)
        tag_lists = [[self.labels[i] for i in row[:length]] for row, length in zip(paths.tolist(), lengths.tolist())]
        if self.scheme != "plain" and not self._valid_paths:  # a softmax (or unconstrained) model's tags
            for row, tags in enumerate(tag_lists):
                fixed, changed = repair(tags, self.scheme)
                if changed:
                    tag_lists[row] = fixed
                    paths[row, : len(fixed)] = [self.labels.index(tag) for tag in fixed]
        found = [tag_spans(tags, self.scheme) for tags in tag_lists] if self.scheme != "plain" else [[]] * len(tag_lists)
        rows = [{"tags": tags, "spans": [{"type": s.label, "start": s.start, "end": s.end} for s in row_spans]}
                for tags, row_spans in zip(tag_lists, found)]
        if not confidences:
            return rows
        if crf is not None:
            forward_backward = crf_numpy.forward_backward(emissions, lengths, crf)
            probabilities = crf_numpy.marginals(forward_backward, lengths)
        else:
            probabilities = _softmax(emissions)
        token_confidence = np.take_along_axis(probabilities, paths[:, :, None], axis=2)[:, :, 0]  # (B, T)
        for row, values, length in zip(rows, np.round(token_confidence.astype(np.float64), 4).tolist(), lengths.tolist()):
            row["confidences"] = values[:length]
        if runner_up:
            others = probabilities.copy()
            np.put_along_axis(others, paths[:, :, None], -1.0, axis=2)  # the chosen tag is not its own runner-up
            second = others.argmax(axis=2)  # (B, T)
            second_probability = np.round(np.take_along_axis(probabilities, second[:, :, None], axis=2)[:, :, 0]
                                          .astype(np.float64), 4)
            for row, ids, values, length in zip(rows, second.tolist(), second_probability.tolist(), lengths.tolist()):
                row["runner_up"] = [[self.labels[i], value] for i, value in zip(ids[:length], values[:length])]
        span_rows = [(r, s.start, s.end, self._continues.get(s.label, -1) if self.scheme == "bio" else -1)
                     for r, row_spans in enumerate(found) for s in row_spans]
        if span_rows:
            where, starts, ends, not_next = (np.array(column, dtype=np.int64) for column in zip(*span_rows))
            if crf is not None:
                span_confidence = crf_numpy.segment_probabilities(
                    emissions, lengths, crf, forward_backward, paths, rows=where, starts=starts, ends=ends,
                    not_next=not_next)
            else:
                span_confidence = _independent_segments(probabilities, token_confidence, lengths, rows=where,
                                                        starts=starts, ends=ends, not_next=not_next)
            spans_flat = [span for row in rows for span in row["spans"]]
            for span, value in zip(spans_flat, np.round(span_confidence, 4).tolist()):
                span["confidence"] = value
        return rows

    @property
    def tokenizer(self) -> "_WordCounter":
        """The words of raw text in `clip_text`'s interface (the server's explain page clips texts with it)."""
        return _WordCounter(self.language)

    def explain(self, texts: Any, *, pretokenized: bool = False, label: str | None = None,
                steps: int | None = None) -> list[dict[str, Any]]:
        """Why each token got its tag (issue 25): per token its tag's marginal probability and the
        runner-up tag's, from the same forward-backward pass as `tag`'s confidences (a softmax
        model: its own probabilities). A small margin marks a token the model nearly tagged otherwise.

        Returns:
            per text `{"kind": "tagger", "tokens", "tags", "spans", "words": [{"token", "tag",
            "probability", "runner_up", "runner_up_probability"}, ...], "truncated": False}` (+ `"text"`
            for raw text, and each word's `"start"`, `"end"` in it; every token is read).
        Raises:
            NlpLstmError: `label` or `steps` given (a classifier's options, which `/v1/explain` passes on).
        """
        if label is not None or steps is not None:
            raise NlpLstmError("label and steps are for classifiers; a tagger explains every token's tag: drop them")
        explained = []
        for result in self.tag(texts, pretokenized=pretokenized, runner_up=True):
            words = [{"token": token, "tag": tag, "probability": probability, "runner_up": second,
                      "runner_up_probability": second_probability}
                     for token, tag, probability, (second, second_probability)
                     in zip(result["tokens"], result["tags"], result["confidences"], result["runner_up"])]
            for word, (start, end) in zip(words, result.get("offsets", ())):  # raw text: where each token is
                word["start"], word["end"] = start, end
            text = {"text": result["text"]} if "text" in result else {}
            explained.append({"kind": self.kind, **text, "tokens": result["tokens"], "tags": result["tags"],
                              "spans": result["spans"], "words": words, "truncated": False})
        return explained

    # --- the server's batch method -------------------------------------------------------------

    def predict_batch(self, items: list) -> list[dict[str, Any]]:
        """What the server runs per micro-batch. Items are texts, or `(text, pretokenized)` pairs; per
        item `tag`'s result for its first `max_input_length` tokens, with `"truncated"`."""
        pairs = [(item, False) if isinstance(item, str) else tuple(item) for item in items]
        limit = self.max_input_length
        texts, truncated = [], []
        for text, pretokenized in pairs:
            if pretokenized:
                tokens = text.split()
                texts.append(tokens[:limit])
                truncated.append(len(tokens) > limit)
            else:
                clipped, cut = clip_text(text, _WordCounter(self.language), limit) \
                    if len(text) > CLIP_CHARS_PER_TOKEN * (limit + 1) else (text, None)
                texts.append(clipped)
                truncated.append(cut)
        results = self.tag(texts)
        for index, cut in enumerate(truncated):
            if cut is None:  # a raw text short enough to split whole: its words are counted here
                cut = len(results[index]["tokens"]) > limit
            if len(results[index]["tokens"]) > limit:
                results[index] = self._first_tokens(results[index], limit)
            results[index]["truncated"] = bool(cut)
        return results

    def _first_tokens(self, result: dict[str, Any], limit: int) -> dict[str, Any]:
        """A raw text's result re-tagged over its first `limit` words (the model reads no more)."""
        again = self.tag_sentences([result["tokens"][:limit]])[0]
        offsets = result["offsets"][:limit]
        again["spans"] = [with_offsets(span, result["text"], offsets) for span in again["spans"]]
        return {"text": result["text"], **again, "offsets": offsets}


def with_offsets(span: dict[str, Any], text: str, offsets: Sequence[Sequence[int]]) -> dict[str, Any]:
    """A span of a raw text with its character offsets (`text[start_char:end_char]` is its text)."""
    start_char, end_char = offsets[span["start"]][0], offsets[span["end"] - 1][1]
    confidence = {"confidence": span["confidence"]} if "confidence" in span else {}
    return {"type": span["type"], "start": span["start"], "end": span["end"], "start_char": start_char,
            "end_char": end_char, "text": text[start_char:end_char], **confidence}


class _WordCounter:
    """`clip_text`'s tokenizer interface over `split_words`: words per text."""

    def __init__(self, language: str) -> None:
        self.language = language

    def encode_batch(self, texts: list[str]) -> list[list[str]]:
        return [words for words, _ in split_words(texts, self.language)]


def _softmax(emissions: np.ndarray) -> np.ndarray:
    shifted = np.exp(emissions - emissions.max(axis=2, keepdims=True))
    return shifted / shifted.sum(axis=2, keepdims=True)


def _independent_segments(probabilities: np.ndarray, token_confidence: np.ndarray, lengths: np.ndarray, *,
                          rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, not_next: np.ndarray) -> np.ndarray:
    """Span probabilities under a softmax tagger (tokens independent): the product of the span's
    token probabilities, times `1 - p(next = not_next)` where a token follows (BIO)."""
    logs = np.cumsum(np.log(np.maximum(token_confidence.astype(np.float64), 1e-300)), axis=1)  # (B, T)
    before = np.where(starts > 0, logs[rows, np.maximum(starts - 1, 0)], 0.0)
    probability = np.exp(logs[rows, ends - 1] - before)
    follows = (not_next >= 0) & (ends < lengths[rows])
    probability[follows] *= 1.0 - probabilities[rows[follows], ends[follows], not_next[follows]]
    return np.clip(probability, 0.0, 1.0)

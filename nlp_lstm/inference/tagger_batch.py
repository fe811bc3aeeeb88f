"""Sentences -> the tagger's input tensors, and its emission scores, the fast way for prediction.

`TaggingVocab.encode` (training) gives every token position its own row of character ids, and the
character CNN then runs over `B x T` words of the batch's longest word's length. A word's character
features depend on its characters alone, so here each distinct word of a batch is run once:

    type_chars  (U, L)   character ids of the batch's U distinct words (L: the longest of them)
    token_types (B, T)   which of them each position holds; U (one more row, zero features) at padding
    c_t = CharCNN(type_chars)[token_types]     (B, T, F)   the same values `emission_scores` computes

Words of similar lengths are run together (`TYPE_CHUNK` words at a time, sorted by length), so the
convolution pads little. The rest is `SequenceTagger.emission_scores` step for step (in eval mode
dropout is the identity): `type_emission_scores` is tested equal to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nlp_lstm.data.specials import PAD_ID, UNK_ID
from nlp_lstm.data.tagging import TaggingVocab, clip_word
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.onnx_graphs import encode_packed, torch_lstm
from nlp_lstm.models.tagger import SequenceTagger

TYPE_CHUNK = 512  # distinct words per character-CNN call
MIN_EQUAL_ROWS = 8  # rows of one length that run the BiLSTM on their own (`length_segments`)


@dataclass
class TypeBatch:
    """A padded batch for prediction (module doc). Arrays are numpy, the same for both runtimes.

    Attributes:
        word_ids: `(B, T)` int64; type_chars: `(U, L)` int64; token_types: `(B, T)` int64 (U at padding);
        lengths: `(B,)` int64; features: `(B, T)` int64 0/1, or None.
    """

    word_ids: np.ndarray
    type_chars: np.ndarray
    token_types: np.ndarray
    lengths: np.ndarray
    features: np.ndarray | None = None


class TypeEncoder:
    """Words -> word ids and character ids, each distinct word looked up once and kept (a word's ids
    never change for a given vocabulary)."""

    def __init__(self, vocab: TaggingVocab, *, cache_size: int = 200_000) -> None:
        self.vocab = vocab
        self.cache_size = cache_size
        self._ids: dict[str, tuple[int, list[int]]] = {}

    def _lookup(self, word: str) -> tuple[int, list[int]]:
        found = self._ids.get(word)
        if found is None:
            chars = self.vocab._char_index  # noqa: SLF001 - the vocabulary's own table, read-only
            found = (self.vocab.word_id(word), [chars.get(char, UNK_ID) for char in clip_word(word)] or [UNK_ID])
            if len(self._ids) < self.cache_size:
                self._ids[word] = found
        return found

    def encode(self, sentences: Sequence[Sequence[str]], features: Sequence[Sequence[int]] | None = None) -> TypeBatch:
        """A `TypeBatch` of sentences (each at least one token)."""
        lengths = np.fromiter((len(tokens) for tokens in sentences), dtype=np.int64, count=len(sentences))
        if len(sentences) == 0 or lengths.min() == 0:
            raise NlpLstmError("an empty sentence reached the tagger; drop sentences without tokens")
        index: dict[str, int] = {}
        flat = [index.setdefault(token, len(index)) for tokens in sentences for token in tokens]
        words = list(index)
        looked_up = [self._lookup(word) for word in words]
        width = max(len(chars) for _, chars in looked_up)
        type_chars = np.zeros((len(words), width), dtype=np.int64)  # PAD_ID is 0
        for row, (_, chars) in enumerate(looked_up):
            type_chars[row, : len(chars)] = chars
        type_word_ids = np.fromiter((word_id for word_id, _ in looked_up), dtype=np.int64, count=len(words))
        real = np.arange(int(lengths.max()))[None, :] < lengths[:, None]  # (B, T)
        token_types = np.full(real.shape, len(words), dtype=np.int64)
        token_types[real] = flat  # row-major, as `flat` was built
        word_ids = np.append(type_word_ids, PAD_ID)[token_types]  # (B, T)
        feature_ids = None
        if features is not None:
            feature_ids = np.zeros(real.shape, dtype=np.int64)
            for row, values in enumerate(features):
                if len(values) != lengths[row]:
                    raise NlpLstmError(f"sentence {row} has {lengths[row]} tokens but {len(values)} features; "
                                       "give one 0/1 feature per token")
                feature_ids[row, : len(values)] = [int(bool(value)) for value in values]
        return TypeBatch(word_ids, type_chars, token_types, lengths, feature_ids)


class CharTables:
    """`CharCNN` (embed, convolve, max, tanh) with the embedding folded into the convolution: for
    each kernel offset j a table `M_j = E W_j^T` `(V, F)`, so that the convolution at position p is
    `b + sum_j M_j[c_(p + j - k//2)]`, k gathers instead of an im2col and a matmul per word. Positions
    outside the word read a zero row (the convolution's zero padding). Exact up to float rounding;
    tested equal to `CharCNN`."""

    def __init__(self, chars: nn.Module) -> None:
        with torch.no_grad():
            embedding, weight = chars.embedding.weight, chars.conv.weight  # (V, C), (F, C, k)
            tables = torch.einsum("vc,fck->kvf", embedding, weight)  # (k, V, F)
            self.tables = torch.cat([tables, tables.new_zeros(tables.shape[0], 1, tables.shape[2])], dim=1)
            self.bias = chars.conv.bias.detach().clone()
        self.outside = self.tables.shape[1] - 1  # the zero row
        self.kernel_size = weight.shape[2]

    def __call__(self, char_ids: torch.Tensor) -> torch.Tensor:
        """`(N, L)` char ids -> `(N, F)` features, as `CharCNN.forward`."""
        width, left = char_ids.shape[1], self.kernel_size // 2
        padded = F.pad(char_ids, (left, self.kernel_size - 1 - left), value=self.outside)  # (N, L + k - 1)
        convolved = self.bias + sum(self.tables[j][padded[:, j : j + width]] for j in range(self.kernel_size))  # (N, L, F)
        convolved = convolved.masked_fill((char_ids == PAD_ID).unsqueeze(-1), -1e4)
        return torch.tanh(convolved.max(dim=1).values)  # (N, F)


def type_char_features(chars: CharTables, type_chars: torch.Tensor) -> torch.Tensor:
    """`(U, L)` -> `(U + 1, F)` character features of each distinct word, a zero row last (padding).
    Words run `TYPE_CHUNK` at a time in order of length, each chunk cut to its own longest word."""
    word_lengths = (type_chars != PAD_ID).sum(dim=1)
    order = torch.argsort(word_lengths)
    features = None
    for start in range(0, type_chars.shape[0], TYPE_CHUNK):
        rows = order[start : start + TYPE_CHUNK]
        width = int(word_lengths[rows].max())
        computed = chars(type_chars[rows, :width])  # (chunk, F)
        if features is None:
            features = computed.new_zeros(type_chars.shape[0] + 1, computed.shape[1])
        features[rows] = computed
    return features


class TypeEmissionGraph(nn.Module):
    """`SequenceTagger.emission_scores` over a `TypeBatch`'s tensors (eval mode): what both the
    PyTorch predictor runs and the ONNX export traces (no data-dependent shapes but U)."""

    def __init__(self, model: SequenceTagger) -> None:
        super().__init__()
        self.model = model

    def forward(self, word_ids: torch.Tensor, type_chars: torch.Tensor, token_types: torch.Tensor,
                lengths: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """word_ids `(B, T)`, type_chars `(U, L)`, token_types `(B, T)`, lengths `(B,)`, features
        `(B, T)` or None -> emissions `(B, T, K)`."""
        model = self.model
        char_features = model.chars(type_chars)  # (U, F)
        char_features = torch.cat([char_features, char_features.new_zeros(1, char_features.shape[1])])  # (U + 1, F)
        return self.from_char_features(word_ids, char_features, token_types, lengths, features)

    def from_char_features(self, word_ids, char_features, token_types, lengths, features=None, *,
                           by_length: bool = False) -> torch.Tensor:
        """The same, from `(U + 1, F)` features already computed (`type_char_features`). `by_length`:
        the BiLSTM runs per run of rows of equal length (`length_segments`), not traced."""
        model = self.model
        parts = [model.embedding(word_ids), char_features[token_types]]  # (B, T, E), (B, T, F)
        if model.feature_embedding is not None:
            if features is None:
                raise NlpLstmError("this tagger reads a per-token feature column (such as a predicate indicator); "
                                   "give it with the tokens (features=[[0, 1, 0, ...], ...])")
            parts.append(model.feature_embedding(features))
        inputs = torch.cat(parts, dim=-1)  # (B, T, E + F + D_f)
        if not by_length:
            outputs, _ = model.encoder(inputs, lengths, need_cell_state=False)  # (B, T, 2H)
            return model.emissions(outputs)  # (B, T, K)
        outputs = inputs.new_zeros(*inputs.shape[:2], model.encoder.output_size)
        for start, stop in length_segments(lengths.tolist()):
            longest = int(lengths[start:stop].max())
            outputs[start:stop, :longest], _ = model.encoder(inputs[start:stop, :longest], lengths[start:stop],
                                                             need_cell_state=False)
        return model.emissions(outputs)  # (B, T, K)


def length_segments(lengths: list[int]) -> list[tuple[int, int]]:
    """Row ranges `[start, stop)` to run the BiLSTM on: each run of `MIN_EQUAL_ROWS` or more rows of
    one length alone, the rows between such runs together. Rows of one length need no per-row
    reversal: both directions go in one fused call (`nn/lstm.py`), measured 0.77x the time of
    ragged batches of the same sentences (benchmarks/bench_tagger_peer.py notes)."""
    segments, start, position = [], 0, 0
    while position < len(lengths):
        stop = position
        while stop < len(lengths) and lengths[stop] == lengths[position]:
            stop += 1
        if stop - position >= MIN_EQUAL_ROWS:
            if start < position:
                segments.append((start, position))
            segments.append((position, stop))
            start = stop
        position = stop
    if start < len(lengths):
        segments.append((start, len(lengths)))
    return segments


def torch_emissions(graph: TypeEmissionGraph, tables: CharTables, batch: TypeBatch, device: torch.device) -> np.ndarray:
    """Emission scores `(B, T, K)` float32 of a `TypeBatch` with PyTorch (`tables`: the model's `CharTables`)."""
    move = lambda array: None if array is None else torch.from_numpy(array).to(device)  # noqa: E731
    with torch.inference_mode():
        char_features = type_char_features(tables, move(batch.type_chars))
        emissions = graph.from_char_features(move(batch.word_ids), char_features, move(batch.token_types),
                                             move(batch.lengths), move(batch.features), by_length=True)
    return emissions.float().cpu().numpy()


class TaggerGraph(nn.Module):
    """`TypeEmissionGraph` as the ONNX export traces it: the BiLSTM as `torch.nn.LSTM` over packed
    rows (`onnx_graphs.encode_packed`: ONNX's LSTM op with `sequence_lens`, exact per row)."""

    def __init__(self, model: SequenceTagger) -> None:
        super().__init__()
        self.model = model
        self.encoder = torch_lstm(model.encoder)

    def forward(self, word_ids: torch.Tensor, type_chars: torch.Tensor, token_types: torch.Tensor,
                lengths: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        model = self.model
        char_features = model.chars(type_chars)  # (U, F)
        char_features = torch.cat([char_features, char_features.new_zeros(1, char_features.shape[1])])  # (U + 1, F)
        parts = [model.embedding(word_ids), char_features[token_types]]  # (B, T, E), (B, T, F)
        if model.feature_embedding is not None:
            parts.append(model.feature_embedding(features))
        outputs, _ = encode_packed(self.encoder, inputs=torch.cat(parts, dim=-1), lengths=lengths)  # (B, T, 2H)
        return model.emissions(outputs)  # (B, T, K)

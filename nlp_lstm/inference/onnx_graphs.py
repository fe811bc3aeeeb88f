"""The modules `onnx_export.py` traces into ONNX graphs: each one the eval-mode computation of a
model, written so that a trace keeps every axis that varies (batch, time, beams) dynamic.

- `ClassifierGraph`: `TextClassifier.forward`, `(inputs, lengths) -> logits`.
- `EncoderGraph`: `Summarizer.encode` then `Summarizer.init_state` (the bridge).
- `DecoderStepGraph`: `Summarizer.step` for any number of beams per example.

Variable lengths: the encoder runs as `torch.nn.LSTM` over a packed sequence, which the TorchScript
exporter writes as ONNX's LSTM op with `sequence_lens` (both directions in one fused op). ONNX
Runtime then starts the backward direction at each row's own last real token, returns zeros past
each length and the final (h, c) at each row's own end: exactly what our encoder computes.
`enforce_sorted=True` only matters while tracing (the sort itself would not export); the graph
takes lengths in any order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp_lstm.data.specials import UNK_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import EncoderOutput, Summarizer
from nlp_lstm.nn.attention import AdditiveAttention, GeneralAttention, masked_softmax
from nlp_lstm.nn.copy import EPSILON
from nlp_lstm.nn.lstm import LSTM

__all__ = ["ClassifierGraph", "DecoderStepGraph", "EncoderGraph", "attention_scores", "copy_log_probs",
           "encode_packed", "pad_mask_from", "torch_lstm"]


# ---------------------------------------------------------------------------------------------
# The encoder: our fused LSTM as torch.nn.LSTM over packed sequences
# ---------------------------------------------------------------------------------------------


def torch_lstm(encoder: LSTM) -> nn.LSTM:
    """A `torch.nn.LSTM` (batch first) with our encoder's weights; our parameter names match its own.

    Diagonal peepholes are not part of `nn.LSTM`: `onnx_export.add_peepholes` writes them into the graph.
    """
    if encoder.peephole == "full":
        raise NlpLstmError(
            "cannot export an encoder with peephole='full' to ONNX: ONNX's LSTM op has only diagonal "
            "peepholes (one weight per cell); run this model with the PyTorch runtime"
        )
    lstm = nn.LSTM(encoder.input_size, encoder.hidden_size, num_layers=encoder.num_layers,
                   bidirectional=encoder.bidirectional, batch_first=True)  # fmt: skip
    lstm.load_state_dict({name: value for name, value in encoder.state_dict().items()
                          if not name.startswith("peephole_")})  # fmt: skip
    return lstm.eval()


def encode_packed(lstm: nn.LSTM, *, inputs: torch.Tensor, lengths: torch.Tensor):
    """Run `lstm` over each row's real length.

    Args:
        inputs: `(B, T, D)`; lengths: `(B,)` int64 in 1..T.
    Returns:
        outputs `(B, T, dirs*H)`, zero past each length; (h_n, c_n) each `(layers*dirs, B, H)` at
        each row's own last real step (backward direction: at its first token).
    """
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=True)
    outputs, (h_n, c_n) = lstm(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
    return outputs, (h_n, c_n)


def pad_mask_from(lengths: torch.Tensor, time: int | torch.Tensor) -> torch.Tensor:
    """`(B,)` lengths -> `(B, T)` bool, True at padding (the collate functions' mask)."""
    return torch.arange(time, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# Graph modules: what gets traced
# ---------------------------------------------------------------------------------------------


class ClassifierGraph(nn.Module):
    """`TextClassifier.forward` in eval mode, traceable: `(inputs, lengths) -> logits`."""

    def __init__(self, model: TextClassifier) -> None:
        super().__init__()
        self.embedding = model.embedding
        self.encoder = torch_lstm(model.encoder)
        self.pooling = model.pooling
        self.head = model.head
        self.ngrams = model.ngrams
        self.directions = model.encoder.num_directions

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, ngram_ids: torch.Tensor | None = None,
                ngram_weights: torch.Tensor | None = None) -> torch.Tensor:
        """inputs `(B, T)` ids or `(B, T, D)` features, lengths `(B,)`, and for a model with a linear
        part its word n-gram features `(B, K)` -> logits `(B, 1 | L)`."""
        embedded = self.embedding(inputs) if self.embedding is not None else inputs  # (B, T, E)
        outputs, _ = encode_packed(self.encoder, inputs=embedded, lengths=lengths)  # (B, T, dirs*H)
        pad_mask = pad_mask_from(lengths, inputs.shape[1])  # (B, T)
        pooled = self.pooling(outputs, pad_mask, self._final_hidden(outputs, lengths))  # (B, dirs*H)
        logits = self.head(pooled)
        return logits if self.ngrams is None else logits + self.ngrams(ngram_ids, ngram_weights)

    def _final_hidden(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last layer's h_n as `(B, dirs*H)`: forward at each row's last token, backward at its first.

        Read from `outputs` (the same values as the LSTM op's Y_h), not from h_n: with "last" pooling
        nothing else would read the outputs, and the exporter fails on a packed LSTM whose outputs
        are never unpacked.
        """
        hidden = self.encoder.hidden_size
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden)  # (B, 1, H)
        forward = outputs[:, :, :hidden].gather(1, index).squeeze(1)  # (B, H)
        if self.directions == 1:
            return forward
        return torch.cat([forward, outputs[:, 0, hidden:]], dim=-1)  # (B, 2H)


class EncoderGraph(nn.Module):
    """`Summarizer.encode` then `Summarizer.init_state` (the bridge), traceable."""

    def __init__(self, model: Summarizer) -> None:
        super().__init__()
        self.model = model
        self.encoder = torch_lstm(model.encoder)

    def forward(self, src_ids: torch.Tensor, src_lengths: torch.Tensor):
        """src_ids `(E, S)`, src_lengths `(E,)` -> outputs `(E, S, 2H)`, keys `(E, S, A)`, h0, c0 `(L, E, H)`."""
        embedded = self.model.embedding(src_ids)  # (E, S, emb)
        outputs, (final_h, final_c) = encode_packed(self.encoder, inputs=embedded, lengths=src_lengths)
        encoded = EncoderOutput(outputs=outputs, keys=self.model.attention.project_keys(outputs),
                                pad_mask=pad_mask_from(src_lengths, src_ids.shape[1]), final_h=final_h,
                                final_c=final_c)  # fmt: skip
        state = self.model.init_state(encoded)
        return encoded.outputs, encoded.keys, state.h, state.c


class DecoderStepGraph(nn.Module):
    """`Summarizer.step` for `R = E * K` rows, traceable with the beam count K read from the shapes.

    The same equations as `Summarizer.step` (its module docstring), written without the loops over
    beams and chunks that `Attention` and `extended_log_probs` use to save memory in PyTorch, which a
    trace would freeze at the example's beam count.
    """

    def __init__(self, model: Summarizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, prev_ids, h, c, input_feed, coverage, encoder_outputs, attention_keys, src_pad_mask,
                src_ext_ids):
        """Args (R = E * K rows, example-major; E examples; S source positions):
            prev_ids `(R,)` int64 extended ids; h, c `(L, R, H)`; input_feed `(R, H)`; coverage `(R, S)`;
            encoder_outputs `(E, S, 2H)`; attention_keys `(E, S, A)`; src_pad_mask `(E, S)` bool;
            src_ext_ids `(E, S)` int64.
        Returns:
            log_probs `(R, V + S)`, h, c `(L, R, H)`, input_feed `(R, H)`, coverage `(R, S)`,
            attention `(R, S)`, p_gen `(R,)`.
        """
        model = self.model
        vocab_size = model.config.vocab_size
        examples, src_len = src_pad_mask.shape
        rows = prev_ids.shape[0]
        beams = rows // examples
        prev_ids = prev_ids.masked_fill(prev_ids >= vocab_size, UNK_ID)
        inputs = torch.cat([model.embedding(prev_ids), input_feed], dim=-1)  # (R, E + H), input feeding

        layer_input, new_h, new_c = inputs, [], []
        for layer, cell in enumerate(model.decoder_cells):
            h_layer, c_layer = cell(layer_input, (h[layer], c[layer]))
            new_h.append(h_layer)
            new_c.append(c_layer)
            layer_input = h_layer
        query = new_h[-1]  # s_t, (R, H)

        scores = attention_scores(model.attention, query=query.view(examples, beams, -1), keys=attention_keys,
                                  coverage=coverage.view(examples, beams, src_len))  # (E, K, S)
        weights = masked_softmax(scores, src_pad_mask)  # (E, K, S)
        context = torch.matmul(weights, encoder_outputs).view(rows, -1)  # (R, 2H)
        attention = weights.view(rows, src_len)
        attentional = torch.tanh(model.attentional(torch.cat([context, query], dim=-1)))  # h~_t, (R, H)
        vocab_logits = model.generator(attentional)  # (R, V)
        if model.pointer is None:
            p_gen = torch.ones_like(query[:, 0])
            extra = torch.full_like(attention, float("-inf"))
            log_probs = torch.cat([torch.log_softmax(vocab_logits, dim=-1), extra], dim=-1)
        else:
            p_gen = model.pointer(context, query, inputs)  # (R,)
            log_probs = copy_log_probs(vocab_logits, attention=attention, p_gen=p_gen, src_ext_ids=src_ext_ids,
                                       beams=beams)  # fmt: skip
        return (log_probs, torch.stack(new_h), torch.stack(new_c), attentional, coverage + attention, attention,
                p_gen)  # fmt: skip


def attention_scores(attention: nn.Module, *, query: torch.Tensor, keys: torch.Tensor, coverage: torch.Tensor):
    """`Attention.score` as one broadcast product for every beam.

    Args:
        query: `(E, K, H)`; keys: `(E, S, A)`; coverage: `(E, K, S)` (read only if the module has coverage).
    Returns:
        `(E, K, S)` unnormalised scores.
    """
    if isinstance(attention, AdditiveAttention):  # v^T tanh(W_h h_i + W_s s_t + w_c c_i + b)
        features = keys.unsqueeze(1) + attention.query_proj(query).unsqueeze(2)  # (E, K, S, A)
        if attention.coverage:
            features = features + attention.coverage_proj(coverage.unsqueeze(-1))  # See et al. eq. 11
        return attention.v(torch.tanh(features)).squeeze(-1)
    if isinstance(attention, GeneralAttention):  # s_t^T W_a h_i (+ w_c c_i)
        scores = torch.matmul(query, keys.transpose(1, 2))  # (E, K, S)
        return scores + attention.coverage_weight * coverage if attention.coverage else scores
    raise NlpLstmError(f"attention {type(attention).__name__} has no ONNX export; use additive or general")


def copy_log_probs(vocab_logits, *, attention, p_gen, src_ext_ids, beams):
    """`nlp_lstm.nn.copy.extended_log_probs` with S extended slots, out of place (See et al. eq. 9).

    Args:
        vocab_logits: `(R, V)`; attention: `(R, S)`; p_gen: `(R,)`; src_ext_ids: `(E, S)`; beams: K = R / E.
    Returns:
        `(R, V + S)` log-probabilities; an extended slot no source token of the row's example maps to is -inf.
    """
    rows, vocab_size = vocab_logits.shape
    examples, src_len = src_ext_ids.shape
    generated = torch.softmax(vocab_logits, dim=-1) * p_gen.unsqueeze(-1)  # (R, V)
    probs = torch.cat([generated, torch.zeros_like(attention)], dim=-1)  # (R, V + S)
    index = src_ext_ids.unsqueeze(1).expand(examples, beams, src_len).reshape(rows, src_len)  # (R, S)
    probs = probs.scatter_add(1, index, attention * (1.0 - p_gen).unsqueeze(-1))
    log_probs = torch.log(probs + EPSILON)
    slots = torch.arange(src_len, device=src_ext_ids.device) + vocab_size  # (S,) the extended ids
    reachable = (src_ext_ids.unsqueeze(-1) == slots).to(torch.int64).amax(dim=1) > 0  # (E, S)
    unreachable = ~reachable.unsqueeze(1).expand(examples, beams, src_len).reshape(rows, src_len)
    extended = log_probs[:, vocab_size:].masked_fill(unreachable, float("-inf"))
    return torch.cat([log_probs[:, :vocab_size], extended], dim=-1)

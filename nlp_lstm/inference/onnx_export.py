"""ONNX graphs of a saved model, for ONNX Runtime (DESIGN.md section 1, "deploy").

A classifier becomes one graph, `classifier.onnx`:
    input_ids (B, T) int64 | features (B, T, D) float32,  lengths (B,) int64
      -> embed -> BiLSTM over each row's real length -> pooling (padding ignored) -> head
      -> logits (B, 1) binary | (B, num_labels)
Probabilities are left to the caller (`TextClassifier.scores`: sigmoid or softmax), so the ONNX
path and the PyTorch path share one formula.

A summarizer becomes two graphs that our own beam search drives (`nlp_lstm.decoding`):
    encoder.onnx       src_ids (E, S), src_lengths (E,)
                       -> encoder_outputs (E, S, 2H), attention_keys (E, S, A),
                          decoder_h, decoder_c (decoder_layers, E, H)   the bridge's start state
    decoder_step.onnx  one step of `Summarizer.step` (attention, copy and coverage included) for
                       R = E * K hypothesis rows, example-major, reading one encoder row per example
                       -> log_probs (R, V + S), the new state, attention (R, S), p_gen (R,)
The step's output always has S extended slots (a source holds at most S out-of-vocabulary words);
slot V + j for j >= the example's OOV count is -inf, so the caller keeps the first V + max_oovs.

Variable lengths: the encoder runs as `torch.nn.LSTM` over a packed sequence, which the exporter
writes as ONNX's LSTM op with `sequence_lens` (both directions in one fused op). ONNX Runtime then
starts the backward direction at each row's own last real token, returns zeros past each length and
the final (h, c) at each row's own end: exactly what our encoder computes. `enforce_sorted=True`
only matters while tracing (the sort itself would not export); the graph takes lengths in any order.
Diagonal peepholes are the LSTM op's optional input P (`add_peepholes`); full peephole matrices have
no ONNX counterpart and are refused.

The exporter is torch's TorchScript-based one (`dynamo=False`): it handles packed sequences, which
the torch.export-based one does not, and it writes a graph in about 1 s against 6-20 s measured here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, staged_directory
from nlp_lstm.data.specials import UNK_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import EncoderOutput, Summarizer
from nlp_lstm.nn.attention import AdditiveAttention, GeneralAttention, masked_softmax
from nlp_lstm.nn.copy import EPSILON
from nlp_lstm.nn.lstm import LSTM

__all__ = ["ONNX_DIR", "ONNX_FORMAT_VERSION", "OPSET", "ClassifierGraph", "DecoderStepGraph", "EncoderGraph",
           "export_classifier", "export_onnx", "export_summarizer", "weights_digest"]

OPSET = 17  # ScatterElements with reduction="add" (the copy distribution) needs 16 or later
ONNX_DIR = "onnx"
ONNX_FORMAT_VERSION = 1
EXPORT_COMMAND = "nlp-lstm export --model {model} --format onnx"


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of `model.safetensors`: ties an export to the weights it was made from."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The encoder: our fused LSTM as torch.nn.LSTM over packed sequences
# ---------------------------------------------------------------------------------------------


def torch_lstm(encoder: LSTM) -> nn.LSTM:
    """A `torch.nn.LSTM` (batch first) with our encoder's weights; our parameter names match its own.

    Diagonal peepholes are not part of `nn.LSTM`: `add_peepholes` writes them into the exported graph.
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


def add_peepholes(path: Path, encoder: LSTM) -> None:
    """Give each exported LSTM op of `encoder` its diagonal peephole weights (input P), in place.

    ONNX's LSTM op has the peepholes of DESIGN.md section 2 (P_i, P_f on c_{t-1}, P_o on c_t), as
    input 7 of shape `(num_directions, 3H)` in gate order i, o, f. Each layer is one op, and they
    appear in layer order: layer k reads layer k-1's output.
    """
    import onnx
    from onnx import numpy_helper

    if encoder.peephole != "diagonal":
        return
    model = onnx.load(str(path))
    nodes = [node for node in model.graph.node if node.op_type == "LSTM"]
    if len(nodes) != encoder.num_layers:
        raise RuntimeError(f"{path} has {len(nodes)} LSTM ops for {encoder.num_layers} layers")
    for layer, node in enumerate(nodes):
        weights = [torch.cat([getattr(encoder, f"peephole_{gate}{suffix}") for gate in "iof"])
                   for suffix in [f"_l{layer}", f"_l{layer}_reverse"][: encoder.num_directions]]  # fmt: skip
        name = f"peephole_l{layer}"
        model.graph.initializer.append(numpy_helper.from_array(torch.stack(weights).detach().numpy(), name))
        node.input.extend([""] * (7 - len(node.input)) + [name])  # inputs 0-6 are X, W, R, B, lengths, h0, c0
    onnx.save(model, str(path))


def encode_packed(lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor):
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
        self.directions = model.encoder.num_directions

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """inputs `(B, T)` ids or `(B, T, D)` features, lengths `(B,)` -> logits `(B, 1 | L)`."""
        embedded = self.embedding(inputs) if self.embedding is not None else inputs  # (B, T, E)
        outputs, _ = encode_packed(self.encoder, embedded, lengths)  # (B, T, dirs*H)
        pooled = self.pooling(outputs, pad_mask_from(lengths, inputs.shape[1]), self._final_hidden(outputs, lengths))
        return self.head(pooled)

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
        outputs, (final_h, final_c) = encode_packed(self.encoder, embedded, src_lengths)
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

        scores = attention_scores(model.attention, query.view(examples, beams, -1), attention_keys,
                                  coverage.view(examples, beams, src_len))  # (E, K, S)
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


def attention_scores(attention: nn.Module, query: torch.Tensor, keys: torch.Tensor, coverage: torch.Tensor):
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


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's notices (its deprecation, LSTM batch-size advice, C++ shape-inference
    lines on stderr): they concern cases the graphs here do not have, and the CLI shows one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)


def _trace(module: nn.Module, args: tuple, path: Path, *, inputs: dict[str, dict[int, str]],
           outputs: dict[str, dict[int, str]]) -> None:
    """Trace `module` on `args` into `path`; `inputs`/`outputs` name each tensor and its dynamic axes."""
    # torch < 2.5 has only the TorchScript exporter, and no `dynamo` argument.
    choice = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with torch.no_grad(), _quiet_exporter():
        torch.onnx.export(
            module.eval(), args, str(path), opset_version=OPSET, input_names=list(inputs),
            output_names=list(outputs), dynamic_axes={**inputs, **outputs}, do_constant_folding=True, **choice,
        )


def _example_lengths(batch: int, time: int) -> torch.Tensor:
    """Sorted, ragged lengths for tracing (packing with enforce_sorted needs them longest first)."""
    return torch.linspace(time, 1, batch).round().to(torch.int64)


def export_classifier(model: TextClassifier, path: str | Path) -> dict[str, Any]:
    """Write `model` as one ONNX graph to `path`; returns its description for `onnx.json`."""
    model = model.eval()
    batch, time = 3, 5
    if model.embedding is not None:
        name, example = "input_ids", torch.full((batch, time), 4, dtype=torch.int64)
    else:
        name, example = "features", torch.zeros(batch, time, model.config.input_size)
    _trace(ClassifierGraph(model), (example, _example_lengths(batch, time)), Path(path),
           inputs={name: {0: "batch", 1: "time"}, "lengths": {0: "batch"}}, outputs={"logits": {0: "batch"}})
    add_peepholes(Path(path), model.encoder)
    return describe_graph(path)


def export_summarizer(model: Summarizer, directory: str | Path) -> dict[str, Any]:
    """Write `encoder.onnx` and `decoder_step.onnx` into `directory`; returns their descriptions."""
    model = model.eval()
    directory = Path(directory)
    examples, beams, src_len = 2, 3, 5
    src_ids = torch.full((examples, src_len), 4, dtype=torch.int64)
    src_lengths = _example_lengths(examples, src_len)
    with torch.no_grad():
        outputs, keys, h, c = EncoderGraph(model)(src_ids, src_lengths)
    by_example, by_row = {0: "examples", 1: "src_len"}, {0: "rows", 1: "src_len"}
    _trace(EncoderGraph(model), (src_ids, src_lengths), directory / "encoder.onnx",
           inputs={"src_ids": by_example, "src_lengths": {0: "examples"}},
           outputs={"encoder_outputs": by_example, "attention_keys": by_example, "decoder_h": {1: "examples"},
                    "decoder_c": {1: "examples"}})  # fmt: skip
    add_peepholes(directory / "encoder.onnx", model.encoder)
    rows = examples * beams
    state = h.repeat_interleave(beams, dim=1)  # (L, R, H)
    step_args = (torch.full((rows,), 4, dtype=torch.int64), state, state.clone(), state[0].clone(),
                 torch.zeros(rows, src_len), outputs, keys, pad_mask_from(src_lengths, src_len),
                 torch.full((examples, src_len), 4, dtype=torch.int64))  # fmt: skip
    # Graph inputs a model does not read (src_ext_ids without copy) are left out of its graph.
    _trace(DecoderStepGraph(model), step_args, directory / "decoder_step.onnx",
           inputs={"prev_ids": {0: "rows"}, "h": {1: "rows"}, "c": {1: "rows"}, "input_feed": {0: "rows"},
                   "coverage": by_row, "encoder_outputs": by_example, "attention_keys": by_example,
                   "src_pad_mask": by_example, "src_ext_ids": by_example},
           outputs={"log_probs": {0: "rows", 1: "vocab_size_plus_src_len"}, "h_out": {1: "rows"},
                    "c_out": {1: "rows"}, "input_feed_out": {0: "rows"}, "coverage_out": by_row,
                    "attention": by_row, "p_gen": {0: "rows"}})  # fmt: skip
    return {"encoder": describe_graph(directory / "encoder.onnx"),
            "decoder_step": describe_graph(directory / "decoder_step.onnx")}


def describe_graph(path: str | Path) -> dict[str, Any]:
    """File name, and name, dtype and shape (ints, or axis names) of every input and output, read back
    from the written graph itself."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def tensors(values) -> list[dict[str, Any]]:
        described = []
        for value in values:
            tensor_type = value.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
            shape = [dim.dim_param or dim.dim_value for dim in tensor_type.shape.dim]
            described.append({"name": value.name, "dtype": dtype, "shape": shape})
        return described

    return {"file": Path(path).name, "inputs": tensors(graph.input), "outputs": tensors(graph.output)}


def export_onnx(model_dir: str | Path, output_dir: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Export a saved model directory's model to ONNX graphs plus `onnx.json` (default: `DIR/onnx`).

    Returns:
        the output directory.
    Raises:
        NlpLstmError: the output directory exists (without `overwrite`), or the model uses peephole
            connections (no ONNX equivalent of our own cell).
    """
    import nlp_lstm

    model_dir = Path(model_dir)
    output = Path(output_dir) if output_dir is not None else model_dir / ONNX_DIR
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise NlpLstmError(f"{output} already exists; pass --overwrite to replace it or choose another --output")
    check_output_dir(output, overwrite=True)  # a file, or the current or home directory, is never replaced
    loaded = nlp_lstm.load(model_dir, device="cpu")
    with staged_directory(output) as staging:
        if loaded.kind == "classifier":
            graphs = {"classifier": export_classifier(loaded.model, staging / "classifier.onnx")}
            task = loaded.model.config.task
            extra = {"task": task, "labels": loaded.labels, "threshold": loaded.threshold,
                     "probabilities": {"binary": "sigmoid(logits[:, 0]) is P(labels[1])",
                                       "multiclass": "softmax(logits)",
                                       "multilabel": "sigmoid(logits) per label"}[task]}  # fmt: skip
        else:
            graphs = export_summarizer(loaded.model, staging)
            extra = {"vocab_size": loaded.model.config.vocab_size, "copy": loaded.model.config.copy,
                     "coverage": loaded.model.config.coverage, "max_source_length": loaded.max_source_length}
        atomic_write_json(staging / "onnx.json", {
            "format_version": ONNX_FORMAT_VERSION, "kind": loaded.kind, "opset": OPSET, "torch": torch.__version__,
            "weights_sha256": weights_digest(model_dir), "model_config": dataclasses.asdict(loaded.model.config), **extra, "graphs": graphs,
        })  # fmt: skip
    return output

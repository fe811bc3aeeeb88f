"""ONNX graphs of a saved model, for ONNX Runtime (DESIGN.md section 1, "deploy").

A classifier becomes one graph, `classifier.onnx`:
    input_ids (B, T) int64 | features (B, T, D) float32,  lengths (B,) int64
    [ngram_ids (B, K) int64, ngram_weights (B, K) float32: a model with a word n-gram linear part]
      -> embed -> BiLSTM over each row's real length -> pooling (padding ignored) -> head
         (+ the linear part's logits over the word n-gram features, computed outside the graph
         from the text by `data/word_ngrams.py`, as for PyTorch)
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

How variable lengths and peepholes become ONNX: `onnx_graphs.py`, the modules traced here. Diagonal
peepholes are the LSTM op's optional input P (`add_peepholes`); full peephole matrices have no ONNX
counterpart and are refused.

The exporter is torch's TorchScript-based one (`dynamo=False`): it handles packed sequences, which
the torch.export-based one does not, and it writes a graph in about 1 s against 6-20 s measured here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlp_lstm.artifacts import atomic_write_json, check_output_dir, staged_directory
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.load import load
from nlp_lstm.inference.onnx_graphs import ClassifierGraph, DecoderStepGraph, EncoderGraph, pad_mask_from
from nlp_lstm.inference.tagger_batch import TaggerGraph
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import Summarizer
from nlp_lstm.nn.lstm import LSTM

__all__ = ["EXPORT_COMMAND", "ONNX_DIR", "ONNX_FORMAT_VERSION", "OPSET", "add_peepholes", "describe_graph",
           "export_classifier", "export_onnx", "export_summarizer", "weights_digest"]

OPSET = 17  # ScatterElements with reduction="add" (the copy distribution) needs 16 or later
ONNX_DIR = "onnx"
ONNX_FORMAT_VERSION = 1
EXPORT_COMMAND = "nlp-lstm export --model {model} --format onnx"


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of `model.safetensors`: ties an export to the weights it was made from."""
    return file_digest(Path(model_dir) / "model.safetensors")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


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


def _trace(module: nn.Module, args: tuple, *, path: Path, inputs: dict[str, dict[int, str]],
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
    args, inputs = (example, _example_lengths(batch, time)), {name: {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    if model.ngrams is not None:
        args += (torch.zeros(batch, 2, dtype=torch.int64), torch.full((batch, 2), 0.5))
        inputs.update(ngram_ids={0: "batch", 1: "features"}, ngram_weights={0: "batch", 1: "features"})
    _trace(ClassifierGraph(model), args, path=Path(path), inputs=inputs, outputs={"logits": {0: "batch"}})
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
    _trace(EncoderGraph(model), (src_ids, src_lengths), path=directory / "encoder.onnx",
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
    _trace(DecoderStepGraph(model), step_args, path=directory / "decoder_step.onnx",
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


def _classifier_graphs(loaded, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `ClassifierPredictor`'s graph and what `onnx.json` says of its outputs."""
    graphs = {"classifier": export_classifier(loaded.model, staging / "classifier.onnx")}
    task = loaded.model.config.task
    extra = {"task": task, "labels": loaded.labels, "threshold": loaded.threshold,
             "probabilities": {"binary": "sigmoid(logits[:, 0]) is P(labels[1])",
                               "multiclass": "softmax(logits)",
                               "multilabel": "sigmoid(logits) per label"}[task]}  # fmt: skip
    return graphs, extra


def _summarizer_graphs(loaded, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `SummarizerPredictor`'s encoder and decoder-step graphs and its sizes."""
    extra = {"vocab_size": loaded.model.config.vocab_size, "copy": loaded.model.config.copy,
             "coverage": loaded.model.config.coverage, "max_source_length": loaded.max_source_length}
    return export_summarizer(loaded.model, staging), extra


def _tagger_graphs(loaded, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `TaggerPredictor`'s emission graph (`tagger_batch.TaggerGraph`):

        word_ids (B, T), type_chars (U, L), token_types (B, T) (U at padding), lengths (B,)
        [features (B, T): a model with a per-token feature]  ->  emissions (B, T, K)

    and, in `onnx.json`, what decoding outside needs: the tag names and the CRF's constrained scores
    (Viterbi and marginals over them: `decoding/crf_numpy.py`, docs/deploy-onnx.md)."""
    model = loaded.model.eval()
    batch, time, types, chars = 3, 5, 4, 6
    token_types = torch.arange(batch * time).remainder(types).view(batch, time)
    args = (torch.full((batch, time), 2, dtype=torch.int64), torch.full((types, chars), 2, dtype=torch.int64),
            token_types, _example_lengths(batch, time))
    inputs = {"word_ids": {0: "batch", 1: "time"}, "type_chars": {0: "types", 1: "chars"},
              "token_types": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    if model.feature_embedding is not None:
        args += (torch.zeros(batch, time, dtype=torch.int64),)
        inputs["features"] = {0: "batch", 1: "time"}
    path = staging / "tagger.onnx"
    _trace(TaggerGraph(model), args, path=path, inputs=inputs, outputs={"emissions": {0: "batch", 1: "time"}})
    add_peepholes(path, model.encoder)
    extra = {"tags": loaded.labels, "scheme": loaded.scheme, "decoder": model.config.decoder,
             "language": model.config.language, "decoding": "crf: Viterbi over crf_scores; softmax: argmax"}
    if loaded.crf_scores is not None:
        extra["crf_scores"] = {name: value.tolist() for name, value in loaded.crf_scores._asdict().items()}
    return {"tagger": describe_graph(path)}, extra


# The kinds that export, by kind: (predictor, staging directory) -> (graphs, extra onnx.json keys).
# The runtime side, `onnx_runtime.ONNX_MODELS`, runs what each writes.
EXPORTERS = {"classifier": _classifier_graphs, "summarizer": _summarizer_graphs, "tagger": _tagger_graphs}


def export_onnx(model_dir: str | Path, output_dir: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Export a saved model directory's model to ONNX graphs plus `onnx.json` (default: `DIR/onnx`).

    Returns:
        the output directory.
    Raises:
        NlpLstmError: the output directory exists (without `overwrite`), the model's kind has no
            export (a language model), or the model uses full peephole matrices (no ONNX equivalent).
    """
    if importlib.util.find_spec("onnx") is None:
        raise NlpLstmError("the onnx package is not installed; `pip install 'nlp-lstm[onnx]'` to export models")
    model_dir = Path(model_dir)
    output = Path(output_dir) if output_dir is not None else model_dir / ONNX_DIR
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise NlpLstmError(f"{output} already exists; pass --overwrite to replace it or choose another --output")
    check_output_dir(output, overwrite=True)  # a file, or the current or home directory, is never replaced
    loaded = load(model_dir, device="cpu")
    if loaded.kind not in EXPORTERS:
        raise NlpLstmError(f"{model_dir} holds a {loaded.kind} model, which has no ONNX export (exported kinds: "
                           f"{', '.join(EXPORTERS)}); run it with the PyTorch runtime")
    with staged_directory(output) as staging:
        graphs, extra = EXPORTERS[loaded.kind](loaded, staging)
        atomic_write_json(staging / "onnx.json", {
            "format_version": ONNX_FORMAT_VERSION, "kind": loaded.kind, "opset": OPSET, "torch": torch.__version__,
            "weights_sha256": weights_digest(model_dir), "model_config": dataclasses.asdict(loaded.model.config), **extra,
            # Each graph's own checksum: `load_onnx` runs only the bytes written here.
            "graphs": {name: {**graph, "sha256": file_digest(staging / graph["file"])} for name, graph in graphs.items()},
        })  # fmt: skip
    return output

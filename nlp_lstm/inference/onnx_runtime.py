"""ONNX Runtime behind the predictors `nlp_lstm.load` returns (the graphs: `onnx_export.py`).

`load_onnx(DIR)` loads the PyTorch predictor as usual and swaps its `.model` for an object that runs
the exported graphs: `OnnxTextClassifier` (called like `TextClassifier`, same `scores`) or
`OnnxSummarizer` (`encode` / `init_state` / `step` like `Summarizer`, so our own greedy and beam
search drive it). Everything around the model is the PyTorch predictor's own code: tokenization,
batching, label names, thresholds, ids -> text. There is no second text -> ids path to drift.

ONNX Runtime is an optional dependency (`pip install 'nlp-lstm[onnx]'`), imported only here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp_lstm.artifacts import read_json
from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.load import load
from nlp_lstm.inference.onnx_export import EXPORT_COMMAND, ONNX_DIR, ONNX_FORMAT_VERSION, weights_digest
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import DecoderState, SummarizerConfig

__all__ = ["OnnxEncoderOutput", "OnnxGraph", "OnnxSummarizer", "OnnxTagger", "OnnxTextClassifier", "load_onnx"]


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise NlpLstmError(
            "ONNX Runtime is not installed; `pip install 'nlp-lstm[onnx]'` (or `pip install onnxruntime`) "
            "to run models with --runtime onnx"
        ) from None
    return onnxruntime


class OnnxGraph:
    """One ONNX Runtime session, fed and read by name.

    Inputs a graph does not declare are dropped (the exporter leaves out inputs a model never reads,
    such as `src_ext_ids` without copying), so callers can always pass the full set.
    """

    def __init__(self, path: Path, *, threads: int, sha256: str | None = None) -> None:
        """`sha256`: the digest `onnx.json` records; the bytes checked are the bytes run (read once)."""
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings would interleave with the CLI's output
        content = path.read_bytes()
        if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
            raise NlpLstmError(f"{path} does not match its sha256 in onnx.json (changed or corrupt since the export); "
                               "re-run the export with --overwrite")  # fmt: skip
        try:
            self.session = onnxruntime.InferenceSession(content, sess_options=options,
                                                        providers=["CPUExecutionProvider"])  # fmt: skip
        except Exception as error:  # noqa: BLE001 - onnxruntime's own exception classes are not public API
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise NlpLstmError(f"ONNX Runtime cannot load {path} ({first}); re-run the export with --overwrite") from None
        self.input_names = {value.name for value in self.session.get_inputs()}
        self.output_names = [value.name for value in self.session.get_outputs()]

    def run(self, **inputs: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        feed = {name: _array(value) for name, value in inputs.items() if name in self.input_names}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))


def _array(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


class _Inference:
    """The bits of `nn.Module` the predictors and `decoding_mode` touch: always eval, always CPU."""

    training = False

    def eval(self):
        return self

    def train(self, mode: bool = True):
        if mode:
            raise NlpLstmError("an ONNX Runtime model cannot be trained; train the PyTorch model")
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise NlpLstmError(f"the ONNX runtime here runs on the CPU, not {device}; use --device cpu")
        return self


class OnnxTextClassifier(_Inference):
    """`TextClassifier` run by ONNX Runtime: `model(inputs, lengths, pad_mask) -> logits`."""

    # The PyTorch model's own functions, so both runtimes turn logits into probabilities one way.
    scores = TextClassifier.scores
    predict_labels = TextClassifier.predict_labels

    def __init__(self, graph: OnnxGraph, config: ClassifierConfig) -> None:
        self.graph = graph
        self.config = config
        self.input_name = "input_ids" if config.vocab_size is not None else "features"

    def __call__(self, inputs: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor | None = None,
                 ngram_ids: torch.Tensor | None = None, ngram_weights: torch.Tensor | None = None):
        """inputs `(B, T)` ids or `(B, T, D)` features, lengths `(B,)` (and the word n-gram features
        `(B, K)` of a model with a linear part) -> logits `(B, 1 | L)`.

        `pad_mask` is accepted for the `TextClassifier` signature; the graph derives it from lengths.
        """
        inputs = inputs.to(torch.int64 if self.input_name == "input_ids" else torch.float32)
        feed = {self.input_name: inputs, "lengths": lengths.to(torch.int64)}
        if self.config.has_linear_part:
            feed.update(ngram_ids=ngram_ids.to(torch.int64), ngram_weights=ngram_weights.to(torch.float32))
        return _tensor(self.graph.run(**feed)["logits"])


@dataclass
class OnnxEncoderOutput:
    """The encoder graph's outputs, one row per example; beam search reads `pad_mask` and reorders rows.

    Attributes:
        outputs: `(E, S, 2H)`; keys: `(E, S, A)`; pad_mask: `(E, S)` bool, True at padding;
        decoder_h, decoder_c: `(decoder_layers, E, H)` the bridge's decoder start state.
    """

    outputs: torch.Tensor
    keys: torch.Tensor
    pad_mask: torch.Tensor
    decoder_h: torch.Tensor
    decoder_c: torch.Tensor

    def index_select(self, rows: torch.Tensor) -> "OnnxEncoderOutput":
        return OnnxEncoderOutput(
            outputs=self.outputs.index_select(0, rows), keys=self.keys.index_select(0, rows),
            pad_mask=self.pad_mask.index_select(0, rows), decoder_h=self.decoder_h.index_select(1, rows),
            decoder_c=self.decoder_c.index_select(1, rows),
        )  # fmt: skip


class OnnxSummarizer(_Inference):
    """`Summarizer`'s decoding interface (`encode`, `init_state`, `step`, `config`) over two graphs."""

    def __init__(self, *, encoder: OnnxGraph, decoder_step: OnnxGraph, config: SummarizerConfig) -> None:
        self.encoder = encoder
        self.decoder_step = decoder_step
        self.config = config

    def encode(self, src_ids: torch.Tensor, src_lengths: torch.Tensor, src_pad_mask: torch.Tensor) -> OnnxEncoderOutput:
        """src_ids `(E, S)`, src_lengths `(E,)`, src_pad_mask `(E, S)` -> `OnnxEncoderOutput`."""
        out = self.encoder.run(src_ids=src_ids, src_lengths=src_lengths)
        return OnnxEncoderOutput(outputs=_tensor(out["encoder_outputs"]), keys=_tensor(out["attention_keys"]),
                                 pad_mask=src_pad_mask, decoder_h=_tensor(out["decoder_h"]),
                                 decoder_c=_tensor(out["decoder_c"]))  # fmt: skip

    def init_state(self, encoder_output: OnnxEncoderOutput) -> DecoderState:
        """The bridge ran inside the encoder graph; input feed and coverage start at zero."""
        examples, src_len = encoder_output.pad_mask.shape
        hidden = self.config.hidden_size
        return DecoderState(h=encoder_output.decoder_h, c=encoder_output.decoder_c,
                            input_feed=torch.zeros(examples, hidden), coverage=torch.zeros(examples, src_len))

    def step(self, prev_ids: torch.Tensor, state: DecoderState, encoder_output: OnnxEncoderOutput,
             src_ext_ids: torch.Tensor, max_oovs: int, *, beam_size: int = 1):
        """One decoder step, as `Summarizer.step`: rows are `examples x beam_size`, example-major.

        Returns:
            log_probs `(rows, vocab_size + max_oovs)`, the new `DecoderState`, attention `(rows, S)`,
            p_gen `(rows,)`.
        """
        rows, examples = prev_ids.shape[0], encoder_output.pad_mask.shape[0]
        if rows != examples * beam_size:
            raise ValueError(f"{rows} rows are not {examples} examples x beam_size={beam_size}")
        out = self.decoder_step.run(
            prev_ids=prev_ids, h=state.h, c=state.c, input_feed=state.input_feed, coverage=state.coverage,
            encoder_outputs=encoder_output.outputs, attention_keys=encoder_output.keys,
            src_pad_mask=encoder_output.pad_mask, src_ext_ids=src_ext_ids,
        )
        # The graph has one extended slot per source position; only the batch's max_oovs can be reached.
        log_probs = _tensor(out["log_probs"][:, : self.config.vocab_size + max_oovs])
        new_state = DecoderState(h=_tensor(out["h_out"]), c=_tensor(out["c_out"]),
                                 input_feed=_tensor(out["input_feed_out"]), coverage=_tensor(out["coverage_out"]))
        return log_probs, new_state, _tensor(out["attention"]), _tensor(out["p_gen"])


class OnnxTagger(_Inference):
    """A tagger's emission graph run by ONNX Runtime: `type_emissions(TypeBatch) -> (B, T, K)`, what
    `TaggerPredictor.emissions` calls; decoding stays the predictor's own numpy code."""

    def __init__(self, graph: OnnxGraph, config) -> None:
        self.graph = graph
        self.config = config

    def type_emissions(self, batch) -> np.ndarray:
        feed = {"word_ids": batch.word_ids, "type_chars": batch.type_chars, "token_types": batch.token_types,
                "lengths": batch.lengths}
        if batch.features is not None:
            feed["features"] = batch.features
        return self.graph.run(**feed)["emissions"]


def read_manifest(model_dir: Path, onnx_dir: Path) -> dict[str, Any]:
    """`onnx.json`, checked against the model directory it claims to come from."""
    command = EXPORT_COMMAND.format(model=model_dir)
    if not (onnx_dir / "onnx.json").is_file():
        raise NlpLstmError(f"{onnx_dir} holds no ONNX export (no onnx.json); run `{command}` first")
    manifest = read_json(onnx_dir / "onnx.json", what="ONNX export description")
    if manifest.get("format_version") != ONNX_FORMAT_VERSION:
        raise NlpLstmError(f"{onnx_dir / 'onnx.json'} has format_version {manifest.get('format_version')!r}, "
                           f"this nlp-lstm reads {ONNX_FORMAT_VERSION}; re-run `{command} --overwrite`")  # fmt: skip
    if manifest.get("weights_sha256") != weights_digest(model_dir):
        raise NlpLstmError(f"{onnx_dir} was exported from other weights than {model_dir / 'model.safetensors'}; "
                           f"re-run `{command} --overwrite`")  # fmt: skip
    check_graph_entries(manifest, onnx_dir / "onnx.json", command=command)
    for graph in manifest["graphs"].values():
        if not (onnx_dir / graph["file"]).is_file():
            raise NlpLstmError(f"{onnx_dir / graph['file']} is missing; re-run `{command} --overwrite`")
    return manifest


SHA256 = re.compile(r"[0-9a-f]{64}")


def check_graph_entries(manifest: dict[str, Any], where: Path, *, command: str) -> None:
    """Every graph is a bare file name inside the export folder with its own sha256: an `onnx.json`
    can never point at a graph elsewhere on disk (`../x.onnx`, `/tmp/x.onnx`)."""
    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise NlpLstmError(f"{where} 'graphs' must be a table of graphs; re-run `{command} --overwrite`")
    for name, graph in graphs.items():
        file = graph.get("file") if isinstance(graph, dict) else None
        if not isinstance(file, str) or file in ("", ".", "..") or "\x00" in file or Path(file).name != file \
                or "\\" in file:
            raise NlpLstmError(f"{where} graph {name!r}: 'file' must be a plain file name inside {where.parent}, "
                               f"got {file!r}; re-run `{command} --overwrite`")  # fmt: skip
        if not isinstance(graph.get("sha256"), str) or not SHA256.fullmatch(graph["sha256"]):
            raise NlpLstmError(f"{where} graph {name!r} has no sha256 (an export from an older nlp-lstm, or edited); "
                               f"re-run `{command} --overwrite`")  # fmt: skip


def load_onnx(model_dir: str | Path, *, onnx_dir: str | Path | None = None, threads: int | None = None):
    """The predictor `load(model_dir)` returns, with its model run by ONNX Runtime on the CPU.

    Args:
        model_dir: a model directory (its tokenizer, labels and settings are read from there).
        onnx_dir: where `export_onnx` wrote the graphs; default `model_dir/onnx`.
        threads: ONNX Runtime intra-op threads; default `torch.get_num_threads()` (what `--threads` set).
    Returns:
        a classifier (`.kind`, `.labels`, `.predict(texts, batch_size=64)`, ...) or a summarizer
        (`.summarize(texts, beam_size=4, ...)`, ...) whose `.model` is an `OnnxTextClassifier` or
        `OnnxSummarizer`.
    Raises:
        NlpLstmError: no export in `onnx_dir` (naming `nlp-lstm export`), an export of other weights,
            or onnxruntime not installed.
    """
    model_dir = Path(model_dir)
    onnx_dir = Path(onnx_dir) if onnx_dir is not None else model_dir / ONNX_DIR
    predictor = load(model_dir, device="cpu")
    manifest = read_manifest(model_dir, onnx_dir)
    if manifest["kind"] != predictor.kind:
        raise NlpLstmError(f"{onnx_dir} holds a {manifest['kind']} export but {model_dir} a {predictor.kind}; "
                           f"re-run `{EXPORT_COMMAND.format(model=model_dir)} --overwrite`")  # fmt: skip
    threads = threads or torch.get_num_threads()
    graphs = {name: OnnxGraph(onnx_dir / graph["file"], threads=threads, sha256=graph["sha256"])
              for name, graph in manifest["graphs"].items()}
    predictor.model = ONNX_MODELS[predictor.kind](graphs, predictor.model.config)
    return predictor


# What runs each exported kind's graphs in place of its PyTorch module (`onnx_export.EXPORTERS` writes them).
ONNX_MODELS = {
    "classifier": lambda graphs, config: OnnxTextClassifier(graphs["classifier"], config),
    "summarizer": lambda graphs, config: OnnxSummarizer(encoder=graphs["encoder"], decoder_step=graphs["decoder_step"],
                                                        config=config),
    "tagger": lambda graphs, config: OnnxTagger(graphs["tagger"], config),
}

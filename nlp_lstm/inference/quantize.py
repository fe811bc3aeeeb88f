"""Opt-in dynamic int8 quantization of a loaded classifier, for faster CPU inference.

`torch.ao.quantization.quantize_dynamic` swaps `nn.Linear` and `nn.LSTM` modules for int8 versions
(weights int8, activations quantized on the fly per batch). Our encoder (`nlp_lstm.nn.lstm.LSTM`)
calls `torch._VF.lstm` with its own parameters, so quantize_dynamic would not see it: here the fused
encoder is first converted to a `torch.nn.LSTM` with the same weights (the parameter names match),
run over packed sequences so variable lengths stay exact, and that copy is quantized.

Inference only: the quantized model has no gradients. Peephole encoders have no quantized kernel and
are refused. Measured speed and accuracy change: BENCHMARKS.md ("Classify throughput").
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.lstm import LSTM
from nlp_lstm.inference.classifier import ClassifierPredictor

__all__ = ["PackedTorchLSTM", "quantize_classifier"]


class PackedTorchLSTM(nn.Module):
    """Our `LSTM`'s interface around a `torch.nn.LSTM` (the module quantize_dynamic knows).

    Same inputs and outputs as `nlp_lstm.nn.lstm.LSTM.forward` (batch first): outputs zero past each
    row's length, (h_n, c_n) at each row's own last real step. Packing gives that exactness; it is
    slower than our time segments in float (NOTES.md), but the quantized kernel is a different one.
    The alternative, each direction run padded to the batch's longest row (the backward one over rows
    reversed within their lengths), was exact but measured no faster in int8 on length-sorted
    `predict` batches, which pad only ~4%; the reversals cost what packing does (BENCHMARKS.md
    section 8).
    """

    def __init__(self, encoder: LSTM) -> None:
        super().__init__()
        if encoder.peephole != "none":
            raise NlpLstmError(
                f"cannot quantize an encoder with peephole={encoder.peephole!r}: only the fused "
                "(peephole='none') LSTM has an int8 kernel; use the float model"
            )
        self.lstm = nn.LSTM(
            encoder.input_size,
            encoder.hidden_size,
            num_layers=encoder.num_layers,
            bidirectional=encoder.bidirectional,
            batch_first=True,
        )
        # Our parameters are named and shaped like nn.LSTM's (weight_ih_l0, ..._reverse).
        self.lstm.load_state_dict({name: value for name, value in encoder.state_dict().items()})
        self.output_size = encoder.output_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None, state=None, *,
                need_cell_state: bool = True):
        """Args:
            inputs: `(batch, time, input_size)`; lengths: `(batch,)` or None (all `time`).
            need_cell_state: accepted for interface parity with `nlp_lstm.nn.lstm.LSTM`; packing
                yields the exact final states either way.
        Returns:
            outputs `(batch, time, dirs*H)`; (h_n, c_n) each `(layers*dirs, batch, H)`.
        """
        if state is not None:
            raise NlpLstmError("the quantized encoder starts from a zero state; do not pass `state`")
        time = inputs.shape[1]
        if lengths is None:
            return self.lstm(inputs)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (h_n, c_n) = self.lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=time)  # (B, T, dirs*H)
        return outputs, (h_n, c_n)


def quantize_classifier(classifier: ClassifierPredictor) -> ClassifierPredictor:
    """A new `ClassifierPredictor` whose encoder and head run in dynamic int8; the original is untouched.

    Raises:
        NlpLstmError: the encoder uses peephole connections (no int8 kernel for our own cell).
    """
    model = copy.deepcopy(classifier.model).cpu().eval()
    model.encoder = PackedTorchLSTM(model.encoder)
    with warnings.catch_warnings():
        # torch 2.x marks torch.ao.quantization deprecated (moving to torchao); it still works, and
        # torchao is not a dependency. Silence the notices rather than print them on every load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    return ClassifierPredictor(
        quantized,
        classifier.tokenizer,
        labels=classifier.labels,
        temperature=classifier.temperature,
        threshold=classifier.threshold,
        thresholds=classifier.thresholds,
        device=torch.device("cpu"),  # the int8 kernels are CPU only
        ngrams=classifier.ngrams,
    )

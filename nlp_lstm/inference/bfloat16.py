"""A summarizer whose 8,000-way output layer decodes in bfloat16 (`summarize --bf16-output`).

At one text at a time the decoder step is dominated by the generator `Linear(hidden, vocab)`: a few
beam rows against a weight of `vocab x hidden` floats (4 MB at 8k x 128), streamed from memory every
step. Holding that weight in bfloat16 halves the bytes, and on CPUs with bfloat16 dot products
(AVX512-BF16, AMX) the product itself runs natively. The input is rounded to bfloat16 and the
logits come back in float32, so softmax, copy and beam search are unchanged. Everything else stays
float32, so the encoder, attention and copy distribution are exactly as before.

It changes the logits by bfloat16's rounding (8 bits of mantissa), so summaries can differ from the
float32 model's. BENCHMARKS.md measures both effects at the peer's sizes: the speed, and ROUGE over
the test split. On a CPU without native bfloat16 the product is emulated and may be slower: measure
it there before relying on it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from nlp_lstm.inference.summarizer import SummarizerPredictor


class BFloat16Linear(nn.Module):
    """`Linear` for inference with its weight and bias stored in bfloat16; float32 in, float32 out."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.linear(inputs.to(torch.bfloat16), self.weight, self.bias).to(inputs.dtype)


def bfloat16_output(summarizer: SummarizerPredictor) -> SummarizerPredictor:
    """A new `SummarizerPredictor` whose generator runs in bfloat16; the original is untouched."""
    model = copy.deepcopy(summarizer.model).eval()
    model.generator = BFloat16Linear(model.generator)
    return SummarizerPredictor(model, summarizer.tokenizer, decoding=summarizer.decoding, device=summarizer.device)

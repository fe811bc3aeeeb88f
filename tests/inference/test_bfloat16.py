"""Opt-in bfloat16 output layer for decoding (nlp_lstm/inference/bfloat16.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import nlp_lstm
from nlp_lstm.data.collate import collate_summarization
from nlp_lstm.data.specials import BOS_ID
from nlp_lstm.inference.bfloat16 import BFloat16Linear, bfloat16_output

SUMMARIZER = Path(__file__).resolve().parents[1] / "fixtures" / "format1" / "summarizer"
TEXTS = ["the film by carl was long and slow", "a story by kim about a city"]


def _bf16(values: torch.Tensor) -> torch.Tensor:
    """Round float32 values to the nearest bfloat16 and widen them to float64 (exact)."""
    return values.to(torch.bfloat16).to(torch.float64)


def test_bfloat16_linear_is_the_product_of_the_rounded_operands():
    torch.manual_seed(0)
    linear = nn.Linear(64, 300)
    inputs = torch.randn(5, 64)
    out = BFloat16Linear(linear)(inputs)
    assert out.dtype == torch.float32 and out.shape == (5, 300)
    # Reference: inputs, weight and bias rounded to bfloat16, the product in float64; the layer's
    # bfloat16 output adds at most one rounding of 2^-8 relative (plus accumulation order).
    reference = _bf16(inputs) @ _bf16(linear.weight.detach()).T + _bf16(linear.bias.detach())
    error = (out.double() - reference).abs()
    assert (error <= reference.abs() * 2**-7 + 1e-2).all()
    # It really rounds: float32 results differ, but only by bfloat16's precision.
    exact = linear(inputs).detach()
    assert not torch.equal(out, exact)
    assert torch.allclose(out, exact, rtol=0.03, atol=0.05)


def test_bfloat16_linear_keeps_half_the_bytes_and_nothing_to_train():
    layer = BFloat16Linear(nn.Linear(128, 8000))
    assert layer.weight.dtype == torch.bfloat16 and layer.bias.dtype == torch.bfloat16
    assert layer.weight.element_size() * layer.weight.numel() == 128 * 8000 * 2
    assert list(layer.parameters()) == []


def test_bfloat16_output_changes_only_the_generator_and_leaves_the_original_alone():
    float_model = nlp_lstm.load(SUMMARIZER, device="cpu")
    before = {name: value.clone() for name, value in float_model.model.state_dict().items()}
    fast = bfloat16_output(float_model)
    assert isinstance(float_model.model.generator, nn.Linear)
    assert all(torch.equal(before[name], value) for name, value in float_model.model.state_dict().items())
    assert isinstance(fast.model.generator, BFloat16Linear) and fast.decoding == float_model.decoding

    batch = collate_summarization(float_model.encode_texts(TEXTS, warn=False))
    with torch.no_grad():
        outputs = []
        for predictor in (float_model, fast):
            encoded = predictor.model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
            state = predictor.model.init_state(encoded)
            prev = torch.full((len(TEXTS),), BOS_ID, dtype=torch.long)
            log_probs, *_ = predictor.model.step(prev, state, encoded, batch["src_ext_ids"], int(batch["max_oovs"]))
            outputs.append((encoded.outputs, log_probs))
    (float_encoded, float_log_probs), (fast_encoded, fast_log_probs) = outputs
    assert torch.equal(float_encoded, fast_encoded)  # the encoder stays float32, bit for bit
    probabilities = float_log_probs.exp(), fast_log_probs.exp()
    assert not torch.equal(*probabilities)
    assert (probabilities[0] - probabilities[1]).abs().max() < 0.01
    assert torch.allclose(probabilities[1].sum(dim=-1), torch.ones(len(TEXTS)), atol=1e-4)

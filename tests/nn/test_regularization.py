"""AWD-LSTM regularisers: embedding dropout, locked dropout, weight drop (nlp_lstm/nn/regularization.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.lstm import LSTM
from nlp_lstm.nn.regularization import (
    LockedDropout,
    call_with_weight_drop,
    embedding_dropout,
    hidden_to_hidden_names,
)


# -- locked dropout ----------------------------------------------------------------------------


def test_locked_dropout_shares_one_mask_over_time():
    dropout = LockedDropout(0.5).train()
    inputs = torch.randn(6, 9, 10)
    outputs = dropout(inputs)
    ratio = outputs / inputs  # (B, T, D): the mask, entry by entry
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))  # the same at every time step
    values = set(ratio.flatten().round(decimals=4).tolist())
    assert values <= {0.0, 2.0} and values == {0.0, 2.0}  # dropped or scaled by 1 / (1 - p)
    # ... but not the same for every sequence (standard dropout over (B, D), not one mask for all)
    assert not torch.equal(ratio[0, 0], ratio[1, 0])


def test_locked_dropout_preserves_the_expectation():
    dropout = LockedDropout(0.3).train()
    outputs = dropout(torch.ones(4000, 3, 50))
    assert outputs.mean().item() == pytest.approx(1.0, abs=0.02)
    assert (outputs == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)


def test_locked_dropout_is_the_identity_at_eval_and_at_zero():
    inputs = torch.randn(3, 4, 5)
    assert LockedDropout(0.5).eval()(inputs) is inputs
    assert LockedDropout(0.0).train()(inputs) is inputs
    with pytest.raises(NlpLstmError, match=r"in \[0, 1\)"):
        LockedDropout(1.0)


# -- embedding dropout --------------------------------------------------------------------------


def test_embedding_dropout_drops_whole_rows_and_scales_the_rest():
    weight = torch.randn(1000, 8)
    dropped = embedding_dropout(weight, 0.25, training=True)
    zero_rows = (dropped == 0).all(dim=1)
    assert torch.equal((dropped == 0).any(dim=1), zero_rows)  # a row is kept or dropped as a whole
    assert torch.allclose(dropped[~zero_rows], weight[~zero_rows] / 0.75)
    assert zero_rows.float().mean().item() == pytest.approx(0.25, abs=0.05)
    # Every occurrence of a dropped word is zero in the lookup.
    ids = torch.tensor([[int(zero_rows.nonzero()[0]), int((~zero_rows).nonzero()[0])]] * 3)
    embedded = F.embedding(ids, dropped)
    assert (embedded[:, 0] == 0).all() and (embedded[:, 1] != 0).any(dim=-1).all()


def test_embedding_dropout_preserves_the_expectation_and_gradients_flow():
    weight = torch.randn(5, 3, requires_grad=True)
    draws = torch.stack([embedding_dropout(weight, 0.4, training=True) for _ in range(4000)])
    assert torch.allclose(draws.mean(0), weight, atol=0.1)
    embedding_dropout(weight, 0.4, training=True).sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_embedding_dropout_is_the_identity_at_eval():
    weight = torch.randn(5, 3)
    assert embedding_dropout(weight, 0.4, training=False) is weight
    assert embedding_dropout(weight, 0.0, training=True) is weight


# -- weight drop ----------------------------------------------------------------------------------


def _reference_lstm(lstm: LSTM, weight_hh: torch.Tensor) -> torch.nn.LSTM:
    """An independent implementation (torch.nn.LSTM) holding `lstm`'s weights, with W_hh replaced."""
    reference = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(lstm.weight_ih_l0)
        reference.weight_hh_l0.copy_(weight_hh)
        reference.bias_ih_l0.copy_(lstm.bias_ih_l0)
        reference.bias_hh_l0.copy_(lstm.bias_hh_l0)
    return reference


def test_weight_drop_equals_a_manual_forward_with_the_masked_matrix():
    lstm = LSTM(4, 6).train()
    inputs = torch.randn(3, 7, 4)
    raw = lstm.weight_hh_l0.detach().clone()

    torch.manual_seed(123)
    outputs, (h_n, _) = call_with_weight_drop(lstm, (inputs,), p=0.5, training=True)
    outputs.sum().backward()
    # The gradient reaches the raw matrix only through the kept entries: its zeros are the mask.
    gradient = lstm.weight_hh_l0.grad
    kept = gradient != 0
    assert 0.3 < kept.float().mean().item() < 0.7
    masked = raw * kept / 0.5

    expected, (expected_h, _) = _reference_lstm(lstm, masked)(inputs)
    assert torch.allclose(outputs, expected, atol=1e-6)  # one mask for every time step
    assert torch.allclose(h_n, expected_h, atol=1e-6)
    assert torch.equal(lstm.weight_hh_l0.detach(), raw)  # the parameter itself is untouched


def test_weight_drop_changes_outputs_in_training_only():
    lstm = LSTM(4, 6)
    inputs = torch.randn(3, 7, 4)
    lengths = torch.tensor([7, 3, 5])
    plain, _ = lstm(inputs, lengths)
    evaluated, _ = call_with_weight_drop(lstm, (inputs, lengths), p=0.5, training=False)
    assert torch.equal(evaluated, plain)
    trained, _ = call_with_weight_drop(lstm, (inputs,), {"lengths": lengths}, p=0.5, training=True)
    assert not torch.allclose(trained, plain, atol=1e-3)
    assert (trained[1, 3:] == 0).all()  # padding stays zero: the module's own masking still runs


def test_weight_drop_draws_a_new_mask_per_call():
    lstm = LSTM(4, 6)
    inputs = torch.randn(2, 5, 4)
    first, _ = call_with_weight_drop(lstm, (inputs,), p=0.5, training=True)
    second, _ = call_with_weight_drop(lstm, (inputs,), p=0.5, training=True)
    assert not torch.allclose(first, second)


def test_hidden_to_hidden_names_cover_every_layer_and_direction():
    lstm = LSTM(4, 6, num_layers=2, bidirectional=True)
    assert hidden_to_hidden_names(lstm) == ["weight_hh_l0", "weight_hh_l0_reverse", "weight_hh_l1", "weight_hh_l1_reverse"]
    inputs = torch.randn(2, 5, 4)
    outputs, _ = call_with_weight_drop(lstm, (inputs,), p=0.3, training=True)
    outputs.sum().backward()
    for name in hidden_to_hidden_names(lstm):
        grad = getattr(lstm, name).grad
        assert 0 < (grad == 0).float().mean().item() < 0.6, name  # each matrix got its own mask


def test_weight_drop_rejects_an_unknown_parameter_name():
    with pytest.raises(NlpLstmError, match="no parameter 'weight_hh_l7'"):
        call_with_weight_drop(LSTM(4, 6), (torch.randn(1, 2, 4),), p=0.5, training=True, parameter_names=["weight_hh_l7"])

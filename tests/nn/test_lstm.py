"""Tests for nlp_lstm.nn.lstm: equivalence with torch.nn.LSTM and with the seed article's equations,
gradients, padding and batch-order invariance, layouts, dropout. Small sizes: 2 shared cores."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn import lstm as lstm_module
from nlp_lstm.nn.lstm import LSTM, PEEPHOLES, reverse_within_lengths
from nlp_lstm.nn.peephole import peephole_lstm_scan
from nlp_lstm.nn.parking import (
    CALL_COST_STEPS,
    PARK,
    parked_backward,
    parked_forward,
    parking_column,
    parking_plan,
    with_parking_feature,
)

INPUT_SIZE, HIDDEN_SIZE = 3, 4
LENGTHS = torch.tensor([6, 2, 4, 1, 4])  # ragged, with a repeated length and a length-1 row


def _ragged_batch(lengths=LENGTHS, time=7, garbage=True):
    """A (batch, time, INPUT_SIZE) batch; padded positions hold random garbage when asked, so any
    leak from padding would show."""
    inputs = torch.randn(len(lengths), time, INPUT_SIZE)
    if not garbage:
        steps = torch.arange(time).unsqueeze(0)
        inputs = inputs.masked_fill((steps >= lengths.unsqueeze(1)).unsqueeze(-1), 0.0)
    return inputs


def _with_random_peepholes(model):
    """Give a peephole model nonzero peepholes so the peephole code paths matter."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("peephole_"):
                parameter.normal_(std=0.3)
    return model


# -- construction and errors ------------------------------------------------------------------


def test_bad_peephole_raises_our_error():
    with pytest.raises(NlpLstmError, match="peephole='diag'"):
        LSTM(INPUT_SIZE, HIDDEN_SIZE, peephole="diag")


@pytest.mark.parametrize("shape", [(7, INPUT_SIZE), (2, 3, 7, INPUT_SIZE)])
def test_wrong_input_rank_raises_our_error(shape):
    with pytest.raises(NlpLstmError, match="3-D"):
        LSTM(INPUT_SIZE, HIDDEN_SIZE)(torch.randn(shape))


def test_bad_lengths_raise_our_error():
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE)
    inputs = torch.randn(2, 5, INPUT_SIZE)
    with pytest.raises(NlpLstmError, match="lengths must be in"):
        model(inputs, torch.tensor([6, 2]))
    with pytest.raises(NlpLstmError, match="lengths must be in"):
        model(inputs, torch.tensor([0, 2]))
    with pytest.raises(NlpLstmError, match="size batch=2"):
        model(inputs, torch.tensor([5, 2, 1]))


def test_parameters_are_named_like_torch_lstm_plus_peepholes():
    reference = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True)
    plain = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    for peephole, shape in [("diagonal", (HIDDEN_SIZE,)), ("full", (HIDDEN_SIZE, HIDDEN_SIZE))]:
        model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, peephole=peephole)
        extra = {k: v for k, v in model.state_dict().items() if k not in reference.state_dict()}
        assert sorted(extra) == sorted(
            f"peephole_{gate}_l{layer}{suffix}"
            for gate in "ifo"
            for layer in (0, 1)
            for suffix in ("", "_reverse")
        )
        assert all(v.shape == shape and not v.any() for v in extra.values())  # zero at start
    assert plain.output_size == 2 * HIDDEN_SIZE
    assert PEEPHOLES == ("none", "diagonal", "full")


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_state_dict_saves_as_safetensors(tmp_path, peephole):
    model = _with_random_peepholes(LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, peephole=peephole))
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))  # refuses shared storage
    restored = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, peephole=peephole)
    restored.load_state_dict(load_file(str(path)))
    inputs = torch.randn(2, 5, INPUT_SIZE)
    torch.testing.assert_close(restored(inputs)[0], model(inputs)[0], rtol=0, atol=0)


# -- fast path: the fused kernel, exact over ragged lengths ----------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_path_matches_torch_lstm_run_on_each_sequence_alone(bidirectional):
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=bidirectional)
    reference = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=bidirectional, batch_first=True)
    reference.load_state_dict(model.state_dict())
    inputs = _ragged_batch()
    outputs, (h_n, c_n) = model(inputs, LENGTHS)
    for row, length in enumerate(LENGTHS.tolist()):
        expected, (expected_h, expected_c) = reference(inputs[row : row + 1, :length])
        torch.testing.assert_close(outputs[row, :length], expected[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(h_n[:, row], expected_h[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(c_n[:, row], expected_c[:, 0], atol=1e-6, rtol=0)
    assert outputs.shape == (len(LENGTHS), 7, model.output_size)


def test_fused_path_calls_the_fused_kernel_and_never_packs(monkeypatch):
    calls = []
    fused = torch._VF.lstm
    monkeypatch.setattr(torch._VF, "lstm", lambda *args: calls.append(1) or fused(*args))

    def refuse(*args, **kwargs):
        raise AssertionError("pack_padded_sequence is 5.3x slower here; the fast path must not pack")

    monkeypatch.setattr(torch.nn.utils.rnn, "pack_padded_sequence", refuse)
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, bidirectional=True)
    with torch.no_grad():
        model(_ragged_batch(), LENGTHS)
    # Without autograd: one call per distinct length (segments) and direction: {1, 2, 4, 6} x 2.
    assert len(calls) == 2 * len(set(LENGTHS.tolist()))
    calls.clear()
    model(_ragged_batch(), LENGTHS)[0].sum().backward()
    # Training: rows parked past their ends share calls, one per cut of the plan and direction.
    assert len(calls) == 2 * len(parking_plan(tuple(LENGTHS.tolist()))) < 2 * len(set(LENGTHS.tolist()))
    calls.clear()
    model(_ragged_batch())  # full lengths: one kernel call for both directions
    assert len(calls) == 1
    calls.clear()
    model(_ragged_batch(), torch.full((len(LENGTHS),), 4))  # equal lengths below the padding: the same
    assert len(calls) == 1


def test_fused_path_gradients_match_torch_lstm_on_full_lengths():
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True)
    reference = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(model.state_dict())
    inputs = torch.randn(3, 5, INPUT_SIZE)
    outputs, (h_n, c_n) = model(inputs)
    expected, (expected_h, expected_c) = reference(inputs)
    torch.testing.assert_close(outputs, expected, atol=1e-6, rtol=0)
    (outputs.sum() + c_n.sum()).backward()
    (expected.sum() + expected_c.sum()).backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, getattr(reference, name).grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parked_training_gradients_equal_each_sequence_run_alone(bidirectional, num_layers):
    # Ragged training runs rows parked past their ends (nlp_lstm.nn.parking): the loss's gradients,
    # for the weights and for the inputs, must be those of every sequence run alone by nn.LSTM.
    torch.manual_seed(1)
    lengths = torch.tensor([9, 3, 6, 1, 6, 8])
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=num_layers, bidirectional=bidirectional)
    reference = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=num_layers, bidirectional=bidirectional,
                              batch_first=True)  # fmt: skip
    reference.load_state_dict(model.state_dict())
    inputs = _ragged_batch(lengths, time=11).requires_grad_()  # garbage at padding
    weight_out = torch.randn(len(lengths), 11, model.output_size)
    weight_h, weight_c = torch.randn(2, num_layers * model.num_directions, len(lengths), HIDDEN_SIZE)
    outputs, (h_n, c_n) = model(inputs, lengths)
    ((outputs * weight_out).sum() + (h_n * weight_h).sum() + (c_n * weight_c).sum()).backward()
    assert inputs.grad[torch.arange(11) >= lengths.unsqueeze(1)].abs().max() == 0  # padding: no say
    for row, length in enumerate(lengths.tolist()):
        alone = inputs.detach()[row : row + 1, :length].requires_grad_()
        expected, (expected_h, expected_c) = reference(alone)
        loss = (expected[0] * weight_out[row, :length]).sum()
        loss = loss + (expected_h[:, 0] * weight_h[:, row]).sum() + (expected_c[:, 0] * weight_c[:, row]).sum()
        loss.backward()
        torch.testing.assert_close(inputs.grad[row, :length], alone.grad[0], atol=1e-5, rtol=0)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, getattr(reference, name).grad, atol=1e-4, rtol=0)


def test_parked_steps_keep_the_cell_state_bit_for_bit():
    # The last row ends after 2 steps. Run in one call it is parked for 58 steps of large garbage;
    # run with a cut at 2, its state is taken right at its end. Parking is exact only if the two
    # agree to the last bit (the first 2 steps are the same computation in both).
    torch.manual_seed(2)
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE)
    lengths = [60] * 40 + [2]
    inputs = torch.randn(60, len(lengths), INPUT_SIZE) * 50  # (T, B, D)
    pad_mask = torch.arange(60).unsqueeze(1) >= torch.tensor(lengths)
    parked_inputs = with_parking_feature(inputs, pad_mask)
    weights = [torch.cat([model.weight_ih_l0, parking_column(HIDDEN_SIZE, like=inputs)], dim=1),
               model.weight_hh_l0, model.bias_ih_l0, model.bias_hh_l0]  # fmt: skip
    zeros = torch.zeros(len(lengths), HIDDEN_SIZE)
    with torch.no_grad():
        _, one_call = parked_forward(parked_inputs, lengths, (60,), zeros, zeros, weights, False)
        _, cut = parked_forward(parked_inputs, lengths, (2, 60), zeros, zeros, weights, False)
        backward_outputs, _, _ = parked_backward(parked_inputs, lengths, (60,), weights, False)
    assert torch.equal(one_call[-1], cut[-1])
    assert parking_plan(tuple(lengths)) == (60,)  # what training runs for this batch
    assert backward_outputs[2:, -1].abs().max() == 0  # waiting at zero: exactly zero outputs


def test_parking_plan_trades_calls_against_parked_steps():
    assert parking_plan((5, 5, 5)) == (5,)
    assert parking_plan((7, 1, 4)) == (7,)  # short rows: one call, parked steps are cheap
    # 2 rows of 100 and 30 of 10: one call parks 30 rows for 90 steps; a cut at 10 costs one more
    # call (CALL_COST_STEPS * 32 row-steps) and saves 2700.
    assert parking_plan((100,) * 2 + (10,) * 30) == (10, 100)
    assert CALL_COST_STEPS * 32 < 2700 and PARK * 1e-30 > 0


def test_inference_keeps_the_exact_segments_and_training_agrees_with_it():
    # Without autograd the path is unchanged (decoding's results depend on it); with autograd the
    # parked path gives the same values up to rounding.
    torch.manual_seed(4)
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True).eval()
    inputs, lengths = _ragged_batch(time=9), LENGTHS
    with torch.no_grad():
        exact, (exact_h, exact_c) = model(inputs, lengths)
    parked, (parked_h, parked_c) = model(inputs, lengths)
    torch.testing.assert_close(parked, exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(parked_h, exact_h, atol=1e-6, rtol=0)
    torch.testing.assert_close(parked_c, exact_c, atol=1e-6, rtol=0)


# -- own cell == fused kernel when peepholes are zero -----------------------------------------


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_own_cell_with_zero_peepholes_matches_fused_kernel(peephole, bidirectional):
    fused = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=bidirectional)
    own = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=bidirectional, peephole=peephole)
    missing = own.load_state_dict(fused.state_dict(), strict=False).missing_keys
    assert all(key.startswith("peephole_") for key in missing)
    inputs = _ragged_batch()
    state = (torch.randn(2 * own.num_directions, len(LENGTHS), HIDDEN_SIZE),) * 2
    fused_out, (fused_h, fused_c) = fused(inputs, LENGTHS, state)
    own_out, (own_h, own_c) = own(inputs, LENGTHS, state)
    torch.testing.assert_close(own_out, fused_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(own_h, fused_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(own_c, fused_c, atol=1e-5, rtol=0)
    # The hand-derived backward agrees with autograd through the fused kernel.
    (fused_out.square().sum() + fused_c.sum()).backward()
    (own_out.square().sum() + own_c.sum()).backward()
    fused_grads = dict(fused.named_parameters())
    for name, parameter in own.named_parameters():
        if not name.startswith("peephole_"):
            torch.testing.assert_close(parameter.grad, fused_grads[name].grad, atol=1e-5, rtol=0)


# -- the seed article's equations, literally --------------------------------------------------


def test_full_peephole_cell_reproduces_seed_article_equations_literally():
    """Seed: i_t = sigma(W_ix x_t + b_ix + W_ic c_{t-1} + b_ic), f_t likewise,
    c_t = f_t*c_{t-1} + i_t*tanh(W_cx x_t + b_cx), o_t = sigma(W_ox x_t + b_ox + W_oc c_t + b_oc),
    h_t = o_t*tanh(c_t): no h_{t-1} terms. Our cell with weight_hh = 0 and bias_hh holding the
    peephole biases b_ic, b_fc, b_oc must give exactly that."""
    time, batch = 5, 3
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, peephole="full", batch_first=False)
    g = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.5

    W_ix, W_fx, W_cx, W_ox = (rand(HIDDEN_SIZE, INPUT_SIZE) for _ in range(4))
    b_ix, b_fx, b_cx, b_ox = (rand(HIDDEN_SIZE) for _ in range(4))
    W_ic, W_fc, W_oc = (rand(HIDDEN_SIZE, HIDDEN_SIZE) for _ in range(3))
    b_ic, b_fc, b_oc = (rand(HIDDEN_SIZE) for _ in range(3))
    with torch.no_grad():
        model.weight_ih_l0.copy_(torch.cat([W_ix, W_fx, W_cx, W_ox]))
        model.bias_ih_l0.copy_(torch.cat([b_ix, b_fx, b_cx, b_ox]))
        model.weight_hh_l0.zero_()  # the seed has no h_{t-1} terms
        model.bias_hh_l0.copy_(torch.cat([b_ic, b_fc, torch.zeros(HIDDEN_SIZE), b_oc]))
        model.peephole_i_l0.copy_(W_ic)
        model.peephole_f_l0.copy_(W_fc)
        model.peephole_o_l0.copy_(W_oc)

    x = torch.randn(time, batch, INPUT_SIZE)  # the seed's time-major (T, N, D)
    sigma, tanh = torch.sigmoid, torch.tanh
    c = torch.zeros(batch, HIDDEN_SIZE)
    hs = []
    for x_t in x:  # one step at a time, plain tensor ops, column-vector maths via (W @ v.T).T
        i_t = sigma((W_ix @ x_t.T).T + b_ix + (W_ic @ c.T).T + b_ic)
        f_t = sigma((W_fx @ x_t.T).T + b_fx + (W_fc @ c.T).T + b_fc)
        c = f_t * c + i_t * tanh((W_cx @ x_t.T).T + b_cx)
        o_t = sigma((W_ox @ x_t.T).T + b_ox + (W_oc @ c.T).T + b_oc)
        hs.append(o_t * tanh(c))
    outputs, (h_n, c_n) = model(x)
    torch.testing.assert_close(outputs, torch.stack(hs), atol=1e-6, rtol=0)
    torch.testing.assert_close(h_n[0], hs[-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-6, rtol=0)


# -- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_peephole_scan_passes_gradcheck(peephole):
    time, batch, hidden_size = 4, 2, 3

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    peephole_shape = {"none": None, "diagonal": (hidden_size,), "full": (hidden_size, hidden_size)}[peephole]
    peepholes = [None] * 3 if peephole_shape is None else [leaf(*peephole_shape) for _ in range(3)]
    inputs = (leaf(time, batch, 4 * hidden_size), leaf(batch, hidden_size), leaf(batch, hidden_size),
              leaf(4 * hidden_size, hidden_size), *peepholes)  # fmt: skip
    assert torch.autograd.gradcheck(lambda *args: peephole_lstm_scan(*args, peephole=peephole), inputs)


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
def test_module_with_ragged_bidirectional_input_passes_gradcheck(peephole):
    model = LSTM(2, 2, num_layers=2, bidirectional=True, peephole=peephole).double()
    _with_random_peepholes(model)
    inputs = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    parameters = tuple(model.parameters())

    def run(inputs, *_):
        outputs, (h_n, c_n) = model(inputs, lengths)
        return outputs, h_n, c_n

    assert torch.autograd.gradcheck(run, (inputs, *parameters))


# -- invariances -----------------------------------------------------------------------------


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_padding_never_changes_real_outputs_or_final_states(peephole):
    model = _with_random_peepholes(LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, peephole=peephole))
    inputs = _ragged_batch(time=9)  # longest row 6 < 9: also padding past every row
    outputs, (h_n, c_n) = model(inputs, LENGTHS)
    for row, length in enumerate(LENGTHS.tolist()):
        alone, (alone_h, alone_c) = model(inputs[row : row + 1, :length])
        torch.testing.assert_close(outputs[row, :length], alone[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(h_n[:, row], alone_h[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(c_n[:, row], alone_c[:, 0], atol=1e-6, rtol=0)
        assert (outputs[row, length:] == 0).all()  # exact zeros at padding


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_batch_order_does_not_matter(peephole):
    model = _with_random_peepholes(LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, peephole=peephole))
    inputs = _ragged_batch()
    permutation = torch.tensor([3, 0, 4, 2, 1])
    outputs, (h_n, c_n) = model(inputs, LENGTHS)
    permuted, (permuted_h, permuted_c) = model(inputs[permutation], LENGTHS[permutation])
    torch.testing.assert_close(permuted, outputs[permutation], atol=1e-6, rtol=0)
    torch.testing.assert_close(permuted_h, h_n[:, permutation], atol=1e-6, rtol=0)
    torch.testing.assert_close(permuted_c, c_n[:, permutation], atol=1e-6, rtol=0)


def test_reverse_within_lengths_is_its_own_inverse_and_keeps_padding():
    sequence = torch.arange(12.0).view(4, 3, 1)  # (T, B, 1)
    lengths = torch.tensor([4, 2, 1])
    reversed_sequence = reverse_within_lengths(sequence, lengths)
    assert reversed_sequence[:, 0, 0].tolist() == [9.0, 6.0, 3.0, 0.0]
    assert reversed_sequence[:, 1, 0].tolist() == [4.0, 1.0, 7.0, 10.0]
    assert torch.equal(reverse_within_lengths(reversed_sequence, lengths), sequence)


# -- layouts, state, dropout -----------------------------------------------------------------


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_time_major_inputs_give_time_major_outputs(peephole):
    batch_major = _with_random_peepholes(LSTM(INPUT_SIZE, HIDDEN_SIZE, bidirectional=True, peephole=peephole))
    time_major = LSTM(INPUT_SIZE, HIDDEN_SIZE, bidirectional=True, peephole=peephole, batch_first=False)
    time_major.load_state_dict(batch_major.state_dict())
    inputs = _ragged_batch()  # (B, T, D)
    expected, (expected_h, expected_c) = batch_major(inputs, LENGTHS)
    outputs, (h_n, c_n) = time_major(inputs.transpose(0, 1), LENGTHS)  # (T, B, D)
    assert outputs.shape == (7, len(LENGTHS), 2 * HIDDEN_SIZE)
    torch.testing.assert_close(outputs, expected.transpose(0, 1), atol=0, rtol=0)
    torch.testing.assert_close(h_n, expected_h, atol=0, rtol=0)
    torch.testing.assert_close(c_n, expected_c, atol=0, rtol=0)


def test_initial_state_is_used_like_torch_lstm():
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True)
    reference = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(model.state_dict())
    inputs = torch.randn(3, 5, INPUT_SIZE)
    state = (torch.randn(4, 3, HIDDEN_SIZE), torch.randn(4, 3, HIDDEN_SIZE))
    outputs, (h_n, c_n) = model(inputs, state=state)
    expected, (expected_h, expected_c) = reference(inputs, state)
    torch.testing.assert_close(outputs, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(c_n, expected_c, atol=1e-6, rtol=0)
    with pytest.raises(NlpLstmError, match="state"):
        model(inputs, state=(state[0][:2], state[1][:2]))


@pytest.mark.parametrize("peephole", PEEPHOLES)
def test_dropout_only_between_layers_and_only_in_training(monkeypatch, peephole):
    applied = []
    dropout = F.dropout

    def spy(tensor, p=0.5, training=True, inplace=False):
        applied.append(training)
        return dropout(tensor, p=p, training=training, inplace=inplace)

    monkeypatch.setattr(lstm_module.F, "dropout", spy)
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=3, dropout=0.5, peephole=peephole)
    undropped = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=3, peephole=peephole)
    undropped.load_state_dict(model.state_dict())
    inputs = _ragged_batch()

    model.train()
    trained_outputs = model(inputs, LENGTHS)[0]
    assert applied == [True, True]  # after layers 0 and 1, not after the last
    assert not torch.allclose(trained_outputs, undropped(inputs, LENGTHS)[0])

    applied.clear()
    model.eval()
    torch.testing.assert_close(model(inputs, LENGTHS)[0], undropped(inputs, LENGTHS)[0], atol=0, rtol=0)
    assert not any(applied)

    single = LSTM(INPUT_SIZE, HIDDEN_SIZE, dropout=0.5, peephole=peephole).train()
    single(inputs)
    assert not any(applied)  # one layer: nothing between layers


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
def test_peepholes_learn(peephole):
    """Peepholes start at zero but receive gradient, so a model can learn to use them."""
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, peephole=peephole)
    outputs, (_, c_n) = model(_ragged_batch(), LENGTHS)
    (outputs.sum() + c_n.sum()).backward()
    assert all(model.get_parameter(f"peephole_{gate}_l0").grad.abs().sum() > 0 for gate in "ifo")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_without_cell_state_outputs_and_h_match_the_exact_path(bidirectional):
    torch.manual_seed(3)
    lstm = LSTM(5, 7, num_layers=2, bidirectional=bidirectional).eval()
    inputs = torch.randn(4, 9, 5)
    lengths = torch.tensor([9, 3, 6, 1])
    exact, (h_exact, _) = lstm(inputs, lengths)
    fast, (h_fast, c_fast) = lstm(inputs, lengths, need_cell_state=False)
    assert c_fast is None
    torch.testing.assert_close(fast, exact, rtol=0, atol=1e-6)
    torch.testing.assert_close(h_fast, h_exact, rtol=0, atol=1e-6)
    assert torch.all(fast[1, 3:] == 0)


def test_equal_lengths_below_the_padding_equal_the_unpadded_run():
    model = LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True)
    inputs = _ragged_batch()
    lengths = torch.full((inputs.shape[0],), 4)
    outputs, (h_n, c_n) = model(inputs, lengths)
    expected, (expected_h, expected_c) = model(inputs[:, :4])
    torch.testing.assert_close(outputs[:, :4], expected)
    assert outputs[:, 4:].abs().max() == 0
    torch.testing.assert_close(h_n, expected_h)
    torch.testing.assert_close(c_n, expected_c)

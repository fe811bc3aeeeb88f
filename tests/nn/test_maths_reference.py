"""The layers' formulas recomputed by hand, one position at a time, from the papers' equations:
attention (Bahdanau et al. 2015 eq. 6 with See et al. 2017 eq. 11's coverage; Luong et al. 2015
sec. 3.1), the pointer-generator mixture (See et al. eqs. 8-9), pooling (Yang et al. 2016 sec. 2.2)
and the LSTM's initialisation. Loops over Python floats, so no shared tensor code can hide a bug."""

import math
import warnings

import pytest
import torch

from nlp_lstm.nn import attention as attention_module
from nlp_lstm.nn.attention import ATTENTION, masked_softmax
from nlp_lstm.nn.copy import EPSILON, PointerGenerator, extended_log_probs
from nlp_lstm.nn.lstm import LSTM
from nlp_lstm.nn.pooling import build_pooling


def softmax(scores):
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    return [e / sum(exps) for e in exps]


def dot(left, right):
    return sum(a * b for a, b in zip(left, right))


def matvec(matrix, vector):
    return [dot(row, vector) for row in matrix.tolist()]


def reference_attention(kind, module, query, values, pad_mask, coverage):
    """Per row: scores e_i, weights a = softmax over real positions, context sum_i a_i h_i."""
    real = [i for i in range(values.shape[0]) if not pad_mask[i]]
    scores = []
    for i in real:
        h_i, c_i = values[i].tolist(), float(coverage[i])
        if kind == "additive":  # v^T tanh(W_h h_i + W_s s_t + b + w_c c_i)
            keys = matvec(module.key_proj.weight, h_i)
            queries = [q + b for q, b in zip(matvec(module.query_proj.weight, query.tolist()),
                                             module.query_proj.bias.tolist())]
            cover = [w * c_i for w in module.coverage_proj.weight[:, 0].tolist()]
            features = [math.tanh(k + q + c) for k, q, c in zip(keys, queries, cover)]
            scores.append(dot(module.v.weight[0].tolist(), features))
        else:  # s_t^T W_a h_i + w_c c_i
            scores.append(dot(query.tolist(), matvec(module.key_proj.weight, h_i))
                          + float(module.coverage_weight.detach()) * c_i)
    weights = [0.0] * values.shape[0]
    for i, weight in zip(real, softmax(scores)):
        weights[i] = weight
    context = [sum(weights[i] * float(values[i, j]) for i in real) for j in range(values.shape[1])]
    return weights, context


@pytest.mark.parametrize("kind", sorted(ATTENTION))
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("chunk_positions", [3200, 7])
def test_attention_by_hand(kind, grad, chunk_positions, monkeypatch):
    # 7 positions per chunk: without autograd the additive scores are built a few examples at a
    # time (here one per chunk), which must neither change a value nor warn.
    monkeypatch.setattr(attention_module, "SCORE_CHUNK_POSITIONS", chunk_positions)
    torch.manual_seed(0)
    module = ATTENTION[kind](4, 6, coverage=True)
    if kind == "general":
        with torch.no_grad():
            module.coverage_weight.fill_(-0.8)  # starts at 0
    beams, values = 2, torch.randn(2, 5, 6)
    pad_mask = torch.tensor([[False] * 5, [False, False, True, True, True]])
    query, coverage = torch.randn(2 * beams, 4), torch.rand(2 * beams, 5) * 2
    with torch.set_grad_enabled(grad), warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "An output with one or more elements was resized"
        keys = module.project_keys(values)
        context, weights = module(query, keys, values, pad_mask, coverage=coverage, beam_size=beams)
    for row in range(2 * beams):
        example = row // beams  # rows are example-major: beam k of example e is row e * K + k
        expected_weights, expected_context = reference_attention(
            kind, module, query[row], values[example], pad_mask[example], coverage[row]
        )
        assert weights[row].tolist() == pytest.approx(expected_weights, abs=1e-6)
        assert context[row].tolist() == pytest.approx(expected_context, abs=1e-5)
    # Without coverage (the default) the score ignores the coverage vector.
    plain = ATTENTION[kind](4, 6)
    assert not plain.coverage
    keys = plain.project_keys(values)
    assert torch.equal(plain(query, keys, values, pad_mask, coverage=coverage, beam_size=beams)[1],
                       plain(query, keys, values, pad_mask, coverage=None, beam_size=beams)[1])


def test_masked_softmax_by_hand():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 9.0]])
    pad_mask = torch.tensor([[False, False, True], [False, False, False]])
    weights = masked_softmax(scores, pad_mask)
    assert weights[0].tolist() == pytest.approx([*softmax([1.0, 2.0]), 0.0])
    assert weights[1].tolist() == pytest.approx(softmax([0.5, -1.0, 9.0]))


def test_pointer_generator_mixture_by_hand():
    # Vocabulary of 5 ids; the source [2, 5, 2, 6, PAD] holds OOVs 5 and 6; max_oovs 3 leaves slot 7
    # unreachable. Two beams share the source, each with its own attention and p_gen.
    logits = torch.tensor([[0.1, 0.2, 0.3, -0.4, 1.0], [2.0, -1.0, 0.0, 0.5, 0.5]])
    attention = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0], [0.25, 0.25, 0.25, 0.25, 0.0]])
    src_ext_ids = torch.tensor([[2, 5, 2, 6, 0]])
    p_gen = torch.tensor([0.75, 0.2])
    log_probs = extended_log_probs(logits, attention=attention, src_ext_ids=src_ext_ids, max_oovs=3, p_gen=p_gen)
    assert log_probs.shape == (2, 8)
    for row in range(2):
        generated = softmax(logits[row].tolist())
        g, a = float(p_gen[row]), attention[row].tolist()
        # P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: w_i = w} a_i  (See et al. eq. 9)
        expected = [g * generated[w] for w in range(5)] + [0.0, 0.0, 0.0]
        for position, token in enumerate(src_ext_ids[0].tolist()):
            expected[token] += (1 - g) * a[position]
        assert log_probs[row, :7].tolist() == pytest.approx([math.log(p + EPSILON) for p in expected[:7]], abs=1e-6)
        assert log_probs[row, 7] == float("-inf")  # no source token maps to slot 7
        assert sum(math.exp(v) for v in log_probs[row].tolist()) == pytest.approx(1.0, abs=1e-5)
    # No copy: a plain softmax over the vocabulary, every extended slot unreachable.
    plain = extended_log_probs(logits, attention=attention, src_ext_ids=src_ext_ids, max_oovs=3, p_gen=None)
    assert plain[0, :5].tolist() == pytest.approx([math.log(p) for p in softmax(logits[0].tolist())], abs=1e-6)
    assert plain[:, 5:].eq(float("-inf")).all()


def test_p_gen_by_hand():
    torch.manual_seed(1)
    pointer = PointerGenerator(context_size=3, state_size=2, input_size=2)
    context, state, inputs = torch.randn(1, 3), torch.randn(1, 2), torch.randn(1, 2)
    weight, bias = pointer.proj.weight[0].tolist(), float(pointer.proj.bias.detach())
    features = context[0].tolist() + state[0].tolist() + inputs[0].tolist()  # [h*_t; s_t; x_t]
    expected = 1 / (1 + math.exp(-(dot(weight, features) + bias)))  # See et al. eq. 8
    assert pointer(context, state, inputs).tolist() == pytest.approx([expected])


@pytest.mark.parametrize("name", ["max", "mean", "attention", "last", "concat"])
def test_pooling_by_hand(name):
    torch.manual_seed(2)
    outputs = torch.randn(2, 4, 3)
    pad_mask = torch.tensor([[False, False, False, True], [False, True, True, True]])
    final_hidden = torch.randn(2, 3)
    pooling = build_pooling(name, 3)
    pooled = pooling(outputs, pad_mask, final_hidden)
    for row in range(2):
        real = [outputs[row, t].tolist() for t in range(4) if not pad_mask[row, t]]
        if name == "max":
            expected = [max(column) for column in zip(*real)]
        elif name == "mean":
            expected = [sum(column) / len(real) for column in zip(*real)]
        elif name == "last":
            expected = final_hidden[row].tolist()
        elif name == "concat":  # ULMFiT sec. 3.3: [h_T; maxpool(H); meanpool(H)]
            expected = (final_hidden[row].tolist() + [max(column) for column in zip(*real)]
                        + [sum(column) / len(real) for column in zip(*real)])
        else:  # Yang et al. 2016: u_t = tanh(W h_t + b), a = softmax(u_t . u_w), sum_t a_t h_t
            scores = [
                dot(pooling.query.weight[0].tolist(),
                    [math.tanh(v + b) for v, b in zip(matvec(pooling.project.weight, h), pooling.project.bias.tolist())])
                for h in real
            ]
            expected = [dot(softmax(scores), column) for column in zip(*real)]
        assert pooled[row].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("peephole", ["none", "diagonal"])
def test_lstm_starts_with_forget_bias_one_and_zero_peepholes(peephole):
    # The forget gate's input bias starts at +1 (Gers et al. 2000; Jozefowicz et al. 2015 sec. 3.1)
    # on top of torch.nn.LSTM's uniform(-1/sqrt(H), 1/sqrt(H)); peepholes start at zero.
    hidden = 16
    lstm = LSTM(3, hidden, num_layers=2, bidirectional=True, peephole=peephole)
    bound = 1 / math.sqrt(hidden)
    for name, parameter in lstm.named_parameters():
        if name.startswith("peephole_"):
            assert torch.equal(parameter, torch.zeros_like(parameter)), name
            continue
        shifted = torch.zeros_like(parameter)
        if name.startswith("bias_ih"):
            shifted[hidden : 2 * hidden] = 1.0  # gate order i, f, g, o
        centred = parameter - shifted
        assert centred.abs().max() <= bound, name
        assert centred.abs().max() > 0.5 * bound, name  # really uniform noise, not zeros


@pytest.mark.parametrize("peephole", ["none", "diagonal"])
def test_initial_state_with_ragged_lengths_is_used_like_torch_lstm(peephole):
    # Ragged rows (or peepholes) take the per-direction path; the state of layer l, direction d is
    # row l * 2 + d of h0 / c0, as in torch.nn.LSTM. Zero peepholes: the plain cell's numbers.
    torch.manual_seed(3)
    model = LSTM(3, 4, num_layers=2, bidirectional=True, peephole=peephole).eval()
    reference = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("peephole_")})
    lengths = torch.tensor([5, 2, 4])
    inputs = torch.randn(3, 5, 3)
    state = (torch.randn(4, 3, 4), torch.randn(4, 3, 4))
    with torch.no_grad():
        outputs, (h_n, c_n) = model(inputs, lengths, state=state)
        for row, length in enumerate(lengths.tolist()):
            alone = (state[0][:, row : row + 1].contiguous(), state[1][:, row : row + 1].contiguous())
            expected, (expected_h, expected_c) = reference(inputs[row : row + 1, :length], alone)
            torch.testing.assert_close(outputs[row, :length], expected[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(h_n[:, row], expected_h[:, 0], atol=1e-5, rtol=0)
            torch.testing.assert_close(c_n[:, row], expected_c[:, 0], atol=1e-5, rtol=0)

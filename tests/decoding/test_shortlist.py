"""Decoding over a shortlisted vocabulary (`nlp_lstm.decoding.shortlist`).

The reference distribution is built here by hand in float64 from the full model's own generator
input, attention and p_gen: each example normalises over the specials, the N pieces of largest
output bias and its own source's pieces, and nothing else.
"""

import math

import pytest
import torch

from nlp_lstm.data.specials import BOS_ID, SPECIALS
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search, decoding_mode, encode_batch
from nlp_lstm.decoding.greedy import greedy_decode_config
from nlp_lstm.decoding.shortlist import shortlist_batch
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.copy import EPSILON
from tests.decoding.test_beam_speed_parity import VOCAB, make_batch, make_model

SIZE = 40  # of VOCAB = 2000 pieces: most of each row is off the shortlist


def allowed_ids(model, source: list[int], size: int) -> set[int]:
    """Specials, the `size` in-vocabulary pieces of largest bias, the source's pieces (by hand)."""
    bias = model.generator.bias.tolist()
    ranked = sorted(range(len(SPECIALS), VOCAB), key=lambda i: -bias[i])[:size]
    return set(range(len(SPECIALS))) | set(ranked) | {t for t in source if t < VOCAB}


def test_each_example_normalises_over_its_own_set_with_copy_mass():
    model = make_model(seed=3, attention="general")
    batch = make_batch(3, seed=5, oov_rate=0.2)
    view, mapped, _ = shortlist_batch(model, batch, SIZE)
    columns = view.columns.tolist()
    captured = {}
    model.generator.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0].clone()))
    with decoding_mode(model):
        encoder_output, state, src_ext_ids, max_oovs = encode_batch(model, batch)
        prev = torch.full((3,), BOS_ID)
        _, _, attention, p_gen = model.step(prev, state, encoder_output, src_ext_ids, max_oovs)
        full_logits = model.generator(captured["x"]).double()  # (3, VOCAB), the full vocabulary
        log_probs, _, short_attention, _ = view.step(prev, state, encoder_output, mapped["src_ext_ids"], max_oovs)
    torch.testing.assert_close(short_attention, attention, rtol=0, atol=0)  # the generator only changes
    n = len(columns)
    assert log_probs.shape == (3, n + max_oovs)
    for e in range(3):
        source = batch["src_ext_ids"][e, : int(batch["src_lengths"][e])].tolist()
        allowed = allowed_ids(model, source, SIZE)
        z = {w: float(full_logits[e, w]) for w in allowed}
        top = max(z.values())
        total = sum(math.exp(v - top) for v in z.values())
        g = float(p_gen[e])
        mass = {w: g * math.exp(z[w] - top) / total for w in allowed}
        for position, token in enumerate(batch["src_ext_ids"][e].tolist()):
            mass[token] = mass.get(token, 0.0) + (1 - g) * float(attention[e, position])
        for c, piece in enumerate(columns):
            if piece in allowed:
                assert log_probs[e, c].item() == pytest.approx(math.log(mass[piece] + EPSILON), abs=2e-5)
            else:
                assert log_probs[e, c].item() == float("-inf"), (e, piece)  # another example's source piece
        oovs = {t for t in source if t >= VOCAB}
        for k in range(max_oovs):
            value = log_probs[e, n + k].item()
            if VOCAB + k in oovs:
                assert value == pytest.approx(math.log(mass[VOCAB + k] + EPSILON), abs=2e-5)
            else:
                assert value == float("-inf")
        assert sum(math.exp(v) for v in log_probs[e].tolist()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_a_summary_does_not_depend_on_its_batch_and_uses_only_its_own_set(beam_size):
    model = make_model(seed=1)
    batch = make_batch(10, seed=8)
    config = DecodeConfig(beam_size=beam_size, max_length=12, no_repeat_ngram_size=2)
    decode = beam_search if beam_size > 1 else greedy_decode_config

    def shortlisted(rows):
        single = {key: (value[rows] if torch.is_tensor(value) else value) for key, value in batch.items()}
        view, mapped, to_ids = shortlist_batch(model, single, SIZE)
        return to_ids(decode(view, mapped, config))

    together = shortlisted(torch.arange(10))
    alone = [shortlisted(torch.tensor([i]))[0] for i in range(10)]
    assert together == alone
    full = decode(model, batch, config)
    assert together != full  # the shortlist really changed something (else this test proves nothing)
    for e, output in enumerate(together):
        source = batch["src_ext_ids"][e, : int(batch["src_lengths"][e])].tolist()
        assert set(output) <= allowed_ids(model, source, SIZE) | set(source), e


def test_the_predictor_decodes_through_the_shortlist_and_skips_a_full_one(monkeypatch):
    from nlp_lstm.inference import summarizer as predictor_module

    calls = []
    real = predictor_module.shortlist_batch
    monkeypatch.setattr(predictor_module, "shortlist_batch", lambda *a: calls.append(a[2]) or real(*a))
    model = make_model(seed=2)
    predictor = predictor_module.SummarizerPredictor(model, tokenizer=None)
    examples = [{"src_ids": [5, 6, 7], "src_ext_ids": [5, 6, 7], "oovs": [], "length": 3}]
    short = predictor.decode(examples, DecodeConfig(beam_size=2, max_length=5, shortlist=SIZE))
    everything = predictor.decode(examples, DecodeConfig(beam_size=2, max_length=5, shortlist=VOCAB))
    assert calls == [SIZE]  # a shortlist as large as the vocabulary is the plain path
    assert everything == predictor.decode(examples, DecodeConfig(beam_size=2, max_length=5))
    assert all(0 <= t < VOCAB for t in short[0])  # piece ids, not column numbers


@pytest.mark.parametrize("value", [-1, True, 2.5])
def test_a_bad_shortlist_is_a_one_line_error(value):
    with pytest.raises(NlpLstmError, match="shortlist=.* is invalid: use 0"):
        DecodeConfig(shortlist=value)

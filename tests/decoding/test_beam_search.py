"""Greedy and beam search: agreement, batch and padding invariance, length and n-gram rules, and the
scores of Wu et al. (2016) recomputed by hand."""

import math

import pytest
import torch
from torch import nn

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nlp_lstm.decoding.beam_search import (
    DecodeConfig,
    beam_search,
    beam_search_hypotheses,
    coverage_penalty,
    length_penalty,
)
from nlp_lstm.decoding.greedy import greedy_decode
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.summarizer import DecoderState, EncoderOutput, Summarizer, SummarizerConfig
from tests.helpers import add_copy_half_targets

VOCAB = 30


def make_batch(sources, *, vocab_size=VOCAB, pad_to=None):
    """Source side of a data-layer batch from lists of extended ids (>= vocab_size: source OOV)."""
    lengths = torch.tensor([len(s) for s in sources])
    src_len = max(pad_to or 0, int(lengths.max()))
    src_ext_ids = torch.full((len(sources), src_len), PAD_ID)
    for row, source in enumerate(sources):
        src_ext_ids[row, : len(source)] = torch.tensor(source)
    return {
        "src_ids": src_ext_ids.masked_fill(src_ext_ids >= vocab_size, UNK_ID),
        "src_ext_ids": src_ext_ids,
        "src_lengths": lengths,
        "src_pad_mask": torch.arange(src_len) >= lengths.unsqueeze(1),
        "max_oovs": max(0, int(src_ext_ids.max()) - vocab_size + 1),
    }


def random_sources(count, *, seed, min_len=3, max_len=9, oov_rate=0.2):
    generator = torch.Generator().manual_seed(seed)
    sources = []
    for _ in range(count):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=generator))
        ids = torch.randint(4, VOCAB, (length,), generator=generator)
        oov = torch.rand(length, generator=generator) < oov_rate
        ids[oov] = VOCAB + torch.randint(0, 3, (int(oov.sum()),), generator=generator)
        sources.append(ids.tolist())
    return sources


def make_model(*, seed=0, sharpness=4.0, **overrides):
    """A random tiny summarizer. `sharpness` scales the output layer so that next-token choices are
    clear-cut (flat random distributions make near-ties that float noise could flip)."""
    torch.manual_seed(seed)
    settings = dict(vocab_size=VOCAB, embedding_dim=16, hidden_size=16, dropout=0.1, coverage=True)
    settings.update(overrides)
    model = Summarizer(SummarizerConfig(**settings))
    with torch.no_grad():
        model.generator.weight.mul_(sharpness)
        model.generator.bias[EOS_ID] -= 2.0  # longer outputs exercise more steps
    return model


@pytest.fixture(scope="module")
def trained_model():
    """A tiny summarizer trained to copy the first half of its source (OOVs included), so that on
    new sources its outputs end with EOS at varied lengths."""
    torch.manual_seed(0)
    model = make_model(sharpness=1.0)
    sources = random_sources(12, seed=10)
    batch = make_batch(sources)
    add_copy_half_targets(batch, sources, VOCAB)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.coverage_weight = 1.0
    for _ in range(60):
        optimizer.zero_grad()
        model(batch)["loss"].backward()
        optimizer.step()
    return model


def has_repeated_ngram(tokens, n):
    ngrams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(ngrams) != len(set(ngrams))


class MarkovModel(nn.Module):
    """A stub decoder whose next-token distribution is a fixed table indexed by
    (the example's first source id, previous token): a hand-made search space."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.table = probs.log().log_softmax(-1)  # (kinds, vocab, vocab), rows renormalised
        self.rows_per_step: list[int] = []
        self.encoder_rows_per_step: list[int] = []

    def encode(self, src_ids, src_lengths, src_pad_mask):
        batch_size, src_len = src_ids.shape
        kind = src_ids[:, :1, None].float().expand(batch_size, src_len, 1)
        zeros = torch.zeros(2, batch_size, 1)
        return EncoderOutput(outputs=kind, keys=kind, pad_mask=src_pad_mask, final_h=zeros, final_c=zeros)

    def init_state(self, encoder_output):
        batch_size, src_len = encoder_output.pad_mask.shape
        zeros = torch.zeros(1, batch_size, 1)
        return DecoderState(h=zeros, c=zeros, input_feed=torch.zeros(batch_size, 1),
                            coverage=torch.zeros(batch_size, src_len))

    def step(self, prev_ids, state, encoder_output, src_ext_ids, max_oovs, *, beam_size=1):
        self.rows_per_step.append(prev_ids.shape[0])
        self.encoder_rows_per_step.append(encoder_output.keys.shape[0])
        kind = encoder_output.keys[:, 0, 0].long().repeat_interleave(beam_size)  # beams share a source
        log_probs = self.table[kind, prev_ids].clone()
        extra = log_probs.new_full((log_probs.shape[0], max_oovs), float("-inf"))
        attention = torch.zeros_like(state.coverage)
        return torch.cat([log_probs, extra], -1), state, attention, torch.ones(prev_ids.shape[0])


A, B, C, D, E, F = 4, 5, 6, 7, 8, 9


def markov_probs(kinds=1, vocab=10):
    """Unnormalised next-token probabilities, 1e-5 unless set."""
    return torch.full((kinds, vocab, vocab), 1e-5)


# -- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"beam_size": 0}, "beam_size"),
        ({"max_length": 0}, "max_length"),
        ({"min_length": 5, "max_length": 4}, "min_length"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
        ({"coverage_penalty": -0.5}, "coverage_penalty"),
    ],
)
def test_decode_config_rejects_bad_values(overrides, word):
    with pytest.raises(NlpLstmError, match=word):
        DecodeConfig(**overrides)


# -- agreement and invariances --------------------------------------------------------------------


def pick_model(name, request):
    """"trained": ends with EOS at varied lengths; the others run to max_length."""
    if name == "trained":
        return request.getfixturevalue("trained_model")
    if name == "random-general-nocopy":
        return make_model(attention="general", copy=False)
    return make_model(seed=3, peephole="diagonal")


@pytest.mark.parametrize(
    "name, rules",
    [
        ("trained", {}),
        ("trained", {"min_length": 3, "no_repeat_ngram_size": 2}),
        ("random-general-nocopy", {"min_length": 4, "no_repeat_ngram_size": 2}),
    ],
)
def test_beam_size_one_equals_greedy(name, rules, request):
    model = pick_model(name, request)
    batch = make_batch(random_sources(6, seed=1))
    greedy = greedy_decode(model, batch, max_length=12, **rules)
    settings = {"max_length": 12, "length_penalty": 0.0, "no_repeat_ngram_size": 0, **rules}
    config = DecodeConfig(beam_size=1, **settings)
    assert beam_search(model, batch, config) == greedy
    assert model.training  # decoding restored the mode


@pytest.mark.parametrize("name", ["trained", "random-general-nocopy"])
@pytest.mark.parametrize(
    "config",
    [
        DecodeConfig(beam_size=4, max_length=12),
        DecodeConfig(beam_size=3, max_length=10, min_length=3, length_penalty=0.6, coverage_penalty=0.2,
                     no_repeat_ngram_size=2),
    ],
)
def test_a_batch_decodes_like_its_examples_one_by_one(name, config, request):
    model = pick_model(name, request)
    sources = random_sources(5, seed=2)
    batched = beam_search(model, make_batch(sources), config)
    single = [beam_search(model, make_batch([source]), config)[0] for source in sources]
    assert batched == single
    reverse = beam_search(model, make_batch(sources[::-1]), config)
    assert batched == reverse[::-1]


@pytest.mark.parametrize("name", ["trained", "random-peephole"])
@pytest.mark.parametrize("decode", ["greedy", "beam"])
def test_padding_in_the_source_never_changes_the_output(name, decode, request):
    model = pick_model(name, request)
    sources = random_sources(4, seed=3, max_len=6)
    run = {
        "greedy": lambda batch: greedy_decode(model, batch, max_length=10),
        "beam": lambda batch: beam_search(model, batch, DecodeConfig(beam_size=4, max_length=10)),
    }[decode]
    alone = [run(make_batch([source]))[0] for source in sources]
    padded = run(make_batch(sources, pad_to=15))
    assert padded == alone


def wu_length_penalty(length, alpha):
    """Wu et al. 2016 eq. 14, as printed: lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha."""
    return (5 + length) ** alpha / (5 + 1) ** alpha


def wu_coverage_penalty(attention_rows, beta):
    """Wu et al. 2016 eq. 14: cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1.0)), where p_ij is the
    attention of output step j on source word i (a list of per-step lists over the real words)."""
    sources = len(attention_rows[0])
    return beta * sum(math.log(min(sum(row[i] for row in attention_rows), 1.0)) for i in range(sources))


def rescore(model, batch, tokens, *, max_length, alpha, beta):
    """Score one example's output by teacher forcing, independently of the search's bookkeeping:
    |Y| counts the output tokens, not the EOS (the `Hypothesis` docstring); the coverage sums the
    attention of every step that produced a token, the EOS step included."""
    ended_with_eos = len(tokens) < max_length
    inputs = [BOS_ID, *tokens]
    targets = [*tokens, EOS_ID] if ended_with_eos else tokens
    encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
    state = model.init_state(encoder_output)
    total, attention_rows = 0.0, []
    real = int(batch["src_lengths"][0])
    for prev, target in zip(inputs, targets):
        log_probs, state, attention, _ = model.step(
            torch.tensor([prev]), state, encoder_output, batch["src_ext_ids"], batch["max_oovs"]
        )
        total += float(log_probs[0, target])
        attention_rows.append(attention[0, :real].tolist())
    # Wu et al. leave log(0) implicit; the search floors the coverage at 1e-10 (never hit here).
    assert min(sum(row[i] for row in attention_rows) for i in range(real)) > 1e-10
    return total / wu_length_penalty(len(tokens), alpha) + wu_coverage_penalty(attention_rows, beta)


@pytest.mark.parametrize("name", ["trained", "random-general-nocopy"])
def test_beam_scores_match_teacher_forced_rescoring(name, request):
    # Catches beams whose decoder state, tokens and scores fall out of step when beams are reordered.
    model = pick_model(name, request).eval()
    sources = random_sources(4, seed=7)
    config = DecodeConfig(beam_size=4, max_length=9, length_penalty=1.0, coverage_penalty=0.3)
    hypotheses = beam_search_hypotheses(model, make_batch(sources), config)
    with torch.no_grad():
        for source, hypothesis in zip(sources, hypotheses):
            expected = rescore(
                model, make_batch([source]), hypothesis.tokens, max_length=9, alpha=1.0, beta=0.3
            )
            assert hypothesis.score == pytest.approx(expected, abs=1e-4)
    model.train()


def test_copy_and_coverage_work_inside_beam_search():
    # Copy-heavy model: p_gen near 0, so outputs are mostly pointed-at source tokens, OOVs included.
    model = make_model(seed=4)
    with torch.no_grad():
        model.pointer.proj.bias.fill_(-8.0)
    batch = make_batch([[5, VOCAB, 7, VOCAB + 1, 9], [10, 11, VOCAB]])
    outputs = beam_search(model, batch, DecodeConfig(beam_size=3, max_length=8, coverage_penalty=0.5))
    allowed = [set(source) for source in ([5, VOCAB, 7, VOCAB + 1, 9], [10, 11, VOCAB])]
    assert any(token >= VOCAB for output in outputs for token in output)
    # An extended id is only ever one of that example's own OOVs.
    for output, source in zip(outputs, allowed):
        assert all(token in source for token in output if token >= VOCAB)


# -- token rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_blocked_ngrams_never_repeat(n):
    model = make_model(seed=5, sharpness=8.0)
    batch = make_batch(random_sources(6, seed=5))
    unblocked = greedy_decode(model, batch, max_length=25)
    assert any(has_repeated_ngram(output, n) for output in unblocked)  # the test has teeth
    outputs = greedy_decode(model, batch, max_length=25, no_repeat_ngram_size=n)
    outputs += beam_search(model, batch, DecodeConfig(beam_size=3, max_length=25, no_repeat_ngram_size=n))
    for output in outputs:
        assert not has_repeated_ngram(output, n), output


@pytest.mark.parametrize("eos_bias, min_length, max_length", [(30.0, 5, 9), (-30.0, 2, 7), (30.0, 0, 4)])
def test_output_lengths_respect_min_and_max(eos_bias, min_length, max_length):
    model = make_model(seed=6)
    with torch.no_grad():
        model.generator.bias[EOS_ID] = eos_bias  # the model wants to stop at once, or never
    batch = make_batch(random_sources(4, seed=6))
    config = DecodeConfig(beam_size=3, min_length=min_length, max_length=max_length)
    for outputs in (
        beam_search(model, batch, config),
        greedy_decode(model, batch, min_length=min_length, max_length=max_length),
    ):
        expected = min_length if eos_bias > 0 else max_length
        assert [len(output) for output in outputs] == [expected] * 4
        assert all(token not in (PAD_ID, BOS_ID, EOS_ID) for output in outputs for token in output)


# -- scoring --------------------------------------------------------------------------------------


def test_length_penalty_changes_which_hypothesis_wins():
    # From BOS: A (0.55) or C (0.45). "A EOS" has the higher raw log-prob (about -0.70), but
    # "C D E F EOS" (about -0.84 over 4 tokens) wins once normalised by ((5 + 4) / 6) ** 1.
    probs = markov_probs()
    probs[0, BOS_ID, A], probs[0, BOS_ID, C] = 0.55, 0.45
    probs[0, A, EOS_ID] = 0.9
    for prev, nxt in ((C, D), (D, E), (E, F), (F, EOS_ID)):
        probs[0, prev, nxt] = 0.99
    model = MarkovModel(probs)
    batch = make_batch([[0, 5, 6]], vocab_size=10)

    def best(alpha):
        return beam_search(model, batch, DecodeConfig(beam_size=2, length_penalty=alpha, max_length=8))[0]

    assert best(0.0) == [A]
    assert best(1.0) == [C, D, E, F]
    assert greedy_decode(model, batch, max_length=8)[0] == [A]


def test_finished_examples_leave_the_active_rows():
    # Kind 0 ends after one token; kind 1 never ends before max_length.
    probs = markov_probs(kinds=2)
    probs[0, BOS_ID, A] = 1.0
    probs[0, A, EOS_ID] = 1.0
    probs[1, :, 4:] = 1.0  # uniform over ordinary tokens
    model = MarkovModel(probs)
    batch = make_batch([[0, 5], [1, 5, 6]], vocab_size=10)
    outputs = beam_search(model, batch, DecodeConfig(beam_size=3, max_length=8, no_repeat_ngram_size=0))
    assert outputs[0] == [A] and len(outputs[1]) == 8
    assert model.rows_per_step[:2] == [6, 6] and set(model.rows_per_step[2:]) == {3}
    # Beams read their example's one row of encoder output: it is never copied per beam.
    assert model.encoder_rows_per_step[:2] == [2, 2] and set(model.encoder_rows_per_step[2:]) == {1}


@pytest.mark.parametrize("length, alpha", [(0, 1.0), (1, 1.0), (4, 1.0), (3, 0.6), (10, 0.2), (7, 0.0)])
def test_length_penalty_is_wu_et_al_eq_14(length, alpha):
    assert length_penalty(length, alpha) == pytest.approx(wu_length_penalty(length, alpha), rel=1e-12)
    assert length_penalty(4, 1.0) == 1.5 and length_penalty(1, 2.0) == 1.0  # (9/6), (6/6)^2 by hand


def test_coverage_penalty_is_wu_et_al_eq_14():
    # Two real source words then padding; attention of 3 output steps: sums 0.9 and 2.1 (capped at 1).
    steps = [[0.5, 0.5, 0.0], [0.3, 0.7, 0.0], [0.1, 0.9, 0.0]]
    coverage = torch.tensor(steps).sum(0, keepdim=True)
    pad_mask = torch.tensor([[False, False, True]])
    expected = wu_coverage_penalty([row[:2] for row in steps], beta=0.4)
    assert expected == pytest.approx(0.4 * math.log(0.9))  # by hand: log(min(0.9, 1)) + log(min(2.1, 1))
    assert float(coverage_penalty(coverage, pad_mask, beta=0.4)) == pytest.approx(expected, rel=1e-6)


class CoveringMarkovModel(MarkovModel):
    """`MarkovModel` whose every step attends uniformly to the real source words, so the coverage
    after n steps is n / S at each of the S real positions: cp is computable by hand."""

    def step(self, prev_ids, state, encoder_output, src_ext_ids, max_oovs, *, beam_size=1):
        log_probs, _, _, p_gen = super().step(prev_ids, state, encoder_output, src_ext_ids, max_oovs,
                                              beam_size=beam_size)
        real = (~encoder_output.pad_mask).float().repeat_interleave(beam_size, dim=0)  # (rows, S)
        attention = real / real.sum(dim=1, keepdim=True)
        new_state = DecoderState(h=state.h, c=state.c, input_feed=state.input_feed,
                                 coverage=state.coverage + attention)
        return log_probs, new_state, attention, p_gen


def test_final_beam_scores_by_hand():
    # From BOS: A or C. "A EOS" is likelier than "C D E F EOS"; the table's rows are renormalised
    # over the 10 ids (8 of them at 1e-5), so each probability is p / (1 + 8e-5).
    probs = markov_probs()
    probs[0, BOS_ID, A], probs[0, BOS_ID, C] = 0.55, 0.45
    probs[0, A, EOS_ID] = 1.0 - 9e-5
    for prev, nxt in ((C, D), (D, E), (E, F), (F, EOS_ID)):
        probs[0, prev, nxt] = 1.0 - 9e-5
    row_sum = 1.0 + 8e-5
    log_short = math.log(0.55 / row_sum) + math.log((1.0 - 9e-5) / 1.0)  # "A EOS"
    log_long = math.log(0.45 / row_sum) + 4 * math.log((1.0 - 9e-5) / 1.0)  # "C D E F EOS"
    source = [0, 5, 6, 7]  # kind 0; S = 4 real words; a second example pads this one's row
    batch = make_batch([source, [0, 5, 6, 7, 8, 9]], vocab_size=10)

    def best(model, **settings):
        config = DecodeConfig(beam_size=2, max_length=8, no_repeat_ngram_size=0, **settings)
        return beam_search_hypotheses(model, batch, config)[0]

    # alpha = 1: |Y| = 1 vs 4 (EOS not counted): lp = 6/6 and 9/6, so the long one wins. Counting
    # the EOS (lp 7/6 and 10/6) would give other scores.
    found = best(MarkovModel(probs), length_penalty=1.0)
    assert found.tokens == [C, D, E, F]
    assert found.score == pytest.approx(log_long / 1.5, abs=1e-5)
    assert best(MarkovModel(probs), length_penalty=0.0).score == pytest.approx(log_short, abs=1e-5)
    assert best(MarkovModel(probs), length_penalty=2.0).score == pytest.approx(log_long / 1.5**2, abs=1e-5)

    # Coverage (alpha = 0): "A EOS" attends for 2 steps, coverage 2/4 at each real word:
    # cp = 0.3 * 4 * log(0.5). "C D E F EOS" attends for 5 steps: 5/4, capped at 1: cp = 0.
    # Padding of the first example (2 positions, coverage 0) must not count.
    short = log_short + 0.3 * 4 * math.log(0.5)
    assert short < log_long < log_short
    found = best(CoveringMarkovModel(probs), length_penalty=0.0, coverage_penalty=0.3)
    assert found.tokens == [C, D, E, F] and found.score == pytest.approx(log_long, abs=1e-5)
    found = best(CoveringMarkovModel(probs), length_penalty=0.0, coverage_penalty=0.05)
    assert found.tokens == [A] and found.score == pytest.approx(log_short + 0.05 * 4 * math.log(0.5), abs=1e-5)


def test_coverage_penalty_ignores_padding_and_rewards_full_coverage():
    coverage = torch.tensor([[1.5, 1.0, 0.0], [0.5, 1.0, 0.0]])
    pad_mask = torch.tensor([[False, False, True], [False, False, True]])
    penalties = coverage_penalty(coverage, pad_mask, beta=0.2)
    torch.testing.assert_close(penalties, torch.tensor([0.0, 0.2 * torch.log(torch.tensor(0.5)).item()]))
    assert torch.equal(coverage_penalty(coverage, pad_mask, beta=0.0), torch.zeros(2))

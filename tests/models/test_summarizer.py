"""Summarizer: shapes, masking, padding invariance, copy, coverage, overfitting a tiny batch."""

import pytest
import torch

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nlp_lstm.decoding.greedy import greedy_decode
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from nlp_lstm.nn import attention as attention_module
from nlp_lstm.nn.attention import ATTENTION

VOCAB = 30


def make_batch(sources, targets=None, *, vocab_size=VOCAB, pad_to=None):
    """A batch dict like the data layer's, from lists of extended ids (>= vocab_size: source OOV)."""
    lengths = torch.tensor([len(s) for s in sources])
    src_len = max(pad_to or 0, int(lengths.max()))
    src_ext_ids = torch.full((len(sources), src_len), PAD_ID)
    for row, source in enumerate(sources):
        src_ext_ids[row, : len(source)] = torch.tensor(source)
    batch = {
        "src_ids": src_ext_ids.masked_fill(src_ext_ids >= vocab_size, UNK_ID),
        "src_ext_ids": src_ext_ids,
        "src_lengths": lengths,
        "src_pad_mask": torch.arange(src_len) >= lengths.unsqueeze(1),
        "max_oovs": max(0, int(src_ext_ids.max()) - vocab_size + 1),
    }
    if targets is not None:
        tgt_lengths = torch.tensor([len(t) + 1 for t in targets])
        tgt_len = int(tgt_lengths.max())
        dec_input_ids = torch.full((len(targets), tgt_len), PAD_ID)
        target_ids = torch.full((len(targets), tgt_len), PAD_ID)
        for row, target in enumerate(targets):
            dec_input_ids[row, : len(target) + 1] = torch.tensor([BOS_ID, *target])
            target_ids[row, : len(target) + 1] = torch.tensor([*target, EOS_ID])
        batch["dec_input_ids"] = dec_input_ids.masked_fill(dec_input_ids >= vocab_size, UNK_ID)
        batch["target_ids"] = target_ids
        batch["tgt_pad_mask"] = torch.arange(tgt_len) >= tgt_lengths.unsqueeze(1)
    return batch


def tiny_config(**overrides) -> SummarizerConfig:
    settings = dict(vocab_size=VOCAB, embedding_dim=16, hidden_size=16, dropout=0.0)
    settings.update(overrides)
    return SummarizerConfig(**settings)


def random_sources(count, *, generator, min_len=4, max_len=8):
    return [
        torch.randint(4, VOCAB, (int(torch.randint(min_len, max_len + 1, (1,), generator=generator)),),
                      generator=generator).tolist()
        for _ in range(count)
    ]


def train(model, batch, *, steps, lr=0.02):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# -- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"attention": "dot"}, "attention"),
        ({"peephole": "some"}, "peephole"),
        ({"vocab_size": 4}, "vocab_size"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"copy": "yes"}, "copy"),
    ],
)
def test_config_rejects_bad_values_with_a_message_naming_them(overrides, word):
    with pytest.raises(NlpLstmError, match=word):
        tiny_config(**overrides)


# -- attention ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ATTENTION))
@pytest.mark.parametrize("coverage", [False, True])
def test_attention_gives_padding_exactly_zero_weight(kind, coverage):
    attention = ATTENTION[kind](8, 6, coverage=coverage)
    values = torch.randn(3, 5, 6)
    pad_mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] + [True] * 4])
    keys = attention.project_keys(values)
    context, weights = attention(torch.randn(3, 8), keys, values, pad_mask, coverage=torch.rand(3, 5))
    assert context.shape == (3, 6) and weights.shape == (3, 5)
    assert torch.all(weights[pad_mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    torch.testing.assert_close(weights[2, 0], torch.tensor(1.0))


def test_coverage_changes_attention_only_when_enabled():
    values, query = torch.randn(2, 5, 6), torch.randn(2, 8)
    pad_mask = torch.zeros(2, 5, dtype=torch.bool)
    for coverage_on in (False, True):
        attention = ATTENTION["additive"](8, 6, coverage=coverage_on)
        keys = attention.project_keys(values)
        _, without = attention(query, keys, values, pad_mask, coverage=torch.zeros(2, 5))
        _, with_coverage = attention(query, keys, values, pad_mask, coverage=torch.rand(2, 5) * 3)
        assert torch.equal(without, with_coverage) != coverage_on


@pytest.mark.parametrize("kind", sorted(ATTENTION))
@pytest.mark.parametrize("grad", [False, True])
def test_beams_sharing_a_source_attend_bit_for_bit_like_per_beam_copies(kind, grad, monkeypatch):
    # Small chunks, so that the in-place scoring without autograd runs over several of them.
    monkeypatch.setattr(attention_module, "SCORE_CHUNK_POSITIONS", 30)
    attention = ATTENTION[kind](8, 6, coverage=True)
    if kind == "general":
        with torch.no_grad():
            attention.coverage_weight.fill_(0.7)  # starts at 0; make coverage count
    beams, values = 4, torch.randn(3, 5, 6)
    pad_mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] + [True] * 4])
    query, coverage = torch.randn(3 * beams, 8), torch.rand(3 * beams, 5)
    rows = torch.arange(3).repeat_interleave(beams)
    keys = attention.project_keys(values).detach()
    # Reference: every beam with its own copy of the source, through the autograd code path.
    copied = attention(query, keys[rows], values[rows], pad_mask[rows], coverage=coverage)
    with torch.set_grad_enabled(grad):
        shared = attention(query, keys, values, pad_mask, coverage=coverage, beam_size=beams)
    assert shared[0].shape == (3 * beams, 6) and shared[1].shape == (3 * beams, 5)
    assert torch.equal(shared[0], copied[0]) and torch.equal(shared[1], copied[1])


# -- one step -------------------------------------------------------------------------------------


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("attention", sorted(ATTENTION))
def test_step_returns_a_distribution_over_the_extended_vocabulary(copy, attention):
    model = Summarizer(tiny_config(copy=copy, attention=attention, coverage=True, decoder_layers=2))
    # Example 0 has OOVs VOCAB, VOCAB+1; example 1 has none, so its extended slots are unreachable.
    batch = make_batch([[5, VOCAB, 7, VOCAB + 1, VOCAB], [8, 9, 10]])
    encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
    state = model.init_state(encoder_output)
    assert state.h.shape == (2, 2, 16) and state.coverage.shape == (2, 5)
    prev_ids = torch.tensor([BOS_ID, VOCAB])  # an extended id is read as UNK
    log_probs, state, attention_weights, p_gen = model.step(
        prev_ids, state, encoder_output, batch["src_ext_ids"], batch["max_oovs"]
    )
    assert log_probs.shape == (2, VOCAB + 2)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2))
    assert torch.all(attention_weights[batch["src_pad_mask"]] == 0)
    torch.testing.assert_close(state.coverage, attention_weights)
    assert log_probs[1, VOCAB:].eq(float("-inf")).all()
    # A second step: coverage accumulates (See eq. 10) and the input feed carries h~_t (Luong 3.3).
    next_ids = torch.tensor([5, 6])
    second, state2, attention2, _ = model.step(
        next_ids, state, encoder_output, batch["src_ext_ids"], batch["max_oovs"]
    )
    torch.testing.assert_close(state2.coverage, attention_weights + attention2)
    state.input_feed = torch.zeros_like(state.input_feed)
    without_feed = model.step(next_ids, state, encoder_output, batch["src_ext_ids"], batch["max_oovs"])[0]
    assert not torch.allclose(second, without_feed)
    if copy:
        assert torch.isfinite(log_probs[0]).all()
        assert ((p_gen > 0) & (p_gen < 1)).all()
    else:
        assert log_probs[0, VOCAB:].eq(float("-inf")).all()
        assert torch.equal(p_gen, torch.ones(2))


@pytest.mark.parametrize("copy", [True, False])
def test_step_with_beams_sharing_the_encoder_output_matches_per_beam_copies(copy):
    model = Summarizer(tiny_config(copy=copy, coverage=True, decoder_layers=2)).eval()
    # Example 0 has OOVs VOCAB, VOCAB+1; example 1 has none, so its extended slots stay unreachable.
    batch = make_batch([[5, VOCAB, 7, VOCAB + 1, VOCAB], [8, 9, 10]])
    beams = 3
    rows = torch.arange(2).repeat_interleave(beams)
    src_ext_ids, max_oovs = batch["src_ext_ids"], batch["max_oovs"]
    with torch.no_grad():
        encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
        copied_encoder = encoder_output.index_select(rows)
        state = model.init_state(encoder_output).index_select(rows)
        prev_ids = torch.tensor([BOS_ID, 5, VOCAB, BOS_ID, 8, 9])
        for _ in range(3):
            shared = model.step(prev_ids, state, encoder_output, src_ext_ids, max_oovs, beam_size=beams)
            copied = model.step(prev_ids, state, copied_encoder, src_ext_ids[rows], max_oovs)
            for a, b in zip((shared[0], *shared[2:]), (copied[0], *copied[2:])):
                assert torch.equal(a, b)
            for name in ("h", "c", "input_feed", "coverage"):
                assert torch.equal(getattr(shared[1], name), getattr(copied[1], name))
            assert shared[0][beams:, VOCAB:].eq(float("-inf")).all()
            state, prev_ids = shared[1], shared[0].argmax(dim=-1)


def test_step_reads_extended_previous_ids_as_unk():
    model = Summarizer(tiny_config())
    batch = make_batch([[5, VOCAB, 7]])
    encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
    state = model.init_state(encoder_output)
    outputs = [
        model.step(torch.tensor([token]), state, encoder_output, batch["src_ext_ids"], 1)[0]
        for token in (VOCAB, UNK_ID)
    ]
    torch.testing.assert_close(outputs[0], outputs[1])


@pytest.mark.parametrize(
    "overrides",
    [
        {"attention": "additive", "coverage": True},
        {"attention": "general", "coverage": True, "encoder_layers": 2},
        {"attention": "additive", "copy": False, "peephole": "diagonal"},
    ],
)
def test_padding_in_the_source_never_changes_log_probs(overrides):
    model = Summarizer(tiny_config(**overrides)).eval()
    example, target = [6, VOCAB, 9, 11], [VOCAB, 9, 12]
    others = [[7, 8, 9, 10, 11, 12, 13, 14, 15], [VOCAB, VOCAB + 1, VOCAB + 2, 5, 6, 7]]
    alone = make_batch([example], [target])
    together = make_batch([*others, example], [[4, 5], [6, 7, 8, 9], target], pad_to=12)

    def run(batch, row):
        encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
        state = model.init_state(encoder_output)
        steps = []
        for t in range(len(target) + 1):
            log_probs, state, attention, _ = model.step(
                batch["dec_input_ids"][:, t], state, encoder_output, batch["src_ext_ids"], batch["max_oovs"]
            )
            steps.append((log_probs[row, : VOCAB + 1], attention[row], state.coverage[row]))
        return steps

    with torch.no_grad():
        for (lp1, a1, c1), (lp2, a2, c2) in zip(run(alone, 0), run(together, 2)):
            torch.testing.assert_close(lp1, lp2, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a1, a2[:4], atol=1e-6, rtol=1e-5)
            assert torch.all(a2[4:] == 0) and torch.all(c2[4:] == 0)
            torch.testing.assert_close(c1, c2[:4], atol=1e-6, rtol=1e-5)


# -- loss -----------------------------------------------------------------------------------------


def test_forward_loss_is_nll_plus_weighted_coverage_loss():
    model = Summarizer(tiny_config(coverage=True))
    generator = torch.Generator().manual_seed(3)
    sources = random_sources(3, generator=generator)
    batch = make_batch(sources, [s[:2] for s in sources[:2]] + [sources[2][:4]])
    out = model(batch)
    assert out["num_tokens"] == 3 + 3 + 5
    assert out["coverage_loss"] > 0
    torch.testing.assert_close(out["loss"], out["nll"])  # coverage_weight starts at 0
    model.coverage_weight = 0.5
    weighted = model(batch)
    torch.testing.assert_close(weighted["loss"], weighted["nll"] + 0.5 * weighted["coverage_loss"])
    weighted["loss"].backward()
    assert model.attention.coverage_proj.weight.grad.abs().sum() > 0


def coverage_reference(model, batch):
    """NLL and coverage loss recomputed step by step from `model.step` (See et al. 2017 eqs. 10-13):
    c^t = sum_{t' < t} a^{t'} (built here from the attention, not read from the model's state),
    covloss_t = sum_i min(a_i^t, c_i^t); both averaged over the real target tokens of the batch."""
    encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
    state = model.init_state(encoder_output)
    rows, steps = batch["dec_input_ids"].shape
    coverage = [[0.0] * batch["src_ids"].shape[1] for _ in range(rows)]
    nll_sum = coverage_sum = 0.0
    tokens = 0
    for t in range(steps):
        log_probs, state, attention, _ = model.step(
            batch["dec_input_ids"][:, t], state, encoder_output, batch["src_ext_ids"], batch["max_oovs"]
        )
        for row in range(rows):
            weights = attention[row].tolist()
            if not batch["tgt_pad_mask"][row, t]:
                nll_sum -= float(log_probs[row, batch["target_ids"][row, t]])
                coverage_sum += sum(min(a, c) for a, c in zip(weights, coverage[row]))
                tokens += 1
            coverage[row] = [c + a for c, a in zip(coverage[row], weights)]
    return nll_sum / tokens, coverage_sum / tokens, tokens


@pytest.mark.parametrize("attention", sorted(ATTENTION))
def test_coverage_loss_matches_a_step_by_step_recomputation(attention):
    model = Summarizer(tiny_config(coverage=True, attention=attention)).eval()
    if attention == "general":
        with torch.no_grad():
            model.attention.coverage_weight.fill_(-1.5)  # starts at 0: make coverage steer attention
    generator = torch.Generator().manual_seed(5)
    sources = random_sources(3, generator=generator, min_len=3, max_len=6)
    # Targets of 2, 5 and 3 tokens (+ EOS): padded steps must count in neither sum nor mean.
    batch = make_batch(sources, [sources[0][:2], [*sources[1], 7][:5], sources[2][:3]])
    model.coverage_weight = 0.7
    with torch.no_grad():
        out = model(batch)
        nll, coverage_loss, tokens = coverage_reference(model, batch)
    assert out["num_tokens"] == tokens == 3 + 6 + 4
    assert float(out["coverage_loss"]) == pytest.approx(coverage_loss, rel=1e-5)
    assert float(out["nll"]) == pytest.approx(nll, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(nll + 0.7 * coverage_loss, rel=1e-5)
    assert 0.1 < coverage_loss < 1.0  # not degenerate: the attention of later steps overlaps c^t


def test_coverage_loss_of_uniform_attention_by_hand():
    # With v = 0 every additive score is 0, so each step attends uniformly over the S real source
    # words: a_i^t = 1/S and c_i^t = t/S, so covloss_t = S * min(1/S, t/S) = 0 at t = 0, else 1.
    # Targets of 2 and 4 tokens decode 3 and 5 steps (EOS included): (0+1+1 + 0+1+1+1+1) / 8.
    model = Summarizer(tiny_config(coverage=True)).eval()
    with torch.no_grad():
        model.attention.v.weight.zero_()
    batch = make_batch([[5, 6, 7], [8, 9, 10, 11, 12]], [[5, 6], [8, 9, 10, 11]])
    model.coverage_weight = 0.5
    with torch.no_grad():
        out = model(batch)
    assert float(out["coverage_loss"]) == pytest.approx(6 / 8, rel=1e-6)
    assert float(out["loss"]) == pytest.approx(float(out["nll"]) + 0.5 * 6 / 8, rel=1e-6)


def test_forward_ignores_padded_target_steps():
    model = Summarizer(tiny_config()).eval()
    short = make_batch([[5, 6, 7]], [[5, 6]])
    padded = make_batch([[5, 6, 7], [8, 9, 10]], [[5, 6], [8, 9, 10, 11, 12]])
    with torch.no_grad():
        alone = model(short)["nll"]
        # Mean over the first example's 3 tokens = (batch nll * tokens - second example's part) / 3.
        both = model(padded)
        second = model(make_batch([[8, 9, 10]], [[8, 9, 10, 11, 12]]))["nll"]
    torch.testing.assert_close(both["nll"] * 9, alone * 3 + second * 6, atol=1e-5, rtol=1e-5)


def test_without_copy_an_oov_target_is_learned_as_unk():
    model = Summarizer(tiny_config(copy=False))
    out = model(make_batch([[5, VOCAB, 7]], [[VOCAB]]))
    assert torch.isfinite(out["loss"])


# -- learning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", sorted(ATTENTION))
def test_overfits_a_small_batch_and_greedy_reproduces_the_targets(attention):
    generator = torch.Generator().manual_seed(1)
    sources = random_sources(8, generator=generator)
    targets = [list(reversed(s[:3])) for s in sources]
    batch = make_batch(sources, targets)
    model = Summarizer(tiny_config(attention=attention, coverage=True))
    losses = train(model, batch, steps=120)
    assert losses[-1] < 0.05 * losses[0]
    assert greedy_decode(model, batch, max_length=6) == targets
    assert model.training  # decoding restored the mode


def test_copy_learns_to_emit_source_oovs():
    # Targets are the first 3 source tokens; one or two of them are OOV (UNK in src_ids), so they can
    # only be produced by pointing at them through the extended ids.
    generator = torch.Generator().manual_seed(2)
    sources = random_sources(8, generator=generator, min_len=5)
    for row, source in enumerate(sources):
        source[row % 3] = VOCAB + row % 2
        source[(row + 1) % 3] = VOCAB + 1 - row % 2
        if row % 4 == 0:
            source[(row + 2) % 3] = VOCAB + 2
    targets = [s[:3] for s in sources]
    batch = make_batch(sources, targets)
    decoded = {}
    for copy in (True, False):
        torch.manual_seed(0)
        model = Summarizer(tiny_config(copy=copy))
        train(model, batch, steps=150)
        decoded[copy] = greedy_decode(model, batch, max_length=5)
    assert decoded[True] == targets
    assert max(max(d) for d in decoded[True]) >= VOCAB
    assert all(token < VOCAB for d in decoded[False] for token in d)  # no copy: no extended ids

"""The faster decoding path gives today's results bit for bit.

`frozen_beam_search.py` holds beam search and `Summarizer.step` as they were before the speed work
(commit e874e3c). Every test here runs the library and that frozen copy on the same seeded model and
batch, and asserts equality: the same hypotheses and the same float scores, not merely close ones.
"""

import functools
import math

import pytest
import torch

from nlp_lstm.data.specials import EOS_ID, PAD_ID, UNK_ID
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search_hypotheses
from nlp_lstm.decoding.topk import BLOCK, top_k
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from tests.decoding.frozen_beam_search import reference_beam_search, reference_step
from tests.helpers import add_copy_half_targets

# Wide enough that the blocked top-k (beam_size x vocab candidates per example) takes its fast path.
VOCAB = 2000


def make_batch(count, *, seed, min_len=4, max_len=30, oov_rate=0.15):
    """Random sources of ragged lengths with source OOVs (extended ids >= VOCAB)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=generator)
    src_len = int(lengths.max())
    src_ext_ids = torch.randint(4, VOCAB, (count, src_len), generator=generator)
    oov = torch.rand(count, src_len, generator=generator) < oov_rate
    src_ext_ids[oov] = VOCAB + torch.randint(0, 4, (int(oov.sum()),), generator=generator)
    pad_mask = torch.arange(src_len) >= lengths.unsqueeze(1)
    src_ext_ids[pad_mask] = PAD_ID
    return {
        "src_ids": src_ext_ids.masked_fill(src_ext_ids >= VOCAB, UNK_ID),
        "src_ext_ids": src_ext_ids,
        "src_lengths": lengths,
        "src_pad_mask": pad_mask,
        "max_oovs": max(0, int(src_ext_ids.max()) - VOCAB + 1),
    }


def make_model(*, seed, **overrides):
    """A seeded random summarizer: a sharpened output layer (clear-cut choices, like a trained one)
    and an EOS bias that wins after a step, a few, or never."""
    torch.manual_seed(seed)
    settings = dict(vocab_size=VOCAB, embedding_dim=16, hidden_size=24, dropout=0.1, coverage=True)
    settings.update(overrides)
    model = Summarizer(SummarizerConfig(**settings))
    with torch.no_grad():
        model.generator.weight.mul_(6.0)
        model.generator.bias[EOS_ID] += 5.0
    return model


@pytest.fixture(scope="module")
def trained_model():
    """A tiny summarizer trained to copy the first half of its source (OOVs included): on new
    sources it stops at varied lengths and copies, as a real one does."""
    torch.manual_seed(0)
    model = Summarizer(SummarizerConfig(vocab_size=VOCAB, embedding_dim=16, hidden_size=16, dropout=0.0,
                                        coverage=True))  # fmt: skip
    batch = make_batch(8, seed=11, max_len=12)
    sources = [row[: int(length)].tolist() for row, length in zip(batch["src_ext_ids"], batch["src_lengths"])]
    add_copy_half_targets(batch, sources, VOCAB)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(30):
        optimizer.zero_grad()
        model(batch)["loss"].backward()
        optimizer.step()
    return model


MODELS = {
    "additive-copy-coverage": {},
    "general-copy-coverage": {"attention": "general"},
    "additive-nocopy": {"copy": False, "coverage": False},
    "additive-copy-2layers": {"decoder_layers": 2, "encoder_layers": 2},
}


def pick_model(name, request):
    if name == "trained":
        return request.getfixturevalue("trained_model")
    return make_model(seed=sorted(MODELS).index(name), **MODELS[name])
CONFIGS = [
    DecodeConfig(beam_size=4, max_length=14),
    DecodeConfig(beam_size=3, max_length=10, min_length=3, length_penalty=0.6, coverage_penalty=0.2,
                 no_repeat_ngram_size=2),
    DecodeConfig(beam_size=5, max_length=12, length_penalty=0.0, no_repeat_ngram_size=0),
    DecodeConfig(beam_size=4, max_length=8, min_length=0, coverage_penalty=0.5),
]


def frozen(model, batch, config):
    return reference_beam_search(model, batch, config, step=functools.partial(reference_step, model))


@pytest.mark.parametrize("name", ["trained", *sorted(MODELS)])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"beam{c.beam_size}-max{c.max_length}")
def test_beam_search_gives_the_frozen_hypotheses_and_scores(name, config, request):
    model = pick_model(name, request)
    batch = make_batch(12, seed=7)
    got = beam_search_hypotheses(model, batch, config)
    want = frozen(model, batch, config)
    assert [h.tokens for h in got] == [tokens for tokens, _ in want]
    assert [h.score for h in got] == [score for _, score in want]  # exact floats, not approx


def test_batch_of_one_gives_the_frozen_hypotheses_and_scores(trained_model):
    # One example: 4 beam rows, where BLAS takes other kernels than at 48 rows.
    model = trained_model
    config = CONFIGS[0]
    for seed in range(4):
        batch = make_batch(1, seed=seed)
        got = beam_search_hypotheses(model, batch, config)
        assert [(h.tokens, h.score) for h in got] == frozen(model, batch, config)


def test_the_parity_cases_end_at_varied_lengths_and_copy(trained_model):
    # Guards the tests above: a model that always ran to max_length, or never copied, would leave
    # the finishing, pruning and extended-vocabulary code unexercised.
    hypotheses = beam_search_hypotheses(trained_model, make_batch(12, seed=7), CONFIGS[0])
    lengths = {len(h.tokens) for h in hypotheses}
    assert len(lengths) >= 3 and max(lengths) < CONFIGS[0].max_length
    assert any(token >= VOCAB for h in hypotheses for token in h.tokens)


def test_the_blocked_top_k_path_runs_in_the_parity_cases(monkeypatch, trained_model):
    # The wide candidate rows of beam search must be served by the blocked path (which calls
    # torch.topk only on narrow pools), or the tests above would not cover it.
    widths = []
    original = torch.Tensor.topk

    def recording(self, *args, **kwargs):
        widths.append(self.shape[-1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "topk", recording)
    beam_search_hypotheses(trained_model, make_batch(12, seed=7), CONFIGS[0])
    full_width = CONFIGS[0].beam_size * (VOCAB + make_batch(12, seed=7)["max_oovs"])
    assert widths and full_width not in widths


@pytest.mark.parametrize("name", ["trained", *sorted(MODELS)])
@pytest.mark.parametrize("grad", [False, True])
def test_step_outputs_are_the_frozen_steps_bit_for_bit(name, grad, request):
    model = pick_model(name, request).eval()
    batch = make_batch(5, seed=3)
    beams = 3
    with torch.no_grad():
        encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
        state = model.init_state(encoder_output).index_select(torch.arange(5).repeat_interleave(beams))
    prev_ids = torch.randint(0, VOCAB + batch["max_oovs"], (5 * beams,))
    with torch.set_grad_enabled(grad):
        for _ in range(3):  # later steps read a coverage and an input feed that are no longer zero
            kwargs = dict(prev_ids=prev_ids, state=state, encoder_output=encoder_output,
                          src_ext_ids=batch["src_ext_ids"], max_oovs=batch["max_oovs"], beam_size=beams)
            got = model.step(**kwargs)
            want = reference_step(model, **kwargs)
            for a, b in zip(got[:1] + got[2:], want[:1] + want[2:]):
                assert torch.equal(a, b)
            for field in ("h", "c", "input_feed", "coverage"):
                assert torch.equal(getattr(got[1], field), getattr(want[1], field))
            state = got[1]
            prev_ids = got[0].detach().argmax(dim=-1)


# -- the blocked top-k on its own ---------------------------------------------------------------------


def random_rows(rows, width, *, seed, spread=3.0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, width, generator=generator) * spread
    return torch.log_softmax(logits, dim=-1) + torch.randn(rows, 1, generator=generator)


def assert_same_as_torch(candidates, k):
    values, indices = top_k(candidates, k)
    reference = candidates.topk(k, dim=1)
    assert torch.equal(indices, reference.indices)
    assert torch.equal(values, reference.values) or torch.equal(values.isnan(), reference.values.isnan())


@pytest.mark.parametrize("k", [1, 2, 8, 10])
@pytest.mark.parametrize("width", [BLOCK * 64, 32_020, 9_000])
def test_top_k_equals_torch_topk_on_distinct_values(width, k):
    assert_same_as_torch(random_rows(16, width, seed=width + k), k)


def test_top_k_finds_winners_in_the_tail_past_the_last_whole_block():
    candidates = random_rows(6, 64 * BLOCK + 20, seed=1)
    candidates[:, -20:] += 50.0  # every winner sits in the partial block at the end
    assert_same_as_torch(candidates, 8)
    assert bool((top_k(candidates, 8)[1] >= 64 * BLOCK).all())


@pytest.mark.parametrize(
    "damage",
    [
        "rounded",  # many exact ties everywhere
        "ties-at-top",  # the best value repeated in several blocks
        "minus-inf-row",  # a row of -inf (an empty beam slot)
        "nan",  # one NaN: torch.topk ranks it first
        "tie-at-k",  # the k-th value repeated in a block left out of the pool
    ],
)
def test_top_k_gives_torch_topk_order_when_values_tie(damage):
    candidates = random_rows(8, 100 * BLOCK + 5, seed=2)
    if damage == "rounded":
        candidates = candidates.round(decimals=1)
    elif damage == "ties-at-top":
        candidates[:, [3, 700, 4100, 6000]] = candidates.max() + 1.0
    elif damage == "minus-inf-row":
        candidates[2] = -math.inf
    elif damage == "nan":
        candidates[5, 1234] = math.nan
    else:
        # Blocks 0..8 hold values 12..4, block 0 also 11.5, so the 8th best is 5 (block 7) and the
        # 9th is 4.5 twice: in block 8 (kept) and in block 20 (left out). torch.topk's 8 are unique.
        candidates[:, :] = -20.0
        candidates[:, torch.arange(9) * BLOCK] = torch.arange(12, 3, -1).float()
        candidates[:, 1] = 11.5
        candidates[:, 8 * BLOCK + 1] = 4.5
        candidates[:, 20 * BLOCK] = 4.5
    assert_same_as_torch(candidates, 8)


@pytest.mark.parametrize("kind", ["additive", "general"])
@pytest.mark.parametrize("size", [8, 128])
def test_attention_without_autograd_is_the_frozen_attention_at_many_shapes(kind, size, monkeypatch):
    # The in-place scoring (chunks, the coverage term as a batched product) must round exactly as
    # before at any batch, beam count, source length and width, in one chunk or several.
    from nlp_lstm.nn import attention as attention_module
    from nlp_lstm.nn.attention import ATTENTION
    from tests.decoding.frozen_beam_search import _attend

    torch.manual_seed(size)
    attention = ATTENTION[kind](size, 2 * size, coverage=True).eval()
    if kind == "general":
        with torch.no_grad():
            attention.coverage_weight.fill_(0.7)
    for chunk in (3200, 50):
        monkeypatch.setattr(attention_module, "SCORE_CHUNK_POSITIONS", chunk)
        for batch_size, beams, src_len in [(1, 4, 100), (3, 1, 7), (5, 3, 33), (9, 5, 1), (32, 4, 60)]:
            values = torch.randn(batch_size, src_len, 2 * size)
            pad_mask = torch.arange(src_len) >= torch.randint(1, src_len + 1, (batch_size, 1))
            query = torch.randn(batch_size * beams, size)
            coverage = torch.rand(batch_size * beams, src_len) * 3
            with torch.no_grad():
                keys = attention.project_keys(values)
                got = attention(query, keys, values, pad_mask, coverage=coverage, beam_size=beams)
                want = _attend(attention, query, keys, values, pad_mask, coverage, beams)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])

"""LanguageModel: framing, losses against a hand computation, padding invariance, overfitting, sampling."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig, frame_with_specials, softmax_candidates

NO_DROPOUT = dict(embedding_dropout=0.0, input_dropout=0.0, hidden_dropout=0.0, weight_drop=0.0, output_dropout=0.0)


def _batch(rows: list[list[int]], *, fill: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded `(B, T)` ids (padding set to `fill`), lengths `(B,)`, pad_mask `(B, T)`."""
    time = max(len(row) for row in rows)
    ids = torch.full((len(rows), time), fill, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    lengths = torch.tensor([len(row) for row in rows])
    return ids, lengths, torch.arange(time) >= lengths.unsqueeze(1)


def test_frame_with_specials_puts_bos_first_and_eos_after_each_row():
    ids, lengths, _ = _batch([[7, 8, 9], [5], []], fill=6)
    assert frame_with_specials(ids, lengths).tolist() == [
        [BOS_ID, 7, 8, 9, EOS_ID],
        [BOS_ID, 5, EOS_ID, PAD_ID, PAD_ID],
        [BOS_ID, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
    ]


# -- the loss against an independent computation -------------------------------------------------


def _reference_nll(model: LanguageModel, row: list[int], columns: dict[str, list[int]] | None = None) -> tuple[float, float]:
    """Forward and backward summed NLL of one text, computed with torch.nn.LSTM and log-sum-exp
    (over the vocabulary ids `columns[direction]` only, when given)."""
    config = model.config
    embedding = model.embedding.weight.detach()

    @torch.no_grad()
    def direction_nll(layers, output, inputs, targets, kept=None) -> float:
        hidden = embedding[torch.tensor(inputs)].unsqueeze(0)  # (1, n+1, E)
        for layer in layers:
            reference = torch.nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True)
            reference.load_state_dict({name: value.detach() for name, value in layer.state_dict().items()})
            hidden, _ = reference(hidden)
        hidden = hidden[0]  # (n+1, H)
        if config.tie_weights:
            if output.projection is not None:
                hidden = hidden @ output.projection.weight.detach().T
            logits = hidden @ embedding.T + output.bias.detach()
        else:
            logits = hidden @ output.decoder.weight.detach().T + output.decoder.bias.detach()
        log_z = torch.logsumexp(logits if kept is None else logits[:, kept], dim=-1)
        return float(sum(log_z[t] - logits[t, target] for t, target in enumerate(targets)))

    columns = columns or {}
    framed = [BOS_ID, *row, EOS_ID]
    forward = direction_nll(model.forward_layers, model.forward_output, framed[:-1], framed[1:], columns.get("forward"))
    # The backward model reads <eos> x_n .. x_1 and predicts x_n .. x_1 <bos>.
    backward = direction_nll(model.backward_layers, model.backward_output, framed[::-1][:-1], framed[::-1][1:],
                             columns.get("backward"))
    return forward, backward


@pytest.mark.parametrize(
    "sizes",
    [
        dict(embedding_dim=5, hidden_size=5, num_layers=1, tie_weights=True),
        dict(embedding_dim=5, hidden_size=7, num_layers=2, tie_weights=True),  # projection H -> E
        dict(embedding_dim=5, hidden_size=6, num_layers=1, tie_weights=False),
    ],
)
def test_losses_equal_a_hand_computed_cross_entropy(sizes):
    model = LanguageModel(LanguageModelConfig(vocab_size=9, **sizes, **NO_DROPOUT)).eval()
    rows = [[4, 5, 6, 7], [8, 4], []]
    ids, lengths, pad_mask = _batch(rows)
    result = model(ids, lengths, pad_mask)
    expected = [_reference_nll(model, row) for row in rows]
    forward = sum(f for f, _ in expected)
    backward = sum(b for _, b in expected)
    assert result["forward_nll_sum"].item() == pytest.approx(forward, rel=1e-5)
    assert result["backward_nll_sum"].item() == pytest.approx(backward, rel=1e-5)
    assert result["num_tokens"].item() == 2 * (5 + 3 + 1)  # n + 1 predictions per text and direction
    assert result["loss"].item() == pytest.approx((forward + backward) / 18, rel=1e-5)
    assert model.perplexity(ids, lengths, direction="forward") == pytest.approx(math.exp(forward / 9), rel=1e-5)


def test_softmax_candidates_hold_every_target_then_distinct_random_others():
    targets = torch.tensor([7, 3, 7, 9, 3, 3])
    torch.manual_seed(0)
    rows, log_weights = softmax_candidates(targets, 40, 10)
    assert rows[:3].tolist() == [3, 7, 9]  # the batch's distinct targets first
    assert len(set(rows.tolist())) == 10 and all(0 <= row < 40 for row in rows.tolist())
    # 7 drawn from the 37 other ids: each stands for 37 / 7 of them
    assert log_weights.tolist() == pytest.approx([0.0] * 3 + [math.log(37 / 7)] * 7)
    torch.manual_seed(1)
    assert len({tuple(softmax_candidates(targets, 40, 10)[0].tolist()) for _ in range(5)}) > 1  # drawn, not fixed
    rows, log_weights = softmax_candidates(targets, 40, 2)
    assert rows.tolist() == [3, 7, 9] and log_weights.tolist() == [0.0] * 3  # never fewer than the targets
    assert sorted(softmax_candidates(targets, 12, 12)[0].tolist()) == list(range(12))


def test_weighted_candidates_estimate_the_full_normaliser_without_bias():
    torch.manual_seed(3)
    logits = torch.randn(60) * 2.0
    targets = torch.tensor([5, 11, 11, 40])
    full = logits.exp().sum().item()
    estimates = []
    for _ in range(4000):
        rows, log_weights = softmax_candidates(targets, 60, 12)
        estimates.append((logits[rows] + log_weights).exp().sum().item())
    assert sum(estimates) / len(estimates) == pytest.approx(full, rel=0.02)
    unweighted = [logits[softmax_candidates(targets, 60, 12)[0]].exp().sum().item() for _ in range(200)]
    assert sum(unweighted) / len(unweighted) < 0.6 * full  # without the weights most of the others' mass is missing


def test_sampled_softmax_normalises_over_the_candidate_rows_in_training_only():
    sizes = dict(vocab_size=14, embedding_dim=5, hidden_size=7, **NO_DROPOUT)
    model = LanguageModel(LanguageModelConfig(**sizes, softmax_candidates=3))
    rows = [[4, 5, 6, 7], [8, 4], []]
    ids, lengths, pad_mask = _batch(rows)
    # count (3) is below the distinct targets of each direction, so the candidates are exactly those:
    columns = {"forward": sorted({t for row in rows for t in (*row, EOS_ID)}),
               "backward": sorted({t for row in rows for t in (BOS_ID, *row)})}
    expected = [_reference_nll(model, row, columns) for row in rows]
    trained = model.train()(ids, lengths, pad_mask)
    assert trained["forward_nll_sum"].item() == pytest.approx(sum(f for f, _ in expected), rel=1e-5)
    assert trained["backward_nll_sum"].item() == pytest.approx(sum(b for _, b in expected), rel=1e-5)
    full = [_reference_nll(model, row) for row in rows]  # evaluation: the whole vocabulary
    assert model.eval()(ids, lengths, pad_mask)["nll_sum"].item() == pytest.approx(sum(map(sum, full)), rel=1e-5)
    assert sum(map(sum, expected)) < sum(map(sum, full)) - 1.0  # the two really differ


def test_sampled_softmax_training_lowers_the_full_softmax_perplexity():
    # 150 ids, texts over 30 of them: each step scores 40 rows (the ~31 targets and ~9 random others),
    # and the full softmax's perplexity, over all 150, must still fall far below the unigram one.
    torch.manual_seed(0)
    rng = random.Random(5)
    texts = [[4 + rng.randrange(30) for _ in range(rng.randint(5, 12))] for _ in range(24)]
    texts = [text[:1] + sorted(text[1:]) for text in texts]  # learnable: after the first word, ascending
    model = LanguageModel(LanguageModelConfig(vocab_size=150, embedding_dim=24, hidden_size=24, softmax_candidates=40,
                                              **NO_DROPOUT))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    batch = _batch(texts)
    before = model.eval().perplexity(*batch, direction="forward")
    model.train()
    for _ in range(120):
        optimizer.zero_grad()
        model(*batch)["loss"].backward()
        optimizer.step()
    after = model.eval().perplexity(*batch, direction="forward")
    unigram = _unigram_perplexity([token for text in texts for token in (*text, EOS_ID)])
    assert before > 100  # about uniform over 150 at the start
    assert after < unigram / 2, (before, after, unigram)


def test_padding_never_changes_the_loss_of_real_tokens():
    model = LanguageModel(LanguageModelConfig(vocab_size=12, embedding_dim=6, hidden_size=8, num_layers=2, **NO_DROPOUT)).eval()
    short, long = [4, 9, 5], [6, 7, 8, 9, 10, 11, 4]
    alone = {name: model(*_batch([row]))["nll_sum"].item() for name, row in (("short", short), ("long", long))}
    # Garbage ids in the padding must not matter either: only lengths say what is real.
    together = model(*_batch([short, long], fill=11))
    assert together["nll_sum"].item() == pytest.approx(alone["short"] + alone["long"], rel=1e-5)
    longer_pad = torch.nn.functional.pad(_batch([short])[0], (0, 6), value=7)
    padded = model(longer_pad, torch.tensor([3]))
    assert padded["nll_sum"].item() == pytest.approx(alone["short"], rel=1e-5)


def test_dropouts_act_in_training_only_and_every_parameter_learns():
    model = LanguageModel(LanguageModelConfig(vocab_size=10, embedding_dim=6, hidden_size=8, num_layers=2,
                                              embedding_dropout=0.2, input_dropout=0.3, hidden_dropout=0.3,
                                              weight_drop=0.5, output_dropout=0.3))  # fmt: skip
    batch = _batch([[4, 5, 6, 7, 8], [9, 4]])
    model.eval()
    first, second = model(*batch)["loss"], model(*batch)["loss"]
    assert first.item() == second.item()
    model.train()
    trained = model(*batch)
    assert trained["loss"].item() != pytest.approx(first.item(), rel=1e-4)
    trained["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# -- learning ------------------------------------------------------------------------------------

WORDS = list(range(4, 16))  # 12 word ids


def _corpus() -> list[list[int]]:
    """8 texts, each a fixed shuffle of the words: after its first word a text is determined."""
    rng = random.Random(3)
    texts = []
    for first in WORDS[:8]:
        rest = [word for word in WORDS if word != first]
        rng.shuffle(rest)
        texts.append([first, *rest[: rng.randint(4, 9)]])
    return texts


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    texts = _corpus()
    model = LanguageModel(LanguageModelConfig(vocab_size=16, embedding_dim=24, hidden_size=24, **NO_DROPOUT))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    batch = _batch(texts)
    for _ in range(150):
        optimizer.zero_grad()
        model(*batch)["loss"].backward()
        optimizer.step()
    return model, texts


def _unigram_perplexity(targets: list[int]) -> float:
    counts = Counter(targets)
    total = len(targets)
    return math.exp(-sum(count * math.log(count / total) for count in counts.values()) / total)


def test_overfits_a_tiny_corpus_far_below_unigram_perplexity(trained):
    model, texts = trained
    batch = _batch(texts)
    forward_targets = [token for text in texts for token in (*text, EOS_ID)]
    backward_targets = [token for text in texts for token in (BOS_ID, *text)]
    forward_unigram = _unigram_perplexity(forward_targets)  # about 12 here
    assert forward_unigram > 10
    # The best possible forward perplexity: only the first word (1 of 8) is uncertain.
    best = math.exp(len(texts) * math.log(8) / len(forward_targets))
    assert model.perplexity(*batch, direction="forward") < min(1.5 * best, forward_unigram / 5)
    assert model.perplexity(*batch, direction="backward") < _unigram_perplexity(backward_targets) / 5


def test_sample_continues_a_learnt_text_and_stops_at_eos(trained):
    model, texts = trained
    for text in texts[:4]:
        generated = model.sample(text[:1], max_new_tokens=30, temperature=0.0)
        assert generated == text[1:]  # stopped at <eos>, well before 30 tokens


def test_sample_is_deterministic_with_a_seeded_generator(trained):
    model, _ = trained

    def draw(seed: int) -> list[int]:
        return model.sample([], max_new_tokens=12, temperature=1.5, generator=torch.Generator().manual_seed(seed))

    assert draw(5) == draw(5)
    assert len({tuple(draw(seed)) for seed in range(8)}) > 1  # and the generator does decide
    model.train()  # sample runs without dropout and gives the mode back
    draw(1)
    assert model.training
    model.eval()
    draw(1)
    assert not model.training


def test_sample_stops_at_once_when_eos_wins_and_never_emits_pad_or_bos():
    model = LanguageModel(LanguageModelConfig(vocab_size=8, embedding_dim=4, hidden_size=4, **NO_DROPOUT))
    with torch.no_grad():
        model.forward_output.bias.zero_()
        model.forward_output.bias[EOS_ID] = 100.0
    assert model.sample([5, 6], max_new_tokens=10) == []
    with torch.no_grad():
        model.forward_output.bias[EOS_ID] = -100.0
        model.forward_output.bias[PAD_ID] = 100.0
        model.forward_output.bias[BOS_ID] = 100.0
        model.forward_output.bias[6] = 50.0
    assert model.sample([5], max_new_tokens=7, temperature=0.5, generator=torch.Generator().manual_seed(0)) == [6] * 7


def test_config_rejects_bad_values():
    with pytest.raises(NlpLstmError, match="weight-drop must be in"):
        LanguageModelConfig(vocab_size=100, weight_drop=1.0)
    with pytest.raises(NlpLstmError, match="softmax-candidates must be >= 0"):
        LanguageModelConfig(vocab_size=100, softmax_candidates=-1)
    with pytest.raises(NlpLstmError, match="vocab_size must be larger"):
        LanguageModelConfig(vocab_size=4)
    with pytest.raises(NlpLstmError, match="direction must be"):
        LanguageModel(LanguageModelConfig(vocab_size=8)).run_direction(torch.zeros(1, 2, 256), None, direction="up")


def test_trained_model_survives_a_safetensors_round_trip(trained, tmp_path):
    from nlp_lstm.artifacts import load_tensors, save_tensors

    model, texts = trained
    save_tensors(model.state_dict(), tmp_path / "model.safetensors")
    reloaded = LanguageModel(model.config)
    reloaded.load_state_dict(load_tensors(tmp_path / "model.safetensors"))
    batch = _batch(texts)
    assert reloaded.perplexity(*batch) == pytest.approx(model.perplexity(*batch), rel=1e-6)
    assert reloaded.sample(texts[0][:1], max_new_tokens=30, temperature=0.0) == texts[0][1:]

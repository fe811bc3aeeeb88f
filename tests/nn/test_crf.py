"""The CRF against brute-force enumeration of every tag path on small cases."""

import itertools
import math

import pytest
import torch

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.crf import CRF, FORBIDDEN, span_constraints


def _random_crf(num_tags, constraints=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    crf = CRF(num_tags, constraints=constraints)
    with torch.no_grad():
        crf.transitions.copy_(torch.randn(num_tags, num_tags, generator=generator))
        crf.start_transitions.copy_(torch.randn(num_tags, generator=generator))
        crf.end_transitions.copy_(torch.randn(num_tags, generator=generator))
    return crf


def _brute_force(crf, emissions, length, penalties=None):
    """Every path's score of one sentence, as a dict path -> score, from the definition."""
    trans = crf.transitions.detach().double().clone()
    start = crf.start_transitions.detach().double().clone()
    end = crf.end_transitions.detach().double().clone()
    if penalties is not None:
        allowed, allowed_start, allowed_end = penalties
        trans += (~allowed).double() * FORBIDDEN
        start += (~allowed_start).double() * FORBIDDEN
        end += (~allowed_end).double() * FORBIDDEN
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        score = start[path[0]] + end[path[-1]]
        for t, tag in enumerate(path):
            score += float(emissions[t, tag])
            if t:
                score += trans[path[t - 1], tag]
        scores[path] = float(score)
    return scores


def _ragged(batch_lengths, num_tags, seed=1):
    generator = torch.Generator().manual_seed(seed)
    time = max(batch_lengths)
    emissions = torch.randn(len(batch_lengths), time, num_tags, generator=generator, dtype=torch.float64)
    pad_mask = torch.arange(time).unsqueeze(0) >= torch.tensor(batch_lengths).unsqueeze(1)
    return emissions, pad_mask


@pytest.mark.parametrize("constrained", [False, True])
def test_partition_best_path_and_marginals_match_enumeration(constrained):
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] if constrained else ["A", "B", "C"]
    constraints = span_constraints(tags, "bio") if constrained else None
    crf = _random_crf(len(tags), constraints).double()
    lengths = [4, 1, 3, 2]
    emissions, pad_mask = _ragged(lengths, len(tags))
    log_z = crf.log_partition(emissions, pad_mask)
    paths, best_scores = crf.viterbi(emissions, pad_mask)
    marginals = crf.marginals(emissions, pad_mask)
    for row, length in enumerate(lengths):
        scores = _brute_force(crf, emissions[row], length, constraints)
        expected_log_z = math.log(sum(math.exp(s) for s in scores.values()))
        assert log_z[row].item() == pytest.approx(expected_log_z, abs=1e-8)
        best = max(scores, key=scores.get)
        assert tuple(paths[row, :length].tolist()) == best
        assert paths[row, length:].tolist() == [0] * (paths.shape[1] - length)
        assert best_scores[row].item() == pytest.approx(scores[best], abs=1e-8)
        expected = torch.zeros(length, len(tags), dtype=torch.float64)
        for path, score in scores.items():
            for t, tag in enumerate(path):
                expected[t, tag] += math.exp(score - expected_log_z)
        torch.testing.assert_close(marginals[row, :length], expected, atol=1e-8, rtol=1e-6)
        assert marginals[row, length:].abs().sum().item() == 0.0
        # the NLL of a path is -log of its enumerated probability
        path = torch.tensor(list(best) + [0] * (paths.shape[1] - length)).unsqueeze(0)
        nll = crf.nll(emissions[row : row + 1], path, pad_mask[row : row + 1])
        assert nll.item() == pytest.approx(expected_log_z - scores[best], abs=1e-8)


def test_padding_and_batch_order_do_not_change_results():
    crf = _random_crf(4).double()
    emissions, pad_mask = _ragged([5, 2, 3], 4)
    alone = [crf.log_partition(emissions[i : i + 1, : n], pad_mask[i : i + 1, : n]) for i, n in enumerate([5, 2, 3])]
    together = crf.log_partition(emissions, pad_mask)
    torch.testing.assert_close(together, torch.cat(alone))
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(crf.log_partition(emissions[order], pad_mask[order]), together[order])
    assert torch.equal(crf.viterbi(emissions[order], pad_mask[order])[0], crf.viterbi(emissions, pad_mask)[0][order])


def test_constrained_decoding_only_yields_valid_sequences():
    for scheme, tags in (("bio", ["O", "B-A", "I-A", "B-B", "I-B"]),
                         ("bioes", ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"])):
        allowed, allowed_start, allowed_end = span_constraints(tags, scheme)
        crf = CRF(len(tags), constraints=(allowed, allowed_start, allowed_end))
        # emissions that alone would pick invalid tags (I- first, I-B after B-A ...)
        generator = torch.Generator().manual_seed(3)
        emissions = 5 * torch.randn(64, 7, len(tags), generator=generator)
        pad_mask = torch.arange(7).unsqueeze(0) >= torch.randint(1, 8, (64, 1), generator=generator)
        paths, _ = crf.viterbi(emissions, pad_mask)
        lengths = (~pad_mask).sum(1)
        for row in range(64):
            path = paths[row, : lengths[row]].tolist()
            assert allowed_start[path[0]] and allowed_end[path[-1]], (scheme, [tags[i] for i in path])
            assert all(allowed[a, b] for a, b in zip(path, path[1:])), (scheme, [tags[i] for i in path])


def test_span_constraints_by_hand():
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    allowed, allowed_start, allowed_end = span_constraints(tags, "bio")
    assert allowed_start.tolist() == [True, True, False, True, False]
    assert allowed_end.tolist() == [True] * 5
    assert allowed[0].tolist() == [True, True, False, True, False]  # O -> I-x forbidden
    assert allowed[1].tolist() == [True, True, True, True, False]  # B-A -> I-B forbidden
    assert allowed[4].tolist() == [True, True, False, True, True]  # I-B -> I-A forbidden
    tags = ["O", "B-A", "I-A", "E-A", "S-A"]
    allowed, allowed_start, allowed_end = span_constraints(tags, "bioes")
    assert allowed_start.tolist() == [True, True, False, False, True]
    assert allowed_end.tolist() == [True, False, False, True, True]
    assert allowed[1].tolist() == [False, False, True, True, False]  # B-A -> I-A | E-A only
    assert allowed[3].tolist() == [True, True, False, False, True]  # E-A -> O | B | S


def test_loss_gradient_trains_towards_gold():
    crf = CRF(3)
    emissions = torch.zeros(1, 4, 3, requires_grad=True)
    gold = torch.tensor([[0, 1, 2, 1]])
    pad_mask = torch.zeros(1, 4, dtype=torch.bool)
    optimizer = torch.optim.SGD([*crf.parameters(), emissions], lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        crf.nll(emissions, gold, pad_mask).sum().backward()
        optimizer.step()
    assert crf.viterbi(emissions, pad_mask)[0].tolist() == gold.tolist()
    assert crf.nll(emissions, gold, pad_mask).item() < 0.1


def test_empty_sentence_is_refused():
    crf = CRF(2)
    with pytest.raises(NlpLstmError, match="no tokens"):
        crf.log_partition(torch.zeros(2, 3, 2), torch.tensor([[False] * 3, [True] * 3]))


def test_segment_probability_matches_enumeration():
    crf = _random_crf(3).double()
    lengths = [4, 3]
    emissions, pad_mask = _ragged(lengths, 3, seed=5)
    state = crf.forward_backward(emissions, pad_mask)
    for row, length in enumerate(lengths):
        scores = _brute_force(crf, emissions[row], length)
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        for start, tags, not_next in ((0, [1, 2], [2]), (1, [0], [1, 2]), (length - 2, [2, 2], [0]), (length - 1, [1], [1])):
            expected = sum(math.exp(score - log_z) for path, score in scores.items()
                           if list(path[start : start + len(tags)]) == tags
                           and (start + len(tags) >= length or path[start + len(tags)] not in not_next))
            got = crf.segment_probability(emissions, pad_mask, state, row=row, start=start, tags=tags, not_next=not_next)
            assert got == pytest.approx(expected, abs=1e-9)
    with pytest.raises(NlpLstmError, match="outside sentence 1 of 3 tokens"):
        crf.segment_probability(emissions, pad_mask, state, row=1, start=2, tags=[0, 0])

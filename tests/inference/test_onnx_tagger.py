"""Decoding a tagger outside torch: numpy Viterbi / forward-backward over the CRF's constrained
scores against `nn/crf.py` on ragged batches (ties included), and the exported emission graph run by
ONNX Runtime against the PyTorch predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nlp_lstm
from nlp_lstm.decoding import crf_numpy
from nlp_lstm.nn.crf import CRF, span_constraints
from tests.tagger_helpers import ner_sentences, train_tagger_dir

TAG_SETS = {
    "bio": ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"],
    "bioes": ["B-PER", "E-PER", "I-PER", "O", "S-LOC", "S-PER"],
    "plain": ["ADJ", "NOUN", "VERB"],
}


def random_crf(scheme: str, seed: int, *, integer: bool = False) -> CRF:
    generator = torch.Generator().manual_seed(seed)
    tags = TAG_SETS[scheme]
    crf = CRF(len(tags), constraints=span_constraints(tags, scheme))
    with torch.no_grad():
        for parameter in (crf.transitions, crf.start_transitions, crf.end_transitions):
            values = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(values.round().clamp(-1, 1) if integer else values)
    return crf


def ragged(seed: int, count: int, *, integer: bool = False):
    """Emissions `(B, T, K)` with ragged lengths (one row full, one of length 1)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (6,), generator=generator)
    lengths[0], lengths[1] = 9, 1
    emissions = torch.randn(6, 9, count, generator=generator) * 2
    if integer:  # few distinct values: many paths tie
        emissions = emissions.round().clamp(-1, 1)
    pad_mask = torch.arange(9)[None, :] >= lengths[:, None]
    return emissions, lengths, pad_mask


def scores_of(crf: CRF) -> crf_numpy.CrfScores:
    return crf_numpy.CrfScores(*(s.detach().numpy() for s in crf.constrained_scores()))


@pytest.mark.parametrize("scheme", sorted(TAG_SETS))
@pytest.mark.parametrize("integer", [False, True], ids=["random", "ties"])
def test_numpy_viterbi_gives_torchs_paths_on_ragged_batches(scheme, integer):
    for seed in range(20):
        crf = random_crf(scheme, seed, integer=integer)
        emissions, lengths, pad_mask = ragged(seed, crf.num_tags, integer=integer)
        expected, _ = crf.viterbi(emissions, pad_mask)
        got = crf_numpy.viterbi(emissions.numpy(), lengths.numpy(), scores_of(crf))
        assert np.array_equal(got, expected.numpy()), (seed, got, expected)


def test_ties_are_broken_as_torch_breaks_them():
    """All paths score alike: both take the first tag everywhere (the first maximum)."""
    crf = CRF(4)
    emissions, lengths = torch.zeros(3, 5, 4), torch.tensor([5, 2, 1])
    pad_mask = torch.arange(5)[None, :] >= lengths[:, None]
    expected, _ = crf.viterbi(emissions, pad_mask)
    got = crf_numpy.viterbi(emissions.numpy(), lengths.numpy(), scores_of(crf))
    assert np.array_equal(got, expected.numpy()) and not got.any()


@pytest.mark.parametrize("scheme", sorted(TAG_SETS))
def test_numpy_forward_backward_marginals_and_segments_match_torch(scheme):
    for seed in range(5):
        crf = random_crf(scheme, seed)
        emissions, lengths, pad_mask = ragged(seed, crf.num_tags)
        alphas, betas, log_z = crf.forward_backward(emissions, pad_mask)
        result = crf_numpy.forward_backward(emissions.numpy(), lengths.numpy(), scores_of(crf))
        assert np.allclose(result.log_z, log_z.numpy(), atol=1e-4)
        real = ~pad_mask.numpy()
        for mine, theirs in ((result.log_alphas(), alphas), (result.log_betas(), betas)):
            reachable = real[:, :, None] & (theirs.numpy() > -1000)  # tags some valid path takes
            assert np.allclose(mine[reachable], theirs.numpy()[reachable], atol=1e-3)
        assert np.allclose(crf_numpy.marginals(result, lengths.numpy()), crf.marginals(emissions, pad_mask).numpy(),
                           atol=1e-5)
        paths = crf_numpy.viterbi(emissions.numpy(), lengths.numpy(), scores_of(crf))
        torch_fb = crf.forward_backward(emissions, pad_mask)
        rows, starts, ends, not_next = [], [], [], []
        for row in range(6):
            for start in range(int(lengths[row])):
                end = min(start + 2, int(lengths[row]))
                rows.append(row), starts.append(start), ends.append(end), not_next.append(seed % 3 - 1)
        got = crf_numpy.segment_probabilities(
            emissions.numpy(), lengths.numpy(), scores_of(crf), result, paths, rows=np.array(rows),
            starts=np.array(starts), ends=np.array(ends), not_next=np.array(not_next))
        for value, row, start, end, following in zip(got, rows, starts, ends, not_next):
            expected = crf.segment_probability(emissions, pad_mask, torch_fb, row=row, start=start,
                                               tags=paths[row, start:end].tolist(),
                                               not_next=[following] if following >= 0 else [])
            assert value == pytest.approx(expected, abs=1e-4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = train_tagger_dir(tmp_path_factory.mktemp("onnx_tagger") / "model", steps=60)
    nlp_lstm.export_onnx(directory)
    return directory


def test_onnx_tags_are_torchs_on_every_sentence(exported):
    sentences = [tokens for tokens, _ in ner_sentences(80, seed=11)] + [["Zyx"], ["a"] * 30]
    torch_results = nlp_lstm.load(exported, device="cpu").tag(sentences)
    onnx_results = nlp_lstm.load_onnx(exported).tag(sentences)
    assert [r["tags"] for r in onnx_results] == [r["tags"] for r in torch_results]
    for mine, theirs in zip(onnx_results, torch_results):
        assert mine["confidences"] == pytest.approx(theirs["confidences"], abs=2e-4)


def test_the_graph_and_onnx_json_decode_without_nlp_lstm(exported):
    """What docs/deploy-onnx.md tells a deployer: feed the graph, decode with onnx.json's scores."""
    import onnxruntime

    manifest = json.loads((exported / "onnx" / "onnx.json").read_text())
    predictor = nlp_lstm.load(exported, device="cpu")
    for name, value in manifest["crf_scores"].items():
        assert np.array_equal(np.array(value, dtype=np.float32), getattr(predictor.crf_scores, name))
    assert manifest["tags"] == predictor.labels and manifest["kind"] == "tagger"
    sentences = [["Anna", "went", "to", "Paris"], ["Bob"], ["saw", "Carl", "and", "Dora", "today"]]
    batch = predictor.vocab.encode(sentences)  # the training encoding: every position its own "type"
    batch_size, time = batch.word_ids.shape
    session = onnxruntime.InferenceSession(str(exported / "onnx" / "tagger.onnx"), providers=["CPUExecutionProvider"])
    [emissions] = session.run(["emissions"], {
        "word_ids": batch.word_ids.numpy(), "type_chars": batch.char_ids.reshape(batch_size * time, -1).numpy(),
        "token_types": np.arange(batch_size * time).reshape(batch_size, time), "lengths": batch.lengths.numpy()})
    scores = crf_numpy.CrfScores(*(np.array(manifest["crf_scores"][k], dtype=np.float32)
                                   for k in ("transitions", "start", "end")))
    paths = crf_numpy.viterbi(emissions, batch.lengths.numpy(), scores)
    got = [[manifest["tags"][i] for i in row[:n]] for row, n in zip(paths.tolist(), batch.lengths.tolist())]
    assert got == [r["tags"] for r in predictor.tag(sentences)]

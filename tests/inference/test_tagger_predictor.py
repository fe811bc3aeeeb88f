"""TaggerPredictor (`nlp_lstm.load(DIR).tag`): tags against the model's own decoding, confidences
against brute-force enumeration of every tag path, spans against `metrics/spans.py`, offsets against
the text."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import spacy
import torch

import nlp_lstm
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference import tagger as tagger_module
from nlp_lstm.inference.tagger import TaggerPredictor
from nlp_lstm.inference.tagger_batch import CharTables, TypeEmissionGraph, TypeEncoder, length_segments, torch_emissions
from nlp_lstm.metrics.spans import spans as strict_spans
from tests.tagger_helpers import VOCAB_FILE, ner_sentences, train_tagger_dir


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory):
    return train_tagger_dir(tmp_path_factory.mktemp("tagger") / "crf", decoder="crf", steps=60)


@pytest.fixture(scope="module")
def softmax_dir(tmp_path_factory):
    return train_tagger_dir(tmp_path_factory.mktemp("tagger") / "softmax", decoder="softmax", steps=5)


def held_out(count=40, seed=7):
    return [tokens for tokens, _ in ner_sentences(count, seed=seed)] + [["Zyx", "unseen", "Qwerty"], ["Anna"]]


def test_load_returns_a_tagger_predictor(crf_dir):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    assert isinstance(predictor, TaggerPredictor) and predictor.kind == "tagger"
    assert predictor.labels == ["B-LOC", "B-PER", "I-PER", "O"]
    assert predictor.language == "en" and predictor.max_input_length == tagger_module.MAX_INPUT_TOKENS


@pytest.mark.parametrize("which", ["crf", "softmax"])
def test_tags_are_the_models_own_decoding(which, crf_dir, softmax_dir):
    """The fast path (types, length segments, numpy Viterbi) gives what `SequenceTagger.decode` gives
    on `TaggingVocab.encode`'s batch, sentence by sentence."""
    predictor = nlp_lstm.load(crf_dir if which == "crf" else softmax_dir, device="cpu")
    sentences = held_out()
    results = predictor.tag(sentences)
    model, vocab = predictor.model, predictor.vocab
    for tokens, result in zip(sentences, results):
        [expected] = model.decode(vocab.encode([tokens]))
        tags = [vocab.tags[i] for i in expected]
        if which == "softmax":  # repaired as conlleval reads them (I-X after O -> B-X)
            tags = [f"B-{tag[2:]}" if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:]) else tag
                    for i, tag in enumerate(tags)]
        assert result["tokens"] == tokens and result["tags"] == tags


def test_emissions_by_distinct_word_and_length_segment_equal_the_models(crf_dir):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    sentences = sorted(held_out(60), key=len)  # sorted: runs of equal lengths become their own segments
    batch = TypeEncoder(predictor.vocab).encode(sentences)
    reference = predictor.vocab.encode(sentences)
    assert np.array_equal(batch.word_ids, reference.word_ids.numpy())
    with torch.no_grad():
        expected = predictor.model.emission_scores(reference.word_ids, reference.char_ids, reference.lengths)
        traced_path = TypeEmissionGraph(predictor.model)(*(torch.from_numpy(a) for a in (
            batch.word_ids, batch.type_chars, batch.token_types, batch.lengths)))
    real = ~reference.pad_mask
    got = torch_emissions(TypeEmissionGraph(predictor.model), CharTables(predictor.model.chars), batch, torch.device("cpu"))
    assert np.allclose(got[real.numpy()], expected[real].numpy(), atol=1e-5)
    assert torch.allclose(traced_path[real], expected[real], atol=1e-5)


@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5])
def test_char_tables_compute_the_char_cnn(kernel_size):
    from nlp_lstm.models.tagger import CharCNN

    torch.manual_seed(kernel_size)
    chars = CharCNN(20, 6, 7, kernel_size).eval()
    with torch.no_grad():
        chars.embedding.weight.normal_()  # the padding row too: in-word padding reads it, the edges do not
    ids = torch.randint(1, 20, (9, 6))
    ids[0, 1:] = 0
    ids[1, 4:] = 0
    with torch.no_grad():
        assert torch.allclose(CharTables(chars)(ids), chars(ids), atol=1e-5)


def test_length_segments_keep_long_runs_of_one_length_alone():
    lengths = [1, 2, 2] + [3] * 8 + [4, 5] + [6] * 9
    assert length_segments(lengths) == [(0, 3), (3, 11), (11, 13), (13, 22)]
    assert length_segments([2, 3, 4]) == [(0, 3)]
    assert length_segments([]) == []


def brute_force(emissions, transitions, start, end):
    """Every path of one sentence and its probability, by enumeration (float64)."""
    length, count = emissions.shape
    paths = list(itertools.product(range(count), repeat=length))
    scores = np.array([start[p[0]] + sum(emissions[t, p[t]] for t in range(length))
                       + sum(transitions[p[t - 1], p[t]] for t in range(1, length)) + end[p[-1]] for p in paths])
    probabilities = np.exp(scores - scores.max())
    return paths, probabilities / probabilities.sum()


def test_confidences_are_exact_marginals_and_span_probabilities(crf_dir):
    """Per-token confidence = p(y_t = chosen tag | x); span confidence = p(the span's tags, and no
    I-X after it | x): both summed over all 4^n paths by hand."""
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    transitions, start, end = (s.detach().double().numpy() for s in predictor.model.crf.constrained_scores())
    continues = {label: predictor.labels.index(f"I-{label}") for label in ("PER",)}
    checked_spans = 0
    for tokens in [["Anna", "Bob", "went", "to", "Paris"], ["saw", "Carl"], ["Dora"], ["Oslo", "Emil", "Lima", "met"]]:
        [result] = predictor.tag([tokens])
        batch = predictor.vocab.encode([tokens])
        with torch.no_grad():
            emissions = predictor.model(batch)[0].double().numpy()
        paths, probability = brute_force(emissions, transitions, start, end)
        ids = [predictor.labels.index(tag) for tag in result["tags"]]
        assert tuple(ids) == paths[int(np.argmax(probability))]  # Viterbi = the most probable path
        for t, confidence in enumerate(result["confidences"]):
            marginal = sum(p for path, p in zip(paths, probability) if path[t] == ids[t])
            assert confidence == pytest.approx(marginal, abs=1e-4)
        assert [(s["type"], s["start"], s["end"]) for s in result["spans"]] == \
            [tuple(span) for span in strict_spans(result["tags"], "bio")]
        for span in result["spans"]:
            inside = ids[span["start"] : span["end"]]
            after = continues.get(span["type"])
            exact = sum(p for path, p in zip(paths, probability)
                        if list(path[span["start"] : span["end"]]) == inside
                        and not (span["end"] < len(tokens) and after is not None and path[span["end"]] == after))
            assert span["confidence"] == pytest.approx(exact, abs=1e-4)
            assert span["text"] == " ".join(tokens[span["start"] : span["end"]])
            checked_spans += 1
    assert checked_spans >= 3


def test_softmax_confidences_are_its_probabilities_and_spans_use_repaired_tags(softmax_dir):
    predictor = nlp_lstm.load(softmax_dir, device="cpu")
    sentences = held_out(30)
    for tokens, result in zip(sentences, predictor.tag(sentences)):
        with torch.no_grad():
            probabilities = predictor.model(predictor.vocab.encode([tokens]))[0].double().softmax(-1).numpy()
        ids = [predictor.labels.index(tag) for tag in result["tags"]]
        assert result["confidences"] == pytest.approx([probabilities[t, i] for t, i in enumerate(ids)], abs=1e-4)
        assert all(not (tag.startswith("I-") and (t == 0 or result["tags"][t - 1][2:] != tag[2:]))
                   for t, tag in enumerate(result["tags"]))  # repaired: every I-X continues a span
        for span in result["spans"]:
            product = math.prod(probabilities[t, ids[t]] for t in range(span["start"], span["end"]))
            if span["end"] < len(tokens) and f"I-{span['type']}" in predictor.labels:
                product *= 1 - probabilities[span["end"], predictor.labels.index(f"I-{span['type']}")]
            assert span["confidence"] == pytest.approx(product, abs=1e-4)


def test_raw_text_is_split_by_spacy_with_offsets_into_the_text(crf_dir):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    text = "  Anna   went to Paris,\n\twith Bob (and Carl)!  "
    [result] = predictor.tag(text)
    expected = [t.text for t in spacy.blank("en")(text) if not t.is_space]
    assert result["tokens"] == expected and result["text"] == text
    assert [text[start:end] for start, end in result["offsets"]] == expected
    for span in result["spans"]:
        assert span["text"] == text[span["start_char"] : span["end_char"]]
        assert span["start_char"] == result["offsets"][span["start"]][0]


def test_batching_does_not_change_results(crf_dir):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    sentences = held_out(25)
    together = predictor.tag(sentences)
    assert [predictor.tag([tokens])[0] for tokens in sentences] == together


def test_mixed_inputs_empty_inputs_and_no_confidences(crf_dir):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    results = predictor.tag(["Anna went", [], "", ["Bob", "met", "Carl"], "Anna  went"], confidences=False)
    assert [r["tokens"] for r in results] == [["Anna", "went"], [], [], ["Bob", "met", "Carl"], ["Anna", "went"]]
    assert results[1]["tags"] == [] and results[2]["spans"] == []
    assert all("confidences" not in r and all("confidence" not in s for s in r["spans"]) for r in results)
    assert results[0]["tags"] == results[4]["tags"]
    pretokenized = predictor.tag(["Bob  met\tCarl"], pretokenized=True)[0]
    assert pretokenized["tokens"] == ["Bob", "met", "Carl"] and pretokenized["tags"] == results[3]["tags"]


@pytest.mark.parametrize("bad", [5, [["ok"], 3], [["a", 1]]])
def test_bad_input_is_one_line(crf_dir, bad):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    with pytest.raises(NlpLstmError, match="give a string|must be a string"):
        predictor.tag(bad)


def test_predict_batch_cuts_long_texts_and_says_so(crf_dir, monkeypatch):
    predictor = nlp_lstm.load(crf_dir, device="cpu")
    monkeypatch.setattr(tagger_module, "MAX_INPUT_TOKENS", 4)
    words = "Anna went to Paris with Bob".split()
    rows = predictor.predict_batch(["Anna went", " ".join(words), (" ".join(words), True)])
    assert [row["truncated"] for row in rows] == [False, True, True]
    assert rows[1]["tokens"] == words[:4] and rows[2]["tokens"] == words[:4]
    assert rows[1]["tags"] == predictor.tag([words[:4]])[0]["tags"]
    assert rows[1]["offsets"][-1] == [13, 18]  # "Paris" in the text


def test_a_directory_without_its_vocabulary_is_one_line(crf_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(crf_dir, copy)
    (copy / VOCAB_FILE).unlink()
    with pytest.raises(NlpLstmError, match=f"has no {VOCAB_FILE}"):
        nlp_lstm.load(copy, device="cpu")


@pytest.mark.parametrize("which", ["crf", "softmax"])
def test_explain_gives_each_tokens_marginal_and_the_runner_up(which, crf_dir, softmax_dir):
    predictor = nlp_lstm.load(crf_dir if which == "crf" else softmax_dir, device="cpu")
    tokens = ["Anna", "Bob", "went", "to", "Paris"]
    [explained] = predictor.explain([tokens])
    with torch.no_grad():
        batch = predictor.vocab.encode([tokens])
        marginals = predictor.model.marginals(batch)[0].double().numpy()  # nn/crf.py's, or the softmax
    assert explained["kind"] == "tagger" and explained["tags"] == predictor.tag([tokens])[0]["tags"]
    for t, word in enumerate(explained["words"]):
        order = np.argsort(-marginals[t])
        chosen = predictor.labels.index(word["tag"])
        runner = order[1] if order[0] == chosen else order[0]
        assert word["token"] == tokens[t]
        assert word["probability"] == pytest.approx(marginals[t, chosen], abs=1e-4)
        assert word["runner_up"] == predictor.labels[runner] and word["runner_up"] != word["tag"]
        assert word["runner_up_probability"] == pytest.approx(marginals[t, runner], abs=1e-4)


def test_a_feature_tagger_reads_one_feature_per_token(tmp_path):
    """The predicate-indicator formulation (He et al. 2017): a 0/1 feature per token changes the input."""
    directory = train_tagger_dir(tmp_path / "features", steps=3, feature_embedding_dim=4, decoder="softmax")
    predictor = nlp_lstm.load(directory, device="cpu")
    tokens = ["Anna", "went", "to", "Paris"]
    on, off = predictor.tag([tokens, tokens], features=[[0, 1, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        reference = predictor.vocab.encode([tokens], features=[[0, 1, 0, 0]])
        expected = predictor.model(reference)[0].softmax(-1).max(-1).values.tolist()
    assert on["confidences"] == pytest.approx(expected, abs=1e-4) and on["confidences"] != off["confidences"]
    with pytest.raises(NlpLstmError, match="per-token feature"):
        predictor.tag([tokens])
    with pytest.raises(NlpLstmError, match="4 tokens but 2 features"):
        predictor.tag([tokens], features=[[0, 1]])

"""`explain`: attributions of models whose answer is known by construction, completeness, the exact
n-gram decomposition, and a summarizer forced to copy."""

from __future__ import annotations

import math

import pytest
import torch

from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.data.word_ngrams import fit_word_ngrams
from nlp_lstm.decoding.beam_search import DecodeConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.inference.summarizer import SummarizerPredictor
from nlp_lstm.models.classifier import ClassifierConfig, TextClassifier
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig

WORDS = "the film was great awful plot and not bad really".split()
HIDDEN, DIM = 2, 4


def one_word_classifier(decisive: dict[str, float], *, ngrams=None) -> ClassifierPredictor:
    """A binary classifier whose BiLSTM reads only dimension 0 of the embeddings, which is 0 for every
    word but those in `decisive` (word -> value), and small random noise elsewhere.

    Each LSTM cell: forget gate shut (bias -30), input and output gates open (bias +30), candidate
    g = tanh(4 x_0), no recurrence: h_t = tanh(tanh(4 x_0)). Mean pooling, head weights +1: the logit
    for "positive" is the mean over time and directions of h, so a word with x_0 > 0 pushes it up.
    """
    tokenizer = fit_tokenizer([" ".join(WORDS)], kind="spacy", min_freq=1)
    config = ClassifierConfig(vocab_size=tokenizer.vocab_size, embedding_dim=DIM, hidden_size=HIDDEN, task="binary",
                              dropout=0.0, pooling="mean", word_ngrams=2 if ngrams else 0, char_ngrams=0,
                              ngram_features=len(ngrams) if ngrams else None)
    model = TextClassifier(config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        weight = torch.randn(tokenizer.vocab_size, DIM, generator=generator) * 0.3
        weight[:, 0] = 0.0
        for word, value in decisive.items():
            weight[tokenizer.token_to_id(word), 0] = value
        weight[0] = 0.0  # <pad>
        model.embedding.weight.copy_(weight)
        for name, parameter in model.encoder.named_parameters():
            parameter.zero_()
            if name.startswith("weight_ih"):
                parameter[2 * HIDDEN : 3 * HIDDEN, 0] = 4.0  # candidate reads x_0
            if name.startswith("bias_ih"):
                parameter[:HIDDEN] = 30.0  # input gate open
                parameter[HIDDEN : 2 * HIDDEN] = -30.0  # forget gate shut
                parameter[3 * HIDDEN :] = 30.0  # output gate open
        model.head.weight.fill_(1.0)
        model.head.bias.fill_(-0.1)
    return ClassifierPredictor(model, tokenizer, labels=["negative", "positive"], ngrams=ngrams)


def word(result, text):
    [found] = [w for w in result["words"] if w["word"] == text]
    return found


def test_the_deciding_word_gets_the_attribution_with_its_sign():
    predictor = one_word_classifier({"great": 2.0, "awful": -2.0})
    [positive] = predictor.explain("the film was great", steps=64)
    assert positive["label"] == "positive" and positive["predicted"] == "positive"
    top = max(positive["words"], key=lambda w: abs(w["lstm"]))
    assert top["word"] == "great" and top["lstm"] > 0
    # The other words' dimension 0 is zero: integrated gradients give them nothing (x - baseline = 0
    # where the gradient is not).
    assert all(abs(w["lstm"]) < 1e-6 for w in positive["words"] if w["word"] != "great")
    # By hand: one of four steps has h = tanh(tanh(8)) in both directions; the mean over 4 steps
    # and 2 directions x 2 units, times head weights 1: 4 * tanh(tanh(8)) / 4; the baseline's h is 0.
    expected = math.tanh(math.tanh(8.0))
    assert positive["lstm"]["score"] == pytest.approx(expected - 0.1, abs=1e-5)
    assert positive["lstm"]["baseline_score"] == pytest.approx(-0.1, abs=1e-6)
    assert word(positive, "great")["lstm"] == pytest.approx(expected, abs=1e-3)

    [negative] = predictor.explain("the awful film")
    assert negative["label"] == "negative"
    assert max(negative["words"], key=lambda w: abs(w["lstm"]))["word"] == "awful"
    assert word(negative, "awful")["lstm"] > 0  # supports "negative"
    [asked] = predictor.explain("the awful film", label="positive")
    assert word(asked, "awful")["lstm"] == pytest.approx(-word(negative, "awful")["lstm"], abs=1e-6)
    assert asked["probability"] == pytest.approx(1 - negative["probability"], abs=1e-4)


def reference_integrated_gradients(model, ids: torch.Tensor, steps: int = 4000) -> torch.Tensor:
    """Midpoint-rule integrated gradients of the positive logit along zero -> embedding(ids), per token."""
    embedded = model.embedding(ids).detach()  # (1, T, E)
    lengths, pad_mask = torch.tensor([ids.shape[1]]), torch.zeros_like(ids, dtype=torch.bool)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    points = (alphas.view(-1, 1, 1) * embedded).requires_grad_(True)  # (steps, T, E)
    outputs, _ = model.encoder(points, lengths.expand(steps), need_cell_state=False)
    pooled = model.pooling(outputs, pad_mask.expand(steps, -1), None)
    model.head(pooled).sum().backward()
    return (points.grad.mean(dim=0) * embedded[0]).sum(dim=-1)  # (T,)


def test_completeness_and_agreement_with_a_reference_integral():
    torch.manual_seed(0)
    predictor = one_word_classifier({"great": 1.5, "bad": -0.7, "plot": 0.4})
    with torch.no_grad():  # every weight random now, recurrence included: a non-trivial function
        for parameter in predictor.model.encoder.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
        predictor.model.embedding.weight[1:].add_(torch.randn_like(predictor.model.embedding.weight[1:]))
    text = "really great plot and not bad"
    [result] = predictor.explain(text, steps=48)
    lstm = result["lstm"]
    difference = lstm["score"] - lstm["baseline_score"]
    attributed = sum(w["lstm"] for w in result["words"])
    assert attributed == pytest.approx(lstm["attribution_sum"], abs=1e-6)
    assert abs(attributed - difference) <= abs(lstm["residual"]) + 1e-6
    assert lstm["relative_residual"] < 0.01
    ids = torch.tensor([predictor.tokenizer.encode(text)])
    with torch.no_grad():
        logit = predictor.model(ids, torch.tensor([ids.shape[1]]), torch.zeros_like(ids, dtype=torch.bool))
    assert lstm["score"] == pytest.approx(float(logit), abs=1e-5)  # the model's own output
    reference = reference_integrated_gradients(predictor.model, ids)
    ours = torch.tensor([p["attribution"] for p in result["pieces"]], dtype=torch.float64)
    torch.testing.assert_close(ours, reference.double(), atol=2e-3, rtol=0)


def linear_model(table_rows: dict[str, float]):
    corpus = ["not bad at all", "a bad plot", "not great", "great film, really great!"]
    ngrams = fit_word_ngrams(corpus, order=2, char_order=3)
    predictor = one_word_classifier({}, ngrams=ngrams)
    with torch.no_grad():
        predictor.model.ngrams.table.zero_()
        for gram, value in table_rows.items():
            predictor.model.ngrams.table[ngrams.index[gram], 0] = value
        predictor.model.ngrams.bias.fill_(0.25)
    return predictor, ngrams


def test_ngram_contributions_sum_exactly_to_the_linear_logit():
    predictor, ngrams = linear_model({})
    with torch.no_grad():
        generator = torch.Generator().manual_seed(3)
        predictor.model.ngrams.table.copy_(torch.randn(predictor.model.ngrams.table.shape, generator=generator))
    text = "Not bad at all, really GREAT film!"
    [ids], [values] = ngrams.transform([text])
    with torch.no_grad():  # the part's own forward pass
        logit = float(predictor.model.ngrams(torch.tensor([ids]), torch.tensor([values])))
    for label, sign in (("positive", 1.0), ("negative", -1.0)):
        [result] = predictor.explain(text, label=label, steps=4)
        linear = result["linear"]
        assert sum(row["contribution"] for row in linear["ngrams"]) + linear["bias"] == pytest.approx(sign * logit, abs=1e-6)
        assert linear["score"] == pytest.approx(sign * logit, abs=1e-6)
        assert linear["bias"] == pytest.approx(sign * 0.25)
        assert sum(w["linear"] for w in result["words"]) + linear["bias"] == pytest.approx(sign * logit, abs=1e-6)
        assert result["score"] == pytest.approx(result["lstm"]["score"] + linear["score"], abs=1e-9)
        assert len(linear["ngrams"]) == len(ids)


def test_a_bigram_is_shared_by_its_two_words():
    predictor, ngrams = linear_model({"not bad": 3.0})
    [result] = predictor.explain("Not bad, not BAD at all.", label="positive", steps=4)
    [ids], [values] = ngrams.transform(["Not bad, not BAD at all."])
    value = values[ids.index(ngrams.index["not bad"])]  # the bigram occurs twice: one feature
    by_hand = 3.0 * value
    assert [row["contribution"] for row in result["linear"]["ngrams"] if row["ngram"] == "not bad"] == \
        [pytest.approx(by_hand)]
    shares = [(w["word"], w["linear"]) for w in result["words"]]
    # Two occurrences, each a quarter to each of its two words; nothing to the others.
    assert shares == [("Not", pytest.approx(by_hand / 4)), ("bad", pytest.approx(by_hand / 4)), (",", 0.0),
                      ("not", pytest.approx(by_hand / 4)), ("BAD", pytest.approx(by_hand / 4)), ("at", 0.0),
                      ("all", 0.0), (".", 0.0)]
    assert result["decided_by"] == "linear"


def test_bad_input_is_one_clear_error():
    predictor = one_word_classifier({"great": 2.0})
    with pytest.raises(NlpLstmError, match="no label 'neutral'; its labels are negative, positive"):
        predictor.explain("great", label="neutral")
    with pytest.raises(NlpLstmError, match="text 1 is empty"):
        predictor.explain(["great", "  "])
    for steps in (0, -3, 10**6):
        with pytest.raises(NlpLstmError, match=f"steps={steps} is invalid: use 1 to 4096"):
            predictor.explain("great", steps=steps)
    features = TextClassifier(ClassifierConfig(input_size=3, hidden_size=4, task="binary"))
    with pytest.raises(NlpLstmError, match="float feature sequences"):
        ClassifierPredictor(features, None, labels=["a", "b"]).explain("great")


def forced_copier(pointer_bias: float) -> SummarizerPredictor:
    """An untrained summarizer whose p_gen is sigmoid(pointer_bias): -40 copies every word."""
    tokenizer = fit_tokenizer(["the film by anna was long and old"], kind="spacy", min_freq=1)
    model = Summarizer(SummarizerConfig(vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=8, dropout=0.0,
                                        max_source_length=20, max_target_length=5))
    with torch.no_grad():
        model.pointer.proj.weight.zero_()
        model.pointer.proj.bias.fill_(pointer_bias)
    return SummarizerPredictor(model, tokenizer,
                               decoding=DecodeConfig(beam_size=1, max_length=4, no_repeat_ngram_size=0))


def test_a_summarizer_that_must_copy_says_where_from():
    [result] = forced_copier(-40.0).explain("The film, by Zelda, was long.")
    source = [w["word"] for w in result["source_words"]]
    assert source == ["The", "film", ",", "by", "Zelda", ",", "was", "long", "."]
    assert result["outputs"]
    for output in result["outputs"]:
        assert output["p_gen"] < 1e-12 and output["copied"]
        assert output["copy"] == pytest.approx(1.0, abs=1e-6)
        assert source[output["copied_from"]].lower() == output["word"].lower()  # copied from a source word equal to it
        assert sum(output["attention"]) == pytest.approx(1.0, abs=1e-5)  # a distribution over the source words


def test_a_summarizer_that_never_copies_generates_everything():
    [result] = forced_copier(40.0).explain("The film by Zelda was long.")
    for output in result["outputs"]:
        assert output["p_gen"] == pytest.approx(1.0) and not output["copied"] and output["copied_from"] is None
        assert output["copy"] < 1e-6

"""Opt-in dynamic int8 quantization (nlp_lstm/quantize.py)."""

from __future__ import annotations

import pytest
import torch

from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.data.collate import collate_classification
from nlp_lstm.data.tokenizers import fit_tokenizer
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.nn.lstm import LSTM
from nlp_lstm.inference.classifier import ClassifierPredictor
from nlp_lstm.inference.quantize import PackedTorchLSTM, quantize_classifier

POSITIVE = ["a wonderful heartfelt film", "great acting and a lovely story", "i loved it , truly great",
            "what a delight , wonderful", "lovely , great fun", "a great and wonderful day"]
NEGATIVE = ["a dull and awful film", "terrible acting , boring story", "i hated it , truly awful",
            "what a waste , terrible", "boring , awful mess", "an awful and dull day"]  # fmt: skip


def _trained_classifier(bidirectional: bool) -> ClassifierPredictor:
    torch.manual_seed(0)
    texts, labels = POSITIVE + NEGATIVE, [1] * len(POSITIVE) + [0] * len(NEGATIVE)
    tokenizer = fit_tokenizer(texts, kind="spacy", vocab_size=200, min_freq=1)
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=tokenizer.vocab_size,
                                            embedding_dim=16, hidden_size=16, bidirectional=bidirectional,
                                            dropout=0.0))  # fmt: skip
    batch = collate_classification(
        [{"input_ids": ids, "labels": label} for ids, label in zip(tokenizer.encode_batch(texts), labels)]
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):  # overfit the tiny set
        loss = model.loss(model(batch["input_ids"], batch["lengths"], batch["pad_mask"]), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return ClassifierPredictor(model, tokenizer, labels=["negative", "positive"])


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_torch_lstm_matches_our_encoder_on_ragged_batches(num_layers, bidirectional):
    torch.manual_seed(0)
    ours = LSTM(8, 12, num_layers=num_layers, bidirectional=bidirectional)
    copy = PackedTorchLSTM(ours)
    inputs, lengths = torch.randn(5, 9, 8), torch.tensor([9, 3, 7, 1, 9])
    with torch.no_grad():
        expected_outputs, (expected_h, expected_c) = ours(inputs, lengths)
        outputs, (h_n, c_n) = copy(inputs, lengths)
    torch.testing.assert_close(outputs, expected_outputs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, expected_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c_n, expected_c, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_quantized_predictions_agree_with_float(bidirectional):
    classifier = _trained_classifier(bidirectional)
    quantized = quantize_classifier(classifier)
    texts = POSITIVE + NEGATIVE + ["a truly lovely film", "boring and terrible", "great day", "awful story"]
    float_results, int8_results = classifier.predict(texts), quantized.predict(texts)
    agree = sum(a["label"] == b["label"] for a, b in zip(float_results, int8_results))
    assert agree >= len(texts) - 1
    # Probabilities move only a little under int8 weights.
    assert max(abs(a["score"] - b["score"]) for a, b in zip(float_results, int8_results)
               if a["label"] == b["label"]) < 0.1  # fmt: skip
    # The int8 modules really are in place, and the original classifier is untouched.
    assert isinstance(quantized.model.encoder.lstm, torch.ao.nn.quantized.dynamic.LSTM)
    assert isinstance(quantized.model.head, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(classifier.model.encoder, LSTM)


def test_predict_restores_input_order_across_length_sorted_batches():
    # predict sorts texts by token count so each batch pads little; results come back in input order.
    classifier = _trained_classifier(bidirectional=True)
    texts = ["great", "a dull and awful film , truly boring", "lovely", "terrible acting", "a great and wonderful day"]
    alone = [classifier.predict([text])[0] for text in texts]
    for model in (classifier, quantize_classifier(classifier)):
        batched = model.predict(texts, batch_size=2)
        assert [row["text"] for row in batched] == texts
        assert [row["label"] for row in batched] == [row["label"] for row in alone]
    # Float: batching and padding change no score.
    assert [row["score"] for row in classifier.predict(texts, batch_size=2)] == pytest.approx(
        [row["score"] for row in alone], abs=1e-4
    )


def test_peephole_encoders_are_refused():
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=20, embedding_dim=4,
                                            hidden_size=4, peephole="diagonal"))  # fmt: skip
    classifier = ClassifierPredictor(model, None, labels=["negative", "positive"])
    with pytest.raises(NlpLstmError, match="peephole"):
        quantize_classifier(classifier)

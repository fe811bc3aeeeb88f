"""LanguageModel -> TextClassifier weight transfer and the ULMFiT fine-tuning schedules."""

from __future__ import annotations

import pytest
import torch

from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig
from nlp_lstm.models.transfer import (
    apply_gradual_unfreezing,
    discriminative_parameter_groups,
    init_classifier_from_language_model,
    trainable_group_names,
)

VOCAB, EMBEDDING, HIDDEN = 20, 6, 5
ROWS = [[4, 9, 12, 5, 17, 8, 6], [11, 4, 19], [7, 7, 13, 10, 5]]


def _language_model(num_layers: int = 2, **overrides) -> LanguageModel:
    sizes = dict(vocab_size=VOCAB, embedding_dim=EMBEDDING, hidden_size=HIDDEN, num_layers=num_layers)
    model = LanguageModel(LanguageModelConfig(**{**sizes, **overrides}))
    with torch.no_grad():  # biases away from their initial values, so a missed copy shows
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


def _classifier(num_layers: int = 2, **overrides) -> TextClassifier:
    settings = dict(num_labels=3, vocab_size=VOCAB, embedding_dim=EMBEDDING, hidden_size=HIDDEN,
                    num_layers=num_layers, pooling="attention")  # fmt: skip
    return TextClassifier(ClassifierConfig(**{**settings, **overrides})).eval()


def _padded(rows):
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
    return ids, torch.tensor([len(row) for row in rows])


def _stack_outputs(layers, embedding, row: list[int]) -> torch.Tensor:
    """One text through a language model's layers, plain calls: `(n, H)`."""
    hidden = embedding(torch.tensor([row]))
    for layer in layers:
        hidden, _ = layer(hidden)
    return hidden[0]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_encoder_reproduces_both_language_models_after_transfer(num_layers):
    lm = _language_model(num_layers)
    classifier = _classifier(num_layers)
    head_before = classifier.head.weight.detach().clone()
    written = init_classifier_from_language_model(classifier, lm.state_dict(), lm.config)
    assert len(written) == 1 + 8 * num_layers

    ids, lengths = _padded(ROWS)
    with torch.no_grad():
        outputs, _ = classifier.encoder(classifier.embedding(ids), lengths)  # (B, T, 2H)
        for index, row in enumerate(ROWS):
            forward = _stack_outputs(lm.forward_layers, lm.embedding, row)
            # The backward model reads the text reversed; its outputs, reversed back, are the
            # encoder's reverse direction.
            backward = _stack_outputs(lm.backward_layers, lm.embedding, row[::-1]).flip(0)
            real = outputs[index, : len(row)]
            assert torch.allclose(real[:, :HIDDEN], forward, atol=1e-6)
            assert torch.allclose(real[:, HIDDEN:], backward, atol=1e-6)
    assert torch.equal(classifier.embedding.weight, lm.embedding.weight)
    assert torch.equal(classifier.head.weight, head_before)  # the head is not the language model's


def test_a_unidirectional_classifier_takes_the_forward_model():
    lm = _language_model(2)
    classifier = _classifier(2, bidirectional=False)
    written = init_classifier_from_language_model(classifier, lm.state_dict(), lm.config)
    assert not any(name.endswith("_reverse") for name in written)
    with torch.no_grad():
        outputs, _ = classifier.encoder(classifier.embedding(torch.tensor([ROWS[0]])))
        assert torch.allclose(outputs[0], _stack_outputs(lm.forward_layers, lm.embedding, ROWS[0]), atol=1e-6)


def test_peephole_classifier_keeps_zero_peepholes_and_the_equivalence():
    lm = _language_model(1)
    classifier = _classifier(1, peephole="diagonal")
    init_classifier_from_language_model(classifier, lm.state_dict(), lm.config)
    with torch.no_grad():
        outputs, _ = classifier.encoder(classifier.embedding(torch.tensor([ROWS[1]])))
        assert torch.allclose(outputs[0, :, :HIDDEN], _stack_outputs(lm.forward_layers, lm.embedding, ROWS[1]), atol=1e-5)


@pytest.mark.parametrize(
    ("lm_sizes", "classifier_sizes", "message"),
    [
        (dict(hidden_size=8), dict(hidden_size=HIDDEN),
         f"the language model has hidden_size 8 but the classifier asks for {HIDDEN}; drop --hidden-size or "
         f"pretrain with --hidden-size {HIDDEN}"),
        (dict(embedding_dim=7), dict(), "the language model has embedding_dim 7 but the classifier asks for 6; "
         "drop --embedding-dim or pretrain with --embedding-dim 6"),
        (dict(num_layers=1), dict(num_layers=2), "the language model has num_layers 1 but the classifier asks for 2; "
         "drop --num-layers or pretrain with --num-layers 2"),
        (dict(vocab_size=30), dict(), "the language model has vocab_size 30 but the classifier's vocabulary has 20 "
         "ids; train the classifier with the language model's tokenizer (--tokenizer)"),
    ],
)  # fmt: skip
def test_size_mismatches_name_the_value_and_the_fix(lm_sizes, classifier_sizes, message):
    lm = _language_model(**{"num_layers": 2, **lm_sizes})
    classifier = _classifier(**{"num_layers": 2, **classifier_sizes})
    with pytest.raises(NlpLstmError) as raised:
        init_classifier_from_language_model(classifier, lm.state_dict(), lm.config)
    assert str(raised.value) == message


def test_inconsistent_weights_and_feature_classifiers_are_refused():
    lm = _language_model(2)
    state = lm.state_dict()
    missing = {key: value for key, value in state.items() if key != "backward_layers.1.weight_hh_l0"}
    with pytest.raises(NlpLstmError, match="no 'backward_layers.1.weight_hh_l0'; is this a `nlp-lstm pretrain`"):
        init_classifier_from_language_model(_classifier(2), missing, lm.config)
    wrong = {**state, "forward_layers.0.weight_ih_l0": torch.zeros(4 * HIDDEN, EMBEDDING + 1)}
    with pytest.raises(NlpLstmError, match=r"'forward_layers.0.weight_ih_l0' is \(20, 7\) but its config.json asks for \(20, 6\)"):
        init_classifier_from_language_model(_classifier(2), wrong, lm.config)
    features = TextClassifier(ClassifierConfig(num_labels=2, input_size=4, hidden_size=HIDDEN))
    with pytest.raises(NlpLstmError, match="reads float features"):
        init_classifier_from_language_model(features, state, lm.config)


# -- discriminative learning rates, gradual unfreezing --------------------------------------------


def test_discriminative_groups_divide_the_rate_by_2_6_per_group_down():
    classifier = _classifier(2)
    groups = discriminative_parameter_groups(classifier, learning_rate=1e-3)
    assert [group["name"] for group in groups] == ["head", "encoder.layer1", "encoder.layer0", "embedding"]
    assert [group["lr"] for group in groups] == pytest.approx([1e-3, 1e-3 / 2.6, 1e-3 / 2.6**2, 1e-3 / 2.6**3])
    names = {id(parameter): name for name, parameter in classifier.named_parameters()}
    members = {group["name"]: sorted(names[id(p)] for p in group["params"]) for group in groups}
    assert members["encoder.layer1"] == sorted(
        f"encoder.{weight}_l1{suffix}" for weight in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for suffix in ("", "_reverse")
    )
    assert members["embedding"] == ["embedding.weight"]
    assert "head.weight" in members["head"] and any(name.startswith("pooling.") for name in members["head"])
    assert sum(len(group) for group in members.values()) == len(names)  # every parameter once
    optimizer = torch.optim.AdamW(groups)
    assert [group["lr"] for group in optimizer.param_groups] == [group["lr"] for group in groups]


def test_gradual_unfreezing_opens_one_group_per_epoch_from_the_top():
    names = ["head", "encoder.layer1", "encoder.layer0", "embedding"]
    assert trainable_group_names(names, 1) == ["head"]
    assert trainable_group_names(names, 2) == ["head", "encoder.layer1"]
    assert trainable_group_names(names, 4) == names
    assert trainable_group_names(names, 9) == names
    with pytest.raises(NlpLstmError, match="epoch must be >= 1"):
        trainable_group_names(names, 0)


def test_frozen_groups_do_not_move_under_adamw():
    classifier = _classifier(2).train()
    groups = discriminative_parameter_groups(classifier, learning_rate=1e-2)
    optimizer = torch.optim.AdamW(groups, weight_decay=0.1)
    assert apply_gradual_unfreezing(groups, 2) == ["head", "encoder.layer1"]
    before = {name: parameter.detach().clone() for name, parameter in classifier.named_parameters()}
    ids, lengths = _padded(ROWS)
    logits = classifier(ids, lengths, torch.arange(ids.shape[1]) >= lengths.unsqueeze(1))
    optimizer.zero_grad(set_to_none=True)
    classifier.loss(logits, torch.tensor([0, 1, 2])).backward()
    optimizer.step()
    for name, parameter in classifier.named_parameters():
        moved = not torch.equal(parameter, before[name])
        assert moved == (name.startswith(("head.", "pooling.", "ngrams.")) or "_l1" in name), name


def test_transfer_from_weights_read_back_from_disk(tmp_path):
    from nlp_lstm.artifacts import load_tensors, save_tensors

    lm = _language_model(2)
    save_tensors(lm.state_dict(), tmp_path / "model.safetensors")
    classifier = _classifier(2)
    init_classifier_from_language_model(classifier, load_tensors(tmp_path / "model.safetensors"), lm.config)
    for layer in range(2):
        assert torch.equal(getattr(classifier.encoder, f"weight_hh_l{layer}_reverse"), lm.backward_layers[layer].weight_hh_l0)
        assert torch.equal(getattr(classifier.encoder, f"bias_ih_l{layer}"), lm.forward_layers[layer].bias_ih_l0)

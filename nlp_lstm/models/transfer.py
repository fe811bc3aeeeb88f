"""LanguageModel -> TextClassifier: weight transfer and ULMFiT fine-tuning schedules (Howard & Ruder
2018, "Universal Language Model Fine-tuning for Text Classification", sec. 3.2-3.3).

Weight map (language model state dict -> classifier, H = hidden_size, k = layer):
```
embedding.weight                      -> embedding.weight                      (V, E)
forward_layers.k.{w}_l0               -> encoder.{w}_l{k}                      w: weight_hh, bias_ih, bias_hh
backward_layers.k.{w}_l0              -> encoder.{w}_l{k}_reverse
forward_layers.k.weight_ih_l0         -> encoder.weight_ih_l{k}                (4H, E) for k = 0
backward_layers.k.weight_ih_l0        -> encoder.weight_ih_l{k}_reverse
```
For k > 0 a bidirectional encoder's layer reads both directions' outputs, `[h_fwd ; h_bwd]` (2H), while
each language model's layer k read only its own direction's (H). The transfer writes the language
model's matrix into its own direction's half and zeros into the other, `weight_ih_l{k} = [W_fwd | 0]`
and `weight_ih_l{k}_reverse = [0 | W_bwd]` (4H, 2H): the freshly initialised encoder then computes
exactly the two language models' states, and fine-tuning can grow the cross-direction weights from zero.
Peephole weights, when the classifier has them, are left at their initial zeros (the language model has
none), which keeps the equivalence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.language_model import LanguageModel, LanguageModelConfig

# Each layer group's learning rate is the one above it divided by this (ULMFiT sec. 3.2, eq. 2).
DISCRIMINATIVE_DECAY = 2.6

__all__ = [
    "DISCRIMINATIVE_DECAY",
    "apply_gradual_unfreezing",
    "discriminative_parameter_groups",
    "init_classifier_from_language_model",
    "trainable_group_names",
]

_LSTM_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _check_compatible(classifier: TextClassifier, lm_config: LanguageModelConfig) -> None:
    config = classifier.config
    if classifier.embedding is None:
        raise NlpLstmError(
            "the classifier reads float features (input_size), not token ids; a language model can only "
            "initialise a classifier over its tokenizer's ids"
        )
    if config.vocab_size != lm_config.vocab_size:
        raise NlpLstmError(
            f"the language model has vocab_size {lm_config.vocab_size} but the classifier's vocabulary has "
            f"{config.vocab_size} ids; train the classifier with the language model's tokenizer (--tokenizer)"
        )
    for name in ("embedding_dim", "hidden_size", "num_layers"):
        pretrained, asked = getattr(lm_config, name), getattr(config, name)
        if pretrained != asked:
            option = "--" + name.replace("_", "-")
            raise NlpLstmError(
                f"the language model has {name} {pretrained} but the classifier asks for {asked}; "
                f"drop {option} or pretrain with {option} {asked}"
            )


def _check_state(lm_state: Mapping[str, torch.Tensor], lm_config: LanguageModelConfig) -> None:
    """The state dict must be what a `LanguageModel(lm_config)` holds (shapes built on the meta device)."""
    with torch.device("meta"):
        expected = LanguageModel(lm_config).state_dict()
    for key, tensor in expected.items():
        if key not in lm_state:
            raise NlpLstmError(
                f"the language model weights have no {key!r}; is this a `nlp-lstm pretrain` model directory?"
            )
        if tuple(lm_state[key].shape) != tuple(tensor.shape):
            raise NlpLstmError(
                f"the language model weight {key!r} is {tuple(lm_state[key].shape)} but its config.json asks for "
                f"{tuple(tensor.shape)}; the model directory is inconsistent, pretrain it again"
            )


@torch.no_grad()
def init_classifier_from_language_model(
    classifier: TextClassifier, lm_state: Mapping[str, torch.Tensor], lm_config: LanguageModelConfig
) -> list[str]:
    """Copy a pretrained language model's embedding and LSTM weights into `classifier`, in place.

    Args:
        classifier: a token-id `TextClassifier`, bidirectional (forward <- forward model, reverse <-
            backward model) or unidirectional (forward model only).
        lm_state: a `LanguageModel` state dict (e.g. read from its `model.safetensors`).
        lm_config: that model's config.
    Returns:
        the classifier parameter names that were written (everything but the pooling and the head,
        and peepholes if any).
    Raises:
        NlpLstmError: sizes differ (naming the value and the option to change) or the state does not
            match `lm_config`.
    """
    _check_compatible(classifier, lm_config)
    _check_state(lm_state, lm_config)
    encoder = classifier.encoder
    hidden_size = lm_config.hidden_size
    written = ["embedding.weight"]
    classifier.embedding.weight.copy_(lm_state["embedding.weight"])
    directions = [("forward_layers", "")] + ([("backward_layers", "_reverse")] if encoder.bidirectional else [])
    for layer in range(lm_config.num_layers):
        for offset, (stack, suffix) in enumerate(directions):
            for weight in _LSTM_WEIGHTS:
                source = lm_state[f"{stack}.{layer}.{weight}_l0"]
                target = getattr(encoder, f"{weight}_l{layer}{suffix}")
                if weight == "weight_ih" and layer > 0 and encoder.bidirectional:
                    # (4H, 2H) over [h_fwd ; h_bwd]: this direction's half only (module docstring).
                    target.zero_()
                    target[:, offset * hidden_size : (offset + 1) * hidden_size].copy_(source)
                else:
                    target.copy_(source)
                written.append(f"encoder.{weight}_l{layer}{suffix}")
    return written


# ---------------------------------------------------------------------------------------------
# ULMFiT fine-tuning: discriminative learning rates and gradual unfreezing
# ---------------------------------------------------------------------------------------------

_LAYER = re.compile(r"_l(\d+)(?:_reverse)?$")


def discriminative_parameter_groups(
    classifier: TextClassifier, *, learning_rate: float, decay: float = DISCRIMINATIVE_DECAY
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with a learning rate per layer group (ULMFiT sec. 3.2).

    Groups, top first: "head" (the head, the pooling's parameters, the n-gram bag, anything else) at
    `learning_rate`;
    then "encoder.layer{L-1}" .. "encoder.layer0" (both directions of a layer together) and
    "embedding", each `decay` times lower than the group above: `eta^{l-1} = eta^l / 2.6`.

    Returns:
        `[{"name": str, "params": [nn.Parameter, ...], "lr": float}, ...]`, ready for
        `torch.optim.AdamW(groups, ...)` (optimizers keep the extra "name" key).
    """
    if not learning_rate > 0 or not decay > 0:
        raise NlpLstmError(f"learning_rate and decay must be > 0, got {learning_rate} and {decay}")
    num_layers = classifier.encoder.num_layers
    names = ["head"] + [f"encoder.layer{layer}" for layer in reversed(range(num_layers))] + ["embedding"]
    members: dict[str, list[nn.Parameter]] = {name: [] for name in names}
    for name, parameter in classifier.named_parameters():
        if name.startswith("embedding."):
            members["embedding"].append(parameter)
        elif name.startswith("encoder."):
            layer = _LAYER.search(name)
            if layer is None:
                raise NlpLstmError(f"cannot tell the layer of encoder parameter {name!r}")
            members[f"encoder.layer{layer.group(1)}"].append(parameter)
        else:
            members["head"].append(parameter)
    return [
        {"name": name, "params": members[name], "lr": learning_rate / decay**depth}
        for depth, name in enumerate(names)
        if members[name]
    ]


def trainable_group_names(group_names: Sequence[str], epoch: int) -> list[str]:
    """Gradual unfreezing (ULMFiT sec. 3.3): which groups train in `epoch` (1-based).

    Epoch 1 trains the top group only, each later epoch unfreezes the next group down, and from epoch
    `len(group_names)` on everything trains.

    Args:
        group_names: top first, as `discriminative_parameter_groups` orders them.
    """
    if epoch < 1:
        raise NlpLstmError(f"epoch must be >= 1 (epochs count from 1), got {epoch}")
    return list(group_names[:epoch])


def apply_gradual_unfreezing(groups: Sequence[Mapping[str, Any]], epoch: int) -> list[str]:
    """Set `requires_grad` for `epoch` by `trainable_group_names`; return the names that train.

    Call it at the start of each epoch (the training loop's `Task.on_epoch_start`). Frozen
    parameters get no gradient, so AdamW neither moves nor decays them. Under DistributedDataParallel
    parameters must not change `requires_grad` after wrapping; there, zero the frozen groups'
    learning rates instead.
    """
    trainable = set(trainable_group_names([group["name"] for group in groups], epoch))
    for group in groups:
        for parameter in group["params"]:
            parameter.requires_grad_(group["name"] in trainable)
    return [group["name"] for group in groups if group["name"] in trainable]

"""LanguageModel: a forward and a backward LSTM language model over one shared embedding (DESIGN
section 3; Merity et al. 2018, AWD-LSTM; Howard & Ruder 2018, ULMFiT, sec. 3.1 and 3.3).

Each text `x_1..x_n` (ids without specials, as `batching.collate_classification` pads them) is framed
as `<bos> x_1 .. x_n <eos>`. With `e_t` the embedding of framed token t (t = 0..n+1):

```
forward:   h_t = LSTM_fwd(e_0 .. e_t)             (B, n+1, H)  t = 0..n     predicts token t+1
backward:  g_t = LSTM_bwd(e_{n+1} .. e_t)         (B, n+1, H)  t = 1..n+1   predicts token t-1
logits = (P h) E^T + b                            (B, n+1, V)  E: the embedding (tied softmax)
loss   = mean over both directions' n+1 targets per text of -log softmax(logits)[target]
```
so the forward model predicts `x_1 .. x_n <eos>` and the backward model `<bos> x_1 .. x_n`, and padding
is never read (each LSTM runs on exact lengths, the backward one reversed within each row's length).

Tied softmax (Press & Wolf 2017; Inan et al. 2017): the output matrix is the embedding matrix. When
`hidden_size != embedding_dim` each direction gets a bias-free projection `P: H -> E` (AWD-LSTM instead
shrinks the last layer to E, which would break the 1:1 layer shapes the classifier transfer needs).

Layers are kept as one single-layer `LSTM` per layer and direction (`forward_layers[k]`,
`backward_layers[k]`), so locked dropout can sit between layers and weight drop acts on each layer's
W_hh. `nlp_lstm.models.transfer` maps them onto a `TextClassifier`'s bidirectional encoder.

Regularisation (AWD-LSTM sec. 4; defaults are fastai's ULMFiT `awd_lstm_lm_config`): embedding dropout
on word rows, locked dropout on the LSTM inputs, between layers and on the last layer's outputs, and
DropConnect on every hidden-to-hidden matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, SPECIALS
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.lstm import LSTM, reverse_within_lengths
from nlp_lstm.nn.regularization import LockedDropout, call_with_weight_drop, embedding_dropout

DIRECTIONS = ("forward", "backward")

__all__ = ["DIRECTIONS", "LanguageModel", "LanguageModelConfig", "frame_with_specials", "softmax_candidates"]


@dataclass
class LanguageModelConfig:
    """Everything needed to rebuild a `LanguageModel`.

    `embedding_dim`, `hidden_size` and `num_layers` must match the classifier it will initialise.
    """

    vocab_size: int | None = None  # from the tokenizer
    # The classifier's default sizes, so that `pretrain` then `train classifier --init-from` with
    # no size options gives the measured default classifier.
    embedding_dim: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    tie_weights: bool = True
    embedding_dropout: float = 0.02  # whole word rows (AWD-LSTM sec. 4.3)
    input_dropout: float = 0.25  # locked, on the embeddings fed to the first layer
    hidden_dropout: float = 0.15  # locked, between layers
    weight_drop: float = 0.2  # DropConnect on each W_hh
    output_dropout: float = 0.1  # locked, on the last layer's outputs
    # Training only: score each batch's targets against this many vocabulary rows instead of all of
    # them (0: the full softmax). See `softmax_candidates`. On VADER texts, vocabulary 8,000, 256/256:
    # 3.3x less time per epoch, and a lower full-softmax perplexity for the same training time
    # (BENCHMARKS.md, "Language-model pretraining cost").
    softmax_candidates: int = 1024

    def __post_init__(self) -> None:
        if self.vocab_size is not None and self.vocab_size <= len(SPECIALS):
            raise NlpLstmError(f"vocab_size must be larger than the {len(SPECIALS)} special tokens, got {self.vocab_size}")
        for name in ("embedding_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise NlpLstmError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("embedding_dropout", "input_dropout", "hidden_dropout", "weight_drop", "output_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise NlpLstmError(f"{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if self.softmax_candidates < 0:
            raise NlpLstmError(f"softmax-candidates must be >= 0 (0: the full softmax), got {self.softmax_candidates}")


def softmax_candidates(targets: torch.Tensor, vocab_size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The vocabulary rows a training batch's softmax scores, and the log-weight of each row.

    Returns `rows` `(C,)`, `C = max(count, distinct targets)`, no id twice: the distinct ids in
    `targets` first, then `k` ids drawn uniformly without replacement from the `A` other ids
    (torch's global generator, so a seeded run repeats); and `log_weights` `(C,)`: 0 for the
    targets, `log(A / k)` for each drawn id. Added to the logits, the weights make the softmax's
    normaliser an unbiased estimate of the full one:

        Z = sum_targets exp(l) + sum_others exp(l)  ~  sum_targets exp(l) + (A / k) sum_drawn exp(l)

    (a uniform sample of the others stands for all of them), so every id is pushed down as often as
    in the full softmax, on average; without the weights the ids outside the batch were pushed down
    about k / A as hard and the full-softmax perplexity lagged (benchmarks/lm_pretrain_probe.py).
    The `(N, C)` product replaces the `(N, V)` one that otherwise takes about 75% of a pretraining
    step. Validation and perplexity always use the full softmax.
    """
    present = torch.zeros(vocab_size, dtype=torch.bool, device=targets.device)
    present[targets] = True
    distinct = present.nonzero().squeeze(1)
    extra = count - distinct.numel()
    if extra <= 0:
        return distinct, torch.zeros(distinct.numel(), device=targets.device)
    absent = (~present).nonzero().squeeze(1)
    drawn = absent[torch.randperm(absent.numel(), device=targets.device)[:extra]]
    log_weights = torch.cat([torch.zeros(distinct.numel(), device=targets.device),
                             torch.full((drawn.numel(),), math.log(absent.numel() / drawn.numel()), device=targets.device)])
    return torch.cat([distinct, drawn]), log_weights


def frame_with_specials(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`x_1..x_n` -> `<bos> x_1..x_n <eos>`, right-padded with PAD_ID.

    Args:
        input_ids: `(B, T)` ids without specials; whatever lies past each row's length is ignored.
        lengths: `(B,)` real lengths in [0, T].
    Returns:
        `(B, T + 2)` framed ids; row b holds `lengths[b] + 2` real tokens.
    """
    batch, time = input_ids.shape
    positions = torch.arange(time, device=input_ids.device)
    framed = input_ids.new_full((batch, time + 2), PAD_ID)
    framed[:, 0] = BOS_ID
    framed[:, 1 : time + 1] = input_ids.masked_fill(positions >= lengths.unsqueeze(1), PAD_ID)
    framed[torch.arange(batch, device=input_ids.device), lengths + 1] = EOS_ID
    return framed


def _reverse_batch_first(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`reverse_within_lengths` for `(B, T, D)`."""
    return reverse_within_lengths(sequence.transpose(0, 1), lengths).transpose(0, 1)


class _OutputLayer(nn.Module):
    """One direction's softmax layer: hidden `(N, H)` -> logits `(N, V)`, tied to the embedding or not."""

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.tied = config.tie_weights
        if self.tied:
            needs_projection = config.hidden_size != config.embedding_dim
            self.projection = nn.Linear(config.hidden_size, config.embedding_dim, bias=False) if needs_projection else None
            self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        else:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden: torch.Tensor, embedding_weight: torch.Tensor,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits `(N, V)`, or `(N, len(rows))` for the vocabulary ids `rows` only."""
        if self.tied:
            weight, bias = embedding_weight, self.bias
            if self.projection is not None:
                hidden = self.projection(hidden)  # (N, E)
        else:
            weight, bias = self.decoder.weight, self.decoder.bias
        if rows is not None:
            weight, bias = weight[rows], bias[rows]
        return F.linear(hidden, weight, bias)


class LanguageModel(nn.Module):
    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        # AWD-LSTM's initialisation of the (tied) embedding: uniform(-0.1, 0.1).
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        sizes = [config.embedding_dim] + [config.hidden_size] * (config.num_layers - 1)
        self.forward_layers = nn.ModuleList(LSTM(size, config.hidden_size) for size in sizes)
        self.backward_layers = nn.ModuleList(LSTM(size, config.hidden_size) for size in sizes)
        self.forward_output = _OutputLayer(config)
        self.backward_output = _OutputLayer(config)
        self.input_dropout = LockedDropout(config.input_dropout)
        self.hidden_dropout = LockedDropout(config.hidden_dropout)
        self.output_dropout = LockedDropout(config.output_dropout)

    # -- encoding -------------------------------------------------------------------------------

    def run_direction(self, inputs: torch.Tensor, lengths: torch.Tensor | None, *, direction: str) -> torch.Tensor:
        """One direction's LSTM stack over embedded inputs, with the training-time dropouts.

        Args:
            inputs: `(B, T, E)` embeddings.
            lengths: `(B,)` real lengths in [1, T], or None for all T.
            direction: "forward" (reads left to right) or "backward" (reads each row right to left,
                from its own last real step).
        Returns:
            `(B, T, H)` last layer's outputs in the inputs' order (position t of "backward" has read
            steps t..length-1), zero at padding.
        """
        if direction not in DIRECTIONS:
            raise NlpLstmError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        layers = self.forward_layers if direction == "forward" else self.backward_layers
        hidden = inputs if direction == "forward" else self._reverse(inputs, lengths)
        for index, layer in enumerate(layers):
            hidden, _ = call_with_weight_drop(
                layer, (hidden, lengths), {"need_cell_state": False}, p=self.config.weight_drop, training=self.training
            )  # (B, T, H)
            last = index == len(layers) - 1
            hidden = self.output_dropout(hidden) if last else self.hidden_dropout(hidden)
        return hidden if direction == "forward" else self._reverse(hidden, lengths)

    @staticmethod
    def _reverse(sequence: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return sequence.flip(1) if lengths is None else _reverse_batch_first(sequence, lengths)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        weight = embedding_dropout(self.embedding.weight, self.config.embedding_dropout, self.training)
        return self.input_dropout(F.embedding(ids, weight, padding_idx=PAD_ID))  # (B, T, E)

    # -- training objective ---------------------------------------------------------------------

    def forward(
        self, input_ids: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Both directions' next-token losses on a padded batch.

        Args:
            input_ids: `(B, T)` ids without specials (framed here, see the module docstring).
            lengths: `(B,)` real lengths in [0, T]; an empty text still scores `<eos>` (forward) and
                `<bos>` (backward).
            pad_mask: `(B, T)` True at padding; accepted so a classification batch can be passed as
                is, but `lengths` decide what is real.
        Returns:
            loss: scalar mean negative log-likelihood per predicted token, over both directions (what
                the training loop back-propagates).
            nll_sum: summed NLL of both directions (detached), and num_tokens: the number of
                predictions it sums (2 * sum(lengths + 1)); sum both over batches (and ranks), then
                perplexity = exp(nll_sum / num_tokens).
            forward_nll_sum, backward_nll_sum: each direction's part (detached), over
                num_tokens / 2 predictions each.
        """
        lengths = lengths.to(device=input_ids.device, dtype=torch.long)
        framed = frame_with_specials(input_ids, lengths)  # (B, T+2)
        steps = lengths + 1  # predictions per direction and row
        embedded = self._embed(framed)  # (B, T+2, E)
        valid = torch.arange(framed.shape[1] - 1, device=framed.device) < steps.unsqueeze(1)  # (B, T+1)
        # Forward reads <bos> x_1..x_n and predicts x_1..x_n <eos>; backward reads x_1..x_n <eos>
        # (right to left) and predicts <bos> x_1..x_n.
        forward_hidden = self.run_direction(embedded[:, :-1], steps, direction="forward")  # (B, T+1, H)
        backward_hidden = self.run_direction(embedded[:, 1:], steps, direction="backward")  # (B, T+1, H)
        forward_nll = self._nll(self.forward_output, forward_hidden[valid], framed[:, 1:][valid])
        backward_nll = self._nll(self.backward_output, backward_hidden[valid], framed[:, :-1][valid])
        num_tokens = 2 * valid.sum()
        return {
            "loss": (forward_nll + backward_nll) / num_tokens,
            "nll_sum": (forward_nll + backward_nll).detach(),
            "num_tokens": num_tokens,
            "forward_nll_sum": forward_nll.detach(),
            "backward_nll_sum": backward_nll.detach(),
        }

    def _nll(self, output: _OutputLayer, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed NLL of `targets` `(N,)` given hidden states `(N, H)` at the real positions only.

        In training with `softmax_candidates` set (and below the vocabulary size), the softmax runs
        over `softmax_candidates(targets, ...)` only, with their log-weights; otherwise over the whole
        vocabulary.
        """
        count = self.config.softmax_candidates
        vocab_size = self.embedding.num_embeddings
        if not (self.training and 0 < count < vocab_size):
            logits = output(hidden, self.embedding.weight)  # (N, V)
            return F.cross_entropy(logits.float(), targets, reduction="sum")
        rows, log_weights = softmax_candidates(targets, vocab_size, count)  # (C,), (C,)
        position = torch.empty(vocab_size, dtype=torch.long, device=targets.device)
        position[rows] = torch.arange(rows.numel(), device=targets.device)
        logits = output(hidden, self.embedding.weight, rows).float() + log_weights  # (N, C)
        return F.cross_entropy(logits, position[targets], reduction="sum")

    @torch.no_grad()
    def perplexity(
        self,
        input_ids: torch.Tensor,
        lengths: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
        *,
        direction: str = "both",
    ) -> float:
        """Perplexity of a batch without dropout: exp(mean NLL per predicted token).

        Args:
            input_ids, lengths, pad_mask: as for `forward`.
            direction: "forward", "backward", or "both" (the exp of the mean over both directions).
        """
        if direction not in (*DIRECTIONS, "both"):
            raise NlpLstmError(f"direction must be forward, backward or both; got {direction!r}")
        was_training = self.training
        self.eval()
        try:
            result = self(input_ids, lengths, pad_mask)
        finally:
            self.train(was_training)
        total = {"both": result["nll_sum"], "forward": result["forward_nll_sum"],
                 "backward": result["backward_nll_sum"]}[direction]  # fmt: skip
        count = result["num_tokens"] if direction == "both" else result["num_tokens"] / 2
        return math.exp(float(total) / float(count))

    # -- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        prompt_ids: Sequence[int] | torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        """Continue a prompt with the forward model, one token at a time, until `<eos>`.

        Args:
            prompt_ids: ids without specials (`<bos>` is put in front here); may be empty.
            max_new_tokens: the most tokens to generate.
            temperature: softmax temperature; 0 picks the most likely token (greedy).
            generator: a seeded `torch.Generator` (on the model's device) makes sampling repeatable.
        Returns:
            the new ids, without the prompt and without the final `<eos>`; `<pad>` and `<bos>` are
            never generated.
        """
        if temperature < 0:
            raise NlpLstmError(f"temperature must be >= 0, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            return self._sample(prompt_ids, max_new_tokens, temperature=temperature, generator=generator)
        finally:
            self.train(was_training)

    def _sample(self, prompt_ids, max_new_tokens: int, *, temperature: float, generator) -> list[int]:
        device = self.embedding.weight.device
        prompt = torch.as_tensor(list(prompt_ids) if not torch.is_tensor(prompt_ids) else prompt_ids, dtype=torch.long)
        tokens = torch.cat([torch.tensor([BOS_ID]), prompt.flatten().cpu()]).to(device).unsqueeze(0)  # (1, P+1)
        states = [None] * len(self.forward_layers)
        generated: list[int] = []
        banned = torch.tensor([PAD_ID, BOS_ID], device=device)
        for _ in range(max_new_tokens):
            hidden = self.embedding(tokens)  # (1, t, E)
            for index, layer in enumerate(self.forward_layers):
                hidden, states[index] = layer(hidden, state=states[index])  # (1, t, H), each (1, 1, H)
            logits = self.forward_output(hidden[:, -1], self.embedding.weight)[0].float()  # (V,)
            logits[banned] = -math.inf
            if temperature == 0:
                token = int(logits.argmax())
            else:
                probabilities = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probabilities, 1, generator=generator))
            if token == EOS_ID:
                break
            generated.append(token)
            tokens = torch.tensor([[token]], device=device)
        return generated

"""Decoding over a shortlisted output vocabulary (`[decoding] shortlist = N`, `summarize --shortlist N`).

At every decoder step the generator scores all V pieces (8,000 at the project's sizes), and the
softmax, copy mixture, n-gram blocking and top-k each pass over all of them. Most pieces never win.
Vocabulary selection (Jean et al. 2015, sec. 3.2) scores only a shortlist. Here each example may
produce:
- the N pieces the generator favours a priori (largest output bias: the bias learns how common a
  piece is among summaries), plus the four special tokens;
- every piece of its own source, which the copy mechanism points at anyway;
- its source OOVs, as before.
Each example's distribution is normalised over that set alone, so its summary does not depend on
which other texts share its batch. The batch runs one product against the union of its examples'
sets, and a piece outside an example's own set is -inf for that example.

Decoders see a model whose "vocabulary" is the batch's columns: column c < n is piece `columns[c]`
(the specials keep their ids, since they sort first), and column n + k is the batch's OOV slot k.
`ShortlistView` maps previous tokens back to piece ids for the embedding; `to_ids` maps outputs.

This approximates the full softmax: summaries can differ from the full vocabulary's. BENCHMARKS.md
measures speed and ROUGE; it is off (0) unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from nlp_lstm.data.specials import SPECIALS


class ShortlistGenerator(nn.Module):
    """The generator's rows for the batch's columns; other examples' source pieces masked to -inf."""

    def __init__(self, generator: nn.Module, columns: torch.Tensor, shared: torch.Tensor) -> None:
        super().__init__()
        self.weight = generator.weight[columns].contiguous()  # float32, or bfloat16 (`--bf16-output`)
        self.bias = generator.bias[columns].contiguous()
        # (n,): 0 where every example may produce the column (specials and the top N), else -inf.
        self.closed = torch.zeros(shared.shape, device=shared.device).masked_fill_(~shared, float("-inf"))
        self.blocked: torch.Tensor | None = None  # (examples, n): 0, or -inf off the example's set

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = F.linear(inputs.to(self.weight.dtype), self.weight).to(inputs.dtype)
        examples, n = self.blocked.shape
        # One pass adds the bias and the mask (an add is cheaper than a masked fill; x + 0 is x).
        logits.view(examples, -1, n).add_((self.bias.to(logits.dtype) + self.blocked).unsqueeze(1))
        return logits


class ShortlistView:
    """A `Summarizer` seen through the batch's columns; what `beam_search` and `greedy_decode` need."""

    def __init__(self, model, columns: torch.Tensor, shared: torch.Tensor) -> None:
        self.model = model
        self.columns = columns
        self.generator = ShortlistGenerator(model.generator, columns, shared)

    # decoding_mode(model) switches the real model to eval mode and back.
    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def encode(self, **inputs):
        return self.model.encode(**inputs)

    def init_state(self, encoder_output):
        return self.model.init_state(encoder_output)

    def step(self, prev_ids, state, encoder_output, src_ext_ids, max_oovs, *, beam_size: int = 1):
        """`Summarizer.step` over columns: `src_ext_ids` and `prev_ids` are columns, and so is the output."""
        n, vocab_size = self.columns.numel(), self.model.config.vocab_size
        piece_ids = torch.where(prev_ids < n, self.columns[prev_ids.clamp(max=n - 1)], prev_ids - n + vocab_size)
        own = src_ext_ids.masked_fill(src_ext_ids >= n, 0)  # an OOV slot opens column 0 (PAD), shared anyway
        blocked = self.generator.closed.expand(src_ext_ids.shape[0], n).clone().scatter_(1, own, 0.0)  # (E, n)
        self.generator.blocked = blocked
        full, self.model.generator = self.model.generator, self.generator
        try:
            log_probs, new_state, attention, p_gen = self.model.step(
                piece_ids, state, encoder_output, src_ext_ids, max_oovs, beam_size=beam_size
            )
        finally:
            self.model.generator = full
        # The copy mixture's epsilon makes a masked column log(1e-12), not -inf: it is not this
        # example's to produce at all.
        log_probs[:, :n].view(blocked.shape[0], -1, n).add_(blocked.unsqueeze(1))
        return log_probs, new_state, attention, p_gen


def shortlist_batch(model, batch: dict, size: int) -> tuple[ShortlistView, dict, Callable[[list[list[int]]], list[list[int]]]]:
    """The model and batch in column space, and `to_ids` mapping decoded columns back to extended ids.

    Args:
        model: a `Summarizer` (its `generator` has `weight` `(V, H)` and `bias` `(V,)`).
        batch: a collated summarization batch (`src_ext_ids` in extended ids).
        size: N, how many pieces beyond the specials every example may produce.
    """
    vocab_size = model.config.vocab_size
    bias = model.generator.bias.detach().float()
    device = bias.device
    top = torch.argsort(bias[len(SPECIALS):], descending=True, stable=True)[:size] + len(SPECIALS)
    specials = torch.arange(len(SPECIALS), device=device)
    src = batch["src_ext_ids"]
    columns = torch.unique(torch.cat([specials, top, src[src < vocab_size]]))  # sorted: specials first
    n = columns.numel()
    to_column = torch.full((vocab_size,), -1, dtype=torch.long, device=device)
    to_column[columns] = torch.arange(n, device=device)
    shared = torch.zeros(n, dtype=torch.bool, device=device)
    shared[to_column[torch.cat([specials, top])]] = True
    mapped = torch.where(src < vocab_size, to_column[src.clamp(max=vocab_size - 1)], src - vocab_size + n)
    listed = columns.tolist()

    def to_ids(outputs: list[list[int]]) -> list[list[int]]:
        return [[listed[c] if c < n else c - n + vocab_size for c in output] for output in outputs]

    return ShortlistView(model, columns, shared), dict(batch, src_ext_ids=mapped), to_ids

"""The pointer-generator output layer (See et al. 2017, sec. 2.2).

The decoder either generates a word from the fixed vocabulary or copies a source token by pointing
at it with its attention. Source tokens outside the vocabulary get ids `vocab_size + k` (the batch's
`src_ext_ids`), so the output covers an *extended* vocabulary of `vocab_size + max_oovs` ids.

Output convention (the same with and without copying, so decoders need not care):
- width `vocab_size + max_oovs`;
- an extended slot that no source token of *this example* maps to is exactly `-inf` (it cannot be
  produced). Without copying every extended slot is `-inf`.
"""

import torch
from torch import nn
from torch.nn import functional as F

# Guards log(0) where a word has neither generation nor copy mass (See et al.'s code adds 1e-12 too).
EPSILON = 1e-12


class PointerGenerator(nn.Module):
    """p_gen = sigmoid(w_h^T h*_t + w_s^T s_t + w_x^T x_t + b_ptr)  (See et al. eq. 8).

    Args:
        context_size: size of the context vector h*_t, `2*hidden` for a BiLSTM encoder.
        state_size: decoder state s_t size.
        input_size: decoder input x_t size.
    """

    def __init__(self, *, context_size: int, state_size: int, input_size: int):
        super().__init__()
        self.proj = nn.Linear(context_size + state_size + input_size, 1)

    def forward(
        self, context: torch.Tensor, state: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        """`(batch, context_size)`, `(batch, state_size)`, `(batch, input_size)` -> p_gen `(batch,)`."""
        return torch.sigmoid(self.proj(torch.cat([context, state, inputs], dim=-1))).squeeze(-1)


def extended_log_probs(
    vocab_logits: torch.Tensor,
    *,
    attention: torch.Tensor,
    src_ext_ids: torch.Tensor,
    max_oovs: int,
    p_gen: torch.Tensor | None,
) -> torch.Tensor:
    """Log of the final distribution over the extended vocabulary (See et al. eq. 9).

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum_{i: w_i = w} a_i

    Rows are `examples x beams`, example-major, and the beams of an example share its `src_ext_ids`
    row (one beam per example outside beam search).

    Args:
        vocab_logits: `(rows, vocab_size)` generator scores; without autograd they are overwritten
            (decoding reuses their memory).
        attention: `(rows, src_len)` weights, zero at padding.
        src_ext_ids: `(examples, src_len)` source ids in the extended vocabulary; `rows` is a multiple
            of `examples`.
        max_oovs: number of extended slots to add (the batch's largest count of source OOVs).
        p_gen: `(rows,)` generation probability, or None for no copying (plain softmax).
    Returns:
        `(rows, vocab_size + max_oovs)` log-probabilities; see the module docstring for `-inf` slots.
    """
    rows, vocab_size = vocab_logits.shape
    if p_gen is None:
        log_probs = torch.log_softmax(vocab_logits, dim=-1)
        extra = log_probs.new_full((rows, max_oovs), float("-inf"))
        return torch.cat([log_probs, extra], dim=-1)

    examples, src_len = src_ext_ids.shape
    beams = rows // examples
    if torch.is_grad_enabled():
        vocab_probs = torch.softmax(vocab_logits, dim=-1)  # (R, V)
        # Out of place: softmax's backward reads its output. Everything after may work in place.
        probs = vocab_probs * p_gen.unsqueeze(-1)  # (R, V)
        if max_oovs:
            probs = F.pad(probs, (0, max_oovs))  # (R, V + max_oovs), zeros in the extended slots
    else:
        # Decoding: softmax in place, and the product straight into the wider output, which saves
        # two (R, V) allocations and a copy per step (the same operations, so the same bits).
        vocab_probs = torch.softmax(vocab_logits, dim=-1, out=vocab_logits)
        probs = vocab_probs.new_empty(rows, vocab_size + max_oovs)
        torch.mul(vocab_probs, p_gen.unsqueeze(-1), out=probs[:, :vocab_size])
        probs[:, vocab_size:].zero_()
    copy_probs = attention * (1.0 - p_gen).unsqueeze(-1)  # (R, S)
    index = src_ext_ids.unsqueeze(1).expand(examples, beams, src_len)  # the beams share it, no copy
    copy_probs = copy_probs.view(examples, beams, src_len)
    probs.view(examples, beams, -1).scatter_add_(2, index, copy_probs)  # (E, K, V + max_oovs)
    log_probs = probs.add_(EPSILON).log_()
    if max_oovs:
        # Extended slot j is reachable when some source token of the example maps to it; every
        # in-vocabulary slot is (padding maps to PAD, which is in-vocab).
        slots = torch.arange(vocab_size, vocab_size + max_oovs, device=src_ext_ids.device)
        reachable = (src_ext_ids.unsqueeze(-1) == slots).any(dim=1)  # (E, max_oovs)
        extended = log_probs.view(examples, beams, -1)[:, :, vocab_size:]  # (E, K, max_oovs)
        extended.masked_fill_(~reachable.unsqueeze(1), float("-inf"))
    return log_probs

"""Greedy decoding: the most likely next token at every step.

Same token rules as beam search (`block_tokens`), so `beam_search` with `beam_size=1` and no length
or coverage penalty gives the same output. Rows of finished examples are dropped as they finish.
"""

import torch

from nlp_lstm.data.specials import BOS_ID, EOS_ID
from nlp_lstm.decoding.beam_search import (
    DecodeConfig,
    block_tokens,
    check_lengths,
    encode_batch,
    decoding_mode,
)


def greedy_decode(
    model,
    batch: dict,
    *,
    max_length: int = 30,
    min_length: int = 1,
    no_repeat_ngram_size: int = 0,
) -> list[list[int]]:
    """Decode every example of a batch greedily.

    Args:
        model: anything with `encode`, `init_state`, `step` like `Summarizer`.
        batch: `src_ids`, `src_ext_ids`, `src_lengths`, `src_pad_mask` (`batch, src_len`), `max_oovs`.
        max_length: at most this many tokens per output (EOS not counted).
        min_length: EOS is blocked until this many tokens were produced.
        no_repeat_ngram_size: block any n-gram already produced; 0 disables.
    Returns:
        one list of extended ids per example, EOS stripped.
    """
    check_lengths(
        min_length=min_length, max_length=max_length, no_repeat_ngram_size=no_repeat_ngram_size
    )
    with decoding_mode(model):
        encoder_output, state, src_ext_ids, max_oovs = encode_batch(model, batch)
        device = src_ext_ids.device
        num_examples = src_ext_ids.shape[0]
        # Per original example: its output so far, kept when its row ends (no loop over rows).
        outputs = torch.zeros(num_examples, max_length, dtype=torch.long, device=device)
        lengths = torch.full((num_examples,), max_length, dtype=torch.long, device=device)
        active = torch.arange(num_examples, device=device)  # original index of each row
        tokens = torch.empty(num_examples, 0, dtype=torch.long, device=device)  # (A, t)
        prev_ids = torch.full((num_examples,), BOS_ID, dtype=torch.long, device=device)

        for step in range(max_length):
            log_probs, state, _, _ = model.step(
                prev_ids=prev_ids,
                state=state,
                encoder_output=encoder_output,
                src_ext_ids=src_ext_ids,
                max_oovs=max_oovs,
            )
            block_tokens(
                log_probs, tokens, min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size
            )
            prev_ids = log_probs.argmax(dim=-1)  # (A,)
            tokens = torch.cat([tokens, prev_ids.unsqueeze(1)], dim=1)
            ended = prev_ids == EOS_ID
            if ended.any():
                finished = active[ended]
                outputs[finished, :step] = tokens[ended, :step]
                lengths[finished] = step
                keep = (~ended).nonzero().flatten()
                if keep.numel() == 0:
                    break
                active, tokens, prev_ids = active[keep], tokens[keep], prev_ids[keep]
                state = state.index_select(keep)
                encoder_output = encoder_output.index_select(keep)
                src_ext_ids = src_ext_ids.index_select(0, keep)
        else:  # max_length reached without EOS
            outputs[active] = tokens
        return [row[:length] for row, length in zip(outputs.tolist(), lengths.tolist())]


def greedy_decode_config(model, batch: dict, config: DecodeConfig) -> list[list[int]]:
    """Greedy decoding with the length and n-gram settings of a `DecodeConfig` (beam ignored)."""
    return greedy_decode(
        model,
        batch,
        max_length=config.max_length,
        min_length=config.min_length,
        no_repeat_ngram_size=config.no_repeat_ngram_size,
    )

"""Batched beam search over a model's `encode` / `init_state` / `step` (DESIGN.md sec. 3).

Scoring (Wu et al. 2016, sec. 7): a finished hypothesis Y of `len(Y)` tokens (EOS not counted) scores
    s(Y) = log P(Y) / lp(Y) + cp(Y),   lp(Y) = ((5 + len(Y)) / 6) ** alpha,
    cp(Y) = beta * sum_i log(min(coverage_i, 1.0))   over real source positions.
Live hypotheses are ranked by their raw log P (all live ones have the same length), the usual choice
(fairseq, OpenNMT without a per-step penalty).

Layout: rows are `example x beam`, example-major: row `a * K + k` is beam k of active example a.
    scores          (A, K)      raw log P of each live beam; -inf for an empty slot
    tokens          (A * K, t)  generated extended ids so far
    prev_ids        (A * K,)    last token (BOS at the start)
    state           rows as above (`DecoderState.index_select`)
    encoder_output  (A, ...)    one row per example, shared by its beams (`step(beam_size=K)`)
    src_ext_ids     (A, S)
    best_*          (N, ...)    per original example: score, tokens and length of the best finished
                                hypothesis so far (score -inf while there is none)
An example leaves the active rows (tensors shrunk with `index_select`) as soon as its best finished
hypothesis cannot be beaten by any live one, so finished examples cost nothing more. The per-step
bookkeeping is tensor operations over all active rows; nothing loops over rows in Python. The 2K
best of an example's K x (vocab + OOVs) candidates come from `nlp_lstm.decoding.topk.top_k`, which
returns what `torch.topk` returns, tie order included, reading only a few blocks of each row.
"""

from dataclasses import dataclass

import torch

from nlp_lstm.config import SIZE_CAPS
from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID
from nlp_lstm.decoding.topk import top_k
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.modes import evaluation_mode


# Caps on saved or requested decoding sizes: a served summarizer decodes every request with its saved
# settings, so a beam of 10**6 (6 GB on the first summary) must be refused when the model is loaded.
MAX_BEAM_SIZE = 256
MAX_DECODE_LENGTH = 4096


@dataclass
class DecodeConfig:
    """Decoding settings shared by beam search and (in part) greedy decoding."""

    beam_size: int = 4
    min_length: int = 1  # EOS is blocked until this many tokens were produced
    max_length: int = 30  # at most this many tokens (EOS not counted)
    length_penalty: float = 1.0  # alpha of Wu et al. 2016; 0 disables
    no_repeat_ngram_size: int = 3  # 0 disables; blocks any n-gram already in the hypothesis
    coverage_penalty: float = 0.0  # beta of Wu et al. 2016; 0 disables
    # Pieces beyond the specials that every example may generate, besides its own source's; 0 = the
    # whole vocabulary. Applied by `SummarizerPredictor.decode` (`nlp_lstm.decoding.shortlist`).
    shortlist: int = 0

    def __post_init__(self):
        check_lengths(
            min_length=self.min_length,
            max_length=self.max_length,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
        )
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise NlpLstmError(f"beam_size={self.beam_size} is invalid: use 1 to {MAX_BEAM_SIZE}")
        if isinstance(self.shortlist, bool) or not isinstance(self.shortlist, int) or self.shortlist < 0:
            raise NlpLstmError(
                f"shortlist={self.shortlist!r} is invalid: use 0 (the whole vocabulary) or a positive count"
            )
        if self.max_length > MAX_DECODE_LENGTH or self.shortlist > SIZE_CAPS["vocab_size"]:
            raise NlpLstmError(
                f"max_length={self.max_length} / shortlist={self.shortlist} is too large: use at most "
                f"{MAX_DECODE_LENGTH} tokens and {SIZE_CAPS['vocab_size']} pieces"
            )
        if self.coverage_penalty < 0:
            raise NlpLstmError(
                f"coverage_penalty={self.coverage_penalty} is invalid: use 0 (off) or more"
            )


def check_lengths(*, min_length: int, max_length: int, no_repeat_ngram_size: int) -> None:
    """Validate the settings greedy and beam search share."""
    if max_length < 1:
        raise NlpLstmError(f"max_length={max_length} is invalid: use 1 or more")
    if not 0 <= min_length <= max_length:
        raise NlpLstmError(
            f"min_length={min_length} is invalid: use 0 <= min_length <= max_length={max_length}"
        )
    if no_repeat_ngram_size < 0:
        raise NlpLstmError(
            f"no_repeat_ngram_size={no_repeat_ngram_size} is invalid: use 0 (off) or more"
        )


decoding_mode = evaluation_mode  # eval mode and no autograd; the model's training flag is restored after


def block_tokens(
    log_probs: torch.Tensor, tokens: torch.Tensor, *, min_length: int, no_repeat_ngram_size: int
) -> torch.Tensor:
    """Set forbidden next tokens to -inf, in place.

    PAD and BOS are never produced; EOS not before `min_length` tokens; and with n-gram blocking, no
    token that would complete an n-gram already in the hypothesis (Paulus et al. 2018, sec. 2.5).

    Args:
        log_probs: `(rows, vocab)` next-token scores.
        tokens: `(rows, t)` tokens produced so far.
    Returns:
        `log_probs`.
    """
    log_probs[:, PAD_ID] = float("-inf")  # two column writes; a list index costs an index_put
    log_probs[:, BOS_ID] = float("-inf")
    length = tokens.shape[1]
    if length < min_length:
        log_probs[:, EOS_ID] = float("-inf")
    n = no_repeat_ngram_size
    if n and length >= n:
        windows = tokens.unfold(1, n, 1)  # (rows, t - n + 1, n): every n-gram so far
        prefix = tokens[:, length - n + 1 :]  # (rows, n - 1): the n-gram the next token completes
        seen = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(dim=-1)  # (rows, t - n + 1)
        rows, positions = seen.nonzero(as_tuple=True)
        log_probs[rows, windows[rows, positions, -1]] = float("-inf")
    return log_probs


def encode_batch(model, batch: dict):
    """Encode a batch dict; returns `(encoder_output, state, src_ext_ids, max_oovs)`."""
    encoder_output = model.encode(
        src_ids=batch["src_ids"], src_lengths=batch["src_lengths"], src_pad_mask=batch["src_pad_mask"]
    )
    state = model.init_state(encoder_output)
    return encoder_output, state, batch["src_ext_ids"], int(batch["max_oovs"])


def length_penalty(length: int, alpha: float) -> float:
    """Wu et al. 2016 eq. 14: ((5 + |Y|) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(coverage: torch.Tensor, pad_mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Wu et al. 2016 eq. 14: beta * sum_i log(min(coverage_i, 1)) over real source positions.

    Args:
        coverage: `(rows, src_len)` summed attention. pad_mask: `(rows, src_len)` True at padding.
    Returns:
        `(rows,)` penalties (<= 0).
    """
    if beta == 0:
        return coverage.new_zeros(coverage.shape[0])
    # The floor keeps a never-attended position finite (log 0); Wu et al. leave it implicit.
    logs = coverage.clamp(min=1e-10, max=1.0).log().masked_fill(pad_mask, 0.0)
    return beta * logs.sum(dim=-1)


@dataclass
class Hypothesis:
    """A finished output: extended ids without EOS, and its score s(Y) (module docstring)."""

    tokens: list[int]
    score: float


def beam_search(model, batch: dict, config: DecodeConfig) -> list[list[int]]:
    """Best hypothesis per example.

    Args:
        model: anything with `encode`, `init_state`, `step` like `Summarizer`.
        batch: `src_ids`, `src_ext_ids`, `src_lengths`, `src_pad_mask` (`batch, src_len`), `max_oovs`.
        config: beam size, lengths, penalties, n-gram blocking.
    Returns:
        one list of extended ids per example (ids >= vocab_size are copied source OOVs), EOS stripped.
    """
    return [hypothesis.tokens for hypothesis in beam_search_hypotheses(model, batch, config)]


def beam_search_hypotheses(model, batch: dict, config: DecodeConfig) -> list[Hypothesis]:
    """Like `beam_search`, with the score of each example's best hypothesis."""
    beam_size, alpha, beta = config.beam_size, config.length_penalty, config.coverage_penalty
    with decoding_mode(model):
        encoder_output, state, src_ext_ids, max_oovs = encode_batch(model, batch)
        num_examples = src_ext_ids.shape[0]
        device = src_ext_ids.device
        active = torch.arange(num_examples, device=device)  # (A,) original index of each example
        beams = torch.arange(beam_size, device=device)
        first_beam_rows = torch.arange(num_examples, device=device).repeat_interleave(beam_size)
        state = state.index_select(first_beam_rows)  # (A*K,) K copies of each example's start
        scores = torch.full((num_examples, beam_size), float("-inf"), device=device)  # (A, K)
        scores[:, 0] = 0.0  # all beams start identical: expand only the first
        tokens = torch.empty(num_examples * beam_size, 0, dtype=torch.long, device=device)
        prev_ids = torch.full((num_examples * beam_size,), BOS_ID, dtype=torch.long, device=device)
        # s(Y) in float64 (Python floats' precision); log P stays float32 like the model's output.
        best_scores = torch.full((num_examples,), float("-inf"), dtype=torch.float64, device=device)
        best_tokens = torch.zeros(num_examples, config.max_length, dtype=torch.long, device=device)
        best_lengths = torch.zeros(num_examples, dtype=torch.long, device=device)

        def finish(final_scores: torch.Tensor, rows: torch.Tensor, length: int) -> None:
            """Keep each example's best of `final_scores` `(A, C)` (-inf: no candidate) if it beats
            the best so far; `rows` `(A, C)` are the candidates' rows of `tokens`."""
            top, rank = final_scores.max(dim=1)  # the first of equal scores, as a loop would keep
            better = top > best_scores[active]  # strict: an earlier equal score stays
            if better.any():
                examples = active[better]
                best_scores[examples] = top[better]
                best_lengths[examples] = length
                best_tokens[examples, :length] = tokens[rows[better, rank[better]], :length]

        def hypotheses() -> list[Hypothesis]:
            return [
                Hypothesis(tokens=row[:length], score=score)
                for row, length, score in zip(
                    best_tokens.tolist(), best_lengths.tolist(), best_scores.tolist()
                )
            ]

        for step in range(config.max_length):
            log_probs, state, _, _ = model.step(
                prev_ids=prev_ids,
                state=state,
                encoder_output=encoder_output,
                src_ext_ids=src_ext_ids,
                max_oovs=max_oovs,
                beam_size=beam_size,
            )
            block_tokens(
                log_probs,
                tokens,
                min_length=config.min_length,
                no_repeat_ngram_size=config.no_repeat_ngram_size,
            )
            num_active, width = active.numel(), log_probs.shape[1]
            candidates = log_probs.add_(scores.view(-1, 1)).view(num_active, beam_size * width)
            # 2K candidates: at most K end in EOS (one per beam), so K live ones always remain.
            top_scores, top_indices = top_k(candidates, 2 * beam_size)  # (A, 2K), as torch.topk
            top_beams, top_tokens = top_indices // width, top_indices % width
            is_eos = top_tokens == EOS_ID
            first_rows = torch.arange(num_active, device=device).unsqueeze(1) * beam_size  # (A, 1)

            # Finish EOS candidates ranked within the top K (fairseq's rule); rows index pre-step.
            ended = is_eos[:, :beam_size] & (top_scores[:, :beam_size] > float("-inf"))  # (A, K)
            if ended.any():
                ended_rows = first_rows + top_beams[:, :beam_size]  # (A, K)
                examples, ranks = ended.nonzero(as_tuple=True)
                penalties = coverage_penalty(
                    state.coverage[ended_rows[examples, ranks]],
                    encoder_output.pad_mask[examples],
                    beta,
                )
                raw = top_scores[examples, ranks].double()
                final_scores = raw.new_full(ended.shape, float("-inf"))  # (A, K) float64
                final_scores[examples, ranks] = raw / length_penalty(step, alpha) + penalties.double()
                finish(final_scores, ended_rows, step)

            # The K best non-EOS candidates become the live beams (stable sort keeps rank order).
            live = torch.argsort(is_eos.int(), dim=1, stable=True)[:, :beam_size]  # (A, K)
            scores = top_scores.gather(1, live)
            origin = (first_rows + top_beams.gather(1, live)).view(-1)  # (A*K,) each one's old row
            prev_ids = top_tokens.gather(1, live).view(-1)
            tokens = torch.cat([tokens.index_select(0, origin), prev_ids.unsqueeze(1)], dim=1)
            state = state.index_select(origin)

            if step + 1 == config.max_length:
                break
            # An example is done when no live beam can still beat its best finished hypothesis:
            # log P only falls, so a live beam's score is at most log P / max(lp) (+ cp <= 0).
            best_lp = max(length_penalty(step + 1, alpha), length_penalty(config.max_length, alpha))
            bounds = scores.max(dim=1).values / best_lp  # (A,) float32
            done = best_scores[active] >= bounds
            if done.any():
                keep = (~done).nonzero().flatten()  # (A',)
                if keep.numel() == 0:
                    return hypotheses()
                keep_rows = (keep.unsqueeze(1) * beam_size + beams).view(-1)  # (A'*K,)
                active = active[keep]
                scores = scores.index_select(0, keep)
                tokens = tokens.index_select(0, keep_rows)
                prev_ids = prev_ids.index_select(0, keep_rows)
                state = state.index_select(keep_rows)
                encoder_output = encoder_output.index_select(keep)
                src_ext_ids = src_ext_ids.index_select(0, keep)

        # max_length reached: live beams end here without EOS.
        num_active = active.numel()
        pad_mask = encoder_output.pad_mask.repeat_interleave(beam_size, dim=0)  # (A*K, S)
        penalties = coverage_penalty(state.coverage, pad_mask, beta).view(num_active, beam_size)
        final_scores = torch.where(
            scores > float("-inf"),
            scores.double() / length_penalty(config.max_length, alpha) + penalties.double(),
            float("-inf"),
        )
        rows = torch.arange(num_active * beam_size, device=device).view(num_active, beam_size)
        finish(final_scores, rows, config.max_length)
        return hypotheses()

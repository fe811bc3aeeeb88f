"""A linear-chain conditional random field over per-token emission scores (Lafferty et al. 2001;
as the output layer of a BiLSTM tagger: Huang et al. 2015, Lample et al. 2016, sec. 2.2).

For a sentence of n tokens with emissions `E (n, K)` and tags `y_1..y_n`, the score of a path is

    s(y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_n]

and `p(y | x) = exp(s(y)) / Z`, `Z` summing `exp(s)` over all K^n paths. Everything runs batched
over ragged sentences in log space, one Python step per time step (`unbind(1)`, NOTES.md):

- forward algorithm: `alpha[t, j] = logsumexp_i(alpha[t-1, i] + trans[i, j]) + E[t, j]`, `alpha[1] =
  start + E[1]`, `log Z = logsumexp_j(alpha[n, j] + end[j])`. Rows that have ended carry their alpha
  unchanged through the padding, so `log Z` is read at the last step for every row.
- Viterbi: the same recursion with max, and back-pointers `(B, T, K)`; each row's path is traced
  back from its own last token.
- backward algorithm: `beta[n, i] = end[i]`, `beta[t, i] = logsumexp_j(trans[i, j] + E[t+1, j] +
  beta[t+1, j])`; marginals `p(y_t = k | x) = exp(alpha[t, k] + beta[t, k] - log Z)`, and the exact
  probability of a whole segment's tags (`segment_probability`: a span's confidence, not a product of
  its tokens' marginals, nor a Viterbi score as Flair's "confidence" is).

Hard constraints (`span_constraints`): where tags are BIO/BIOES spans, transitions that no valid
sequence takes (`O -> I-X`, `B-X -> I-Y`, starting on `I-X`, ending on `B-X` in BIOES, ...) get
`FORBIDDEN` added to their score, as AllenNLP's `ConditionalRandomField` does. A large finite
penalty rather than -inf: a training sentence with an invalid transition (an unrepaired corpus)
then gives a large but finite loss instead of inf/NaN gradients, and no valid path is affected.

Shapes: emissions `(B, T, K)`, `pad_mask (B, T)` True at padding (every row has at least one real
token, and real tokens come first), tags `(B, T)` long.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.spans import split_tag

FORBIDDEN = -10000.0  # added to the score of a transition that no valid tag sequence takes


def span_constraints(tags: Sequence[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which transitions a valid BIO or BIOES sequence can take.

    Args:
        tags: the tag names, in tag-id order.
        scheme: "bio" or "bioes" ("plain" allows everything).
    Returns:
        `allowed (K, K)` bool (`[i, j]`: tag j may follow tag i), `allowed_start (K,)`, `allowed_end (K,)`.
    """
    count = len(tags)
    if scheme == "plain":
        return torch.ones(count, count, dtype=torch.bool), torch.ones(count, dtype=torch.bool), torch.ones(count, dtype=torch.bool)
    parsed = [split_tag(tag) for tag in tags]
    # In BIO a span may end anywhere; in BIOES only on E- or S-. After a span ends (or from O or the
    # start) only O, B- and (BIOES) S- may come; inside a span only I-/E- of the same type.
    closes = ("O", "B", "I") if scheme == "bio" else ("O", "E", "S")
    opens = ("O", "B") if scheme == "bio" else ("O", "B", "S")
    allowed_start = torch.tensor([prefix in opens for prefix, _ in parsed])
    allowed_end = torch.tensor([prefix in closes for prefix, _ in parsed])
    allowed = torch.zeros(count, count, dtype=torch.bool)
    for i, (prefix_i, label_i) in enumerate(parsed):
        for j, (prefix_j, label_j) in enumerate(parsed):
            continues = prefix_i in ("B", "I") and prefix_j in ("I", "E") and label_i == label_j
            if scheme == "bio":
                allowed[i, j] = prefix_j in opens or continues
            else:
                allowed[i, j] = continues or (prefix_i in closes and prefix_j in opens)
    return allowed, allowed_start, allowed_end


class CRF(nn.Module):
    """Transition scores `(K, K)` (`[i, j]`: from tag i to tag j), start and end scores `(K,)`, and
    optional hard constraints (module doc). All start at zero."""

    def __init__(self, num_tags: int, *, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if num_tags < 1:
            raise NlpLstmError(f"a CRF needs at least one tag, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start_transitions = nn.Parameter(torch.zeros(num_tags))
        self.end_transitions = nn.Parameter(torch.zeros(num_tags))
        allowed, allowed_start, allowed_end = constraints or (torch.ones(num_tags, num_tags, dtype=torch.bool),
                                                              torch.ones(num_tags, dtype=torch.bool),
                                                              torch.ones(num_tags, dtype=torch.bool))
        if tuple(allowed.shape) != (num_tags, num_tags):
            raise NlpLstmError(f"CRF constraints are {tuple(allowed.shape)} for {num_tags} tags")
        # Penalties, not parameters: rebuilt from the tag names, so not saved with the weights.
        self.register_buffer("transition_penalty", (~allowed).float() * FORBIDDEN, persistent=False)
        self.register_buffer("start_penalty", (~allowed_start).float() * FORBIDDEN, persistent=False)
        self.register_buffer("end_penalty", (~allowed_end).float() * FORBIDDEN, persistent=False)

    def constrained_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The transition `(K, K)`, start `(K,)` and end `(K,)` scores with the constraints' penalties
        added: what decoding outside torch (an ONNX runtime) needs to give the same paths."""
        return (self.transitions + self.transition_penalty, self.start_transitions + self.start_penalty,
                self.end_transitions + self.end_penalty)

    def _check(self, emissions: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise NlpLstmError(f"CRF emissions must be (batch, time, {self.num_tags}), got {tuple(emissions.shape)}")
        if tuple(pad_mask.shape) != tuple(emissions.shape[:2]):
            raise NlpLstmError(f"pad_mask {tuple(pad_mask.shape)} does not match emissions {tuple(emissions.shape[:2])}")
        lengths = (~pad_mask).sum(dim=1)
        if emissions.shape[1] == 0 or bool((lengths == 0).any()):
            raise NlpLstmError("a sentence with no tokens reached the CRF; drop empty sentences before tagging")
        return lengths

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """`s(y)` of the given tags: `(B,)`."""
        lengths = self._check(emissions, pad_mask)
        transitions, start, end = self.constrained_scores()
        real = (~pad_mask).to(emissions.dtype)  # (B, T)
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        score = start[tags[:, 0]] + (emitted * real).sum(dim=1)
        if tags.shape[1] > 1:
            moved = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            score = score + (moved * real[:, 1:]).sum(dim=1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def _alphas(self, emissions: torch.Tensor, pad_mask: torch.Tensor) -> list[torch.Tensor]:
        """alpha per step, `T x (B, K)`; past a row's end its last alpha is carried."""
        transitions, start, _ = self.constrained_scores()
        steps = emissions.unbind(1)
        real = (~pad_mask).unbind(1)
        alphas = [start + steps[0]]  # (B, K)
        for emission, is_real in zip(steps[1:], real[1:]):
            # (B, K, 1) + (K, K) -> logsumexp over the previous tag -> (B, K)
            step = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions, dim=1) + emission
            alphas.append(torch.where(is_real.unsqueeze(1), step, alphas[-1]))
        return alphas

    def log_partition(self, emissions: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """`log Z`: `(B,)`."""
        self._check(emissions, pad_mask)
        _, _, end = self.constrained_scores()
        return torch.logsumexp(self._alphas(emissions, pad_mask)[-1] + end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each sentence's tags, `-log p(y | x)`: `(B,)`."""
        return self.log_partition(emissions, pad_mask) - self.path_score(emissions, tags, pad_mask)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The best path of each sentence.

        Returns:
            tags `(B, T)` long (0 at padding), and their scores `(B,)`.
        """
        lengths = self._check(emissions, pad_mask)
        transitions, start, end = self.constrained_scores()
        steps = emissions.unbind(1)
        real = (~pad_mask).unbind(1)
        best = start + steps[0]  # (B, K)
        pointers = []  # T-1 x (B, K): the best previous tag for each tag at step t
        for emission, is_real in zip(steps[1:], real[1:]):
            candidates, previous = (best.unsqueeze(2) + transitions).max(dim=1)  # (B, K) each
            best = torch.where(is_real.unsqueeze(1), candidates + emission, best)
            pointers.append(previous)
        scores, current = (best + end).max(dim=1)  # (B,)
        batch, time = pad_mask.shape
        path = torch.zeros(batch, time, dtype=torch.long, device=emissions.device)
        for t in range(time - 1, -1, -1):
            is_real = t < lengths  # (B,)
            path[:, t] = torch.where(is_real, current, 0)
            if t > 0:  # rows still inside their sentence step back; rows in padding wait
                current = torch.where(is_real, pointers[t - 1].gather(1, current.unsqueeze(1)).squeeze(1), current)
        return path, scores

    @torch.no_grad()
    def forward_backward(self, emissions: torch.Tensor, pad_mask: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """alpha `(B, T, K)`, beta `(B, T, K)` and `log Z` `(B,)` (module doc); past a row's end the
        values are not meaningful."""
        lengths = self._check(emissions, pad_mask)
        transitions, _, end = self.constrained_scores()
        alphas = self._alphas(emissions, pad_mask)
        log_z = torch.logsumexp(alphas[-1] + end, dim=1)  # (B,)
        steps = emissions.unbind(1)
        time = len(steps)
        betas = [None] * time
        beta = end.expand_as(alphas[0])
        for t in range(time - 1, -1, -1):
            if t < time - 1:
                # (B, 1, K) + (K, K) -> logsumexp over the next tag -> (B, K)
                step = torch.logsumexp((steps[t + 1] + beta).unsqueeze(1) + transitions, dim=2)
                beta = torch.where((t < lengths - 1).unsqueeze(1), step, end.expand_as(step))
            betas[t] = beta
        return torch.stack(alphas, dim=1), torch.stack(betas, dim=1), log_z

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """`p(y_t = k | x)` for every token: `(B, T, K)`, rows summing to 1 (0 at padding)."""
        alphas, betas, log_z = self.forward_backward(emissions, pad_mask)
        log_marginals = alphas + betas - log_z.view(-1, 1, 1)  # (B, T, K)
        return log_marginals.exp().masked_fill(pad_mask.unsqueeze(-1), 0.0)

    @torch.no_grad()
    def segment_probability(self, emissions: torch.Tensor, pad_mask: torch.Tensor, forward_backward: tuple,
                            *, row: int, start: int, tags: Sequence[int], not_next: Sequence[int] = ()) -> float:
        """`p(y_start .. y_start+n-1 = tags | x)` for one sentence, exactly: `exp(alpha[start, y_start]
        + the transitions and emissions inside + beta[end, y_end] - log Z)`. With `not_next`, also
        that the tag after the segment (if any) is none of those: a BIO span's confidence is its
        tags with no `I-X` after them.

        Args:
            emissions: `(B, T, K)`; pad_mask: `(B, T)`; forward_backward: `forward_backward`'s result.
        """
        alphas, betas, log_z = forward_backward
        transitions, _, _ = self.constrained_scores()
        end = start + len(tags) - 1
        length = int((~pad_mask[row]).sum())
        if start < 0 or end >= length:
            raise NlpLstmError(f"segment {start}..{end} lies outside sentence {row} of {length} tokens")
        log_inside = alphas[row, start, tags[0]]
        for t in range(start + 1, end + 1):
            log_inside = log_inside + transitions[tags[t - start - 1], tags[t - start]] + emissions[row, t, tags[t - start]]
        probability = float(torch.exp(log_inside + betas[row, end, tags[-1]] - log_z[row]))
        if not_next and end + 1 < length:  # minus the paths that go on into one of `not_next`
            following = torch.tensor(list(not_next), device=emissions.device)
            log_next = (log_inside + transitions[tags[-1], following] + emissions[row, end + 1, following]
                        + betas[row, end + 1, following] - log_z[row])  # (len(not_next),)
            probability -= float(torch.exp(log_next).sum())
        return min(max(probability, 0.0), 1.0)

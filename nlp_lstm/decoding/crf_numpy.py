"""Linear-chain CRF inference in numpy, over emission scores computed elsewhere (PyTorch or an ONNX
graph): Viterbi paths, token marginals, and the exact probability of each span's tags.

The same recursions as `nn/crf.py` (its module doc has the equations), written for prediction:
batched over ragged sentences, one numpy step per time step, no autograd. They read the CRF's
*constrained* scores (`CRF.constrained_scores()`: transitions `(K, K)`, start `(K,)`, end `(K,)`,
the hard-constraint penalties added), which is all a deployment without torch needs beside the
emission graph (docs/deploy-onnx.md).

Viterbi repeats `CRF.viterbi`'s float32 operations in the same order (`best[i] + trans[i, j]`, max
over i, then `+ E[t, j]`), and numpy's `argmax` takes the first maximum as torch's `max` does, so the
two give the same path even where paths tie.

Shapes: emissions `(B, T, K)` float32, lengths `(B,)` (each >= 1, real tokens first).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CrfScores(NamedTuple):
    """The constrained transition `(K, K)` (`[i, j]`: from tag i to tag j), start `(K,)` and end
    `(K,)` scores, float32."""

    transitions: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _real(lengths: np.ndarray, time: int) -> np.ndarray:
    """`(B, T)` True at real tokens."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def viterbi(emissions: np.ndarray, lengths: np.ndarray, scores: CrfScores) -> np.ndarray:
    """The best path of each sentence: `(B, T)` int64 tag ids, 0 at padding."""
    batch, time, _ = emissions.shape
    real = _real(lengths, time)
    best = scores.start + emissions[:, 0]  # (B, K)
    pointers = np.empty((max(time - 1, 0), batch, emissions.shape[2]), dtype=np.int64)  # best previous tag
    for t in range(1, time):
        candidates = best[:, :, None] + scores.transitions  # (B, K_prev, K)
        previous = candidates.argmax(axis=1)  # (B, K)
        pointers[t - 1] = previous
        step = np.take_along_axis(candidates, previous[:, None, :], axis=1)[:, 0] + emissions[:, t]
        best = np.where(real[:, t, None], step, best)
    current = (best + scores.end).argmax(axis=1)  # (B,)
    path = np.zeros((batch, time), dtype=np.int64)
    rows = np.arange(batch)
    lengths = np.asarray(lengths)
    for t in range(time - 1, -1, -1):
        is_real = t < lengths
        path[:, t] = np.where(is_real, current, 0)
        if t > 0:  # rows inside their sentence step back; rows in padding wait
            current = np.where(is_real, pointers[t - 1, rows, current], current)
    return path


class ForwardBackward(NamedTuple):
    """The forward and backward variables, scaled (Rabiner 1989, sec. V.A): per row and step the
    vectors are normalised to sum to 1 and the logs of the factors kept, so the recursions are plain
    products with `exp(transitions)` (a `(B, K) @ (K, K)` matmul a step, no logsumexp) in float64.

    `log alpha[b, t, k] = log(alpha_hat[b, t, k]) + log_alpha_scale[b, t]`; likewise beta, for the
    real steps of each row. `log_z`: `(B,)`.
    """

    alpha_hat: np.ndarray
    beta_hat: np.ndarray
    log_alpha_scale: np.ndarray
    log_beta_scale: np.ndarray
    log_z: np.ndarray

    def log_alphas(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log 0 = -inf: a tag no valid path reaches
            return np.log(self.alpha_hat) + self.log_alpha_scale[:, :, None]

    def log_betas(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.beta_hat) + self.log_beta_scale[:, :, None]


def forward_backward(emissions: np.ndarray, lengths: np.ndarray, scores: CrfScores) -> ForwardBackward:
    """alpha, beta and `log Z` (`nn/crf.py` module doc) of every row, scaled (`ForwardBackward`)."""
    batch, time, _ = emissions.shape
    lengths = np.asarray(lengths)
    real = _real(lengths, time)
    shift = emissions.max(axis=2).astype(np.float64)  # (B, T): exp(E - shift) <= 1, no overflow
    phi = np.exp(emissions - shift[:, :, None], dtype=np.float64)  # (B, T, K)
    transitions = np.exp(scores.transitions.astype(np.float64))  # FORBIDDEN -> exactly 0
    end = np.exp(scores.end.astype(np.float64))
    alpha_hat = np.empty(phi.shape)
    log_scale = np.zeros((batch, time))  # log of each step's factor; 0 past a row's end
    first = np.exp(scores.start.astype(np.float64)) * phi[:, 0]
    total = first.sum(axis=1)
    alpha_hat[:, 0] = first / total[:, None]
    log_scale[:, 0] = np.log(total) + shift[:, 0]
    for t in range(1, time):
        step = (alpha_hat[:, t - 1] @ transitions) * phi[:, t]  # (B, K)
        total = step.sum(axis=1)
        is_real = real[:, t]
        with np.errstate(divide="ignore", invalid="ignore"):  # padding rows: discarded
            alpha_hat[:, t] = np.where(is_real[:, None], step / total[:, None], alpha_hat[:, t - 1])
            log_scale[:, t] = np.where(is_real, np.log(total) + shift[:, t], 0.0)
    log_alpha_scale = np.cumsum(log_scale, axis=1)
    log_z = np.log(alpha_hat[:, -1] @ end) + log_alpha_scale[:, -1]  # rows carry their last alpha
    beta_hat = np.empty(phi.shape)
    end_total = end.sum()
    end_hat = end / end_total
    back_scale = np.where(np.arange(time)[None, :] == (lengths - 1)[:, None], np.log(end_total), 0.0)  # (B, T)
    beta_hat[:, -1] = end_hat
    for t in range(time - 2, -1, -1):
        step = (phi[:, t + 1] * beta_hat[:, t + 1]) @ transitions.T  # (B, K): sum over the next tag
        total = step.sum(axis=1)
        inside = t < lengths - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            beta_hat[:, t] = np.where(inside[:, None], step / total[:, None], end_hat)
            back_scale[:, t] = np.where(inside, np.log(total) + shift[:, t + 1], back_scale[:, t])
    log_beta_scale = np.cumsum(back_scale[:, ::-1], axis=1)[:, ::-1]  # from t to the row's last token
    return ForwardBackward(alpha_hat, beta_hat, log_alpha_scale, log_beta_scale, log_z)


def marginals(result: ForwardBackward, lengths: np.ndarray) -> np.ndarray:
    """`p(y_t = k | x)`: `(B, T, K)` float64, rows summing to 1 (0 at padding). alpha * beta is
    `p(y_t = k, x)` up to one factor per token, so normalising each token's vector is exact."""
    product = result.alpha_hat * result.beta_hat
    product /= product.sum(axis=2, keepdims=True)
    product[~_real(lengths, product.shape[1])] = 0.0
    return product


def segment_probabilities(emissions: np.ndarray, lengths: np.ndarray, scores: CrfScores,
                          result: ForwardBackward, paths: np.ndarray, *,
                          rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, not_next: np.ndarray) -> np.ndarray:
    """For S segments at once, `p(y_start .. y_end-1 = paths[row, start:end] | x)`, and (where
    `not_next[s] >= 0` and a token follows) that the next tag is not `not_next[s]`: a BIO span's
    confidence is its tags with no `I-X` after them (`CRF.segment_probability`, one span at a time).

    The score inside a segment is a difference of cumulative sums along each row's path (float64).

    Args:
        paths: `(B, T)` the tags the segments take; rows, starts, ends (exclusive), not_next: `(S,)`.
    Returns:
        `(S,)` float64 probabilities in [0, 1].
    """
    if len(rows) == 0:
        return np.zeros(0)
    batch, time, _ = emissions.shape
    transitions = scores.transitions.astype(np.float64)
    emitted = np.take_along_axis(emissions, paths[:, :, None], axis=2)[:, :, 0].astype(np.float64)  # (B, T)
    steps = np.zeros((batch, time))
    steps[:, 1:] = transitions[paths[:, :-1], paths[:, 1:]] + emitted[:, 1:]
    cumulative = np.cumsum(steps, axis=1)  # (B, T): score of the path's steps 1..t
    last = ends - 1
    first_tag, last_tag = paths[rows, starts], paths[rows, last]
    with np.errstate(divide="ignore"):  # log 0 = -inf: probability 0
        log_alpha = np.log(result.alpha_hat[rows, starts, first_tag]) + result.log_alpha_scale[rows, starts]
        log_beta = np.log(result.beta_hat[rows, last, last_tag]) + result.log_beta_scale[rows, last]
    log_inside = log_alpha + cumulative[rows, last] - cumulative[rows, starts]  # (S,)
    row_z = result.log_z[rows]
    probability = np.exp(log_inside + log_beta - row_z)
    follows = (not_next >= 0) & (ends < np.asarray(lengths)[rows])
    if follows.any():
        where, after = np.nonzero(follows)[0], ends[follows]
        tag = not_next[follows]
        with np.errstate(divide="ignore"):
            log_beta_next = (np.log(result.beta_hat[rows[where], after, tag])
                             + result.log_beta_scale[rows[where], after])
        log_next = (log_inside[where] + transitions[last_tag[where], tag] + emissions[rows[where], after, tag]
                    + log_beta_next - row_z[where])
        probability[where] -= np.exp(log_next)
    return np.clip(probability, 0.0, 1.0)

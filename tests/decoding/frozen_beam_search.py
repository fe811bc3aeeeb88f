"""A frozen copy of beam search and of `Summarizer.step` as they were at commit e874e3c.

The parity tests (`test_beam_speed_parity.py`) hold the library's faster search to these: the same
hypotheses and the same float scores, bit for bit. Do not "fix" or speed up anything in this file;
it is the reference. It reads the model's weights through its submodules only.
"""

import torch
from torch.nn import functional as F

from nlp_lstm.data.specials import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nlp_lstm.models.summarizer import DecoderState

SCORE_CHUNK_POSITIONS = 3200
EPSILON = 1e-12


# -- attention (nlp_lstm/nn/attention.py) -----------------------------------------------------------


def _masked_softmax(scores, pad_mask):
    if scores.dim() == 3:
        pad_mask = pad_mask.unsqueeze(1)
    return torch.softmax(scores.masked_fill(pad_mask, float("-inf")), dim=-1)


def _additive_score(attention, query, keys, coverage):
    queries = attention.query_proj(query).unsqueeze(2)  # (B, K, 1, A)
    if torch.is_grad_enabled():
        features = keys.unsqueeze(1) + queries
        if coverage is not None:
            features = features + attention.coverage_proj(coverage.unsqueeze(-1))
        return attention.v(torch.tanh(features)).squeeze(-1)
    batch_size, beams, _, size = queries.shape
    src_len = keys.shape[1]
    chunk = max(1, SCORE_CHUNK_POSITIONS // (beams * src_len))
    buffer = keys.new_empty(min(chunk, batch_size), beams, src_len, size)
    coverage_buffer = torch.empty_like(buffer) if coverage is not None else None
    scores = keys.new_empty(batch_size, beams, src_len)
    coverage_weight = attention.coverage_proj.weight.view(size) if coverage is not None else None
    v = attention.v.weight.view(size)
    for start in range(0, batch_size, chunk):
        stop = min(start + chunk, batch_size)
        features = buffer[: stop - start]
        torch.add(keys[start:stop].unsqueeze(1), queries[start:stop], out=features)
        if coverage_weight is not None:
            covered = coverage_buffer[: stop - start]
            torch.mul(coverage[start:stop].unsqueeze(-1), coverage_weight, out=covered)
            features += covered
        features.tanh_()
        torch.matmul(features, v, out=scores[start:stop])
    return scores


def _general_score(attention, query, keys, coverage):
    scores = torch.cat(
        [torch.bmm(keys, query[:, k].unsqueeze(-1)) for k in range(query.shape[1])], dim=-1
    ).transpose(1, 2)
    if coverage is not None:
        scores = scores + attention.coverage_weight * coverage
    return scores


def _attend(attention, query, keys, values, pad_mask, coverage, beam_size):
    batch_size, src_len = pad_mask.shape
    if not attention.coverage:
        coverage = None
    elif coverage is None:
        coverage = keys.new_zeros(batch_size, beam_size, src_len)
    else:
        coverage = coverage.reshape(batch_size, beam_size, src_len)
    query = query.reshape(batch_size, beam_size, -1)
    score = _additive_score if hasattr(attention, "query_proj") else _general_score
    weights = _masked_softmax(score(attention, query, keys, coverage), pad_mask)
    context = torch.cat([torch.bmm(weights[:, k : k + 1], values) for k in range(beam_size)], dim=1)
    rows = batch_size * beam_size
    return context.view(rows, -1), weights.view(rows, src_len)


# -- copy (nlp_lstm/nn/copy.py) -----------------------------------------------------------------------


def _extended_log_probs(vocab_logits, *, attention, src_ext_ids, max_oovs, p_gen):
    rows, vocab_size = vocab_logits.shape
    if p_gen is None:
        log_probs = torch.log_softmax(vocab_logits, dim=-1)
        extra = log_probs.new_full((rows, max_oovs), float("-inf"))
        return torch.cat([log_probs, extra], dim=-1)
    examples, src_len = src_ext_ids.shape
    beams = rows // examples
    probs = torch.softmax(vocab_logits, dim=-1) * p_gen.unsqueeze(-1)
    if max_oovs:
        probs = F.pad(probs, (0, max_oovs))
    copy_probs = attention * (1.0 - p_gen).unsqueeze(-1)
    index = src_ext_ids.unsqueeze(1).expand(examples, beams, src_len)
    copy_probs = copy_probs.view(examples, beams, src_len)
    probs.view(examples, beams, -1).scatter_add_(2, index, copy_probs)
    log_probs = probs.add_(EPSILON).log_()
    if max_oovs:
        slots = torch.arange(vocab_size, vocab_size + max_oovs, device=src_ext_ids.device)
        reachable = (src_ext_ids.unsqueeze(-1) == slots).any(dim=1)
        extended = log_probs.view(examples, beams, -1)[:, :, vocab_size:]
        extended.masked_fill_(~reachable.unsqueeze(1), float("-inf"))
    return log_probs


# -- one decoder step (nlp_lstm/models/summarizer.py) ---------------------------------------------


def reference_step(model, prev_ids, state, encoder_output, src_ext_ids, max_oovs, *, beam_size=1):
    """`Summarizer.step` as it was: `(log_probs, new_state, attention, p_gen)`."""
    vocab_size = model.config.vocab_size
    prev_ids = prev_ids.masked_fill(prev_ids >= vocab_size, UNK_ID)
    embedded = model.dropout(model.embedding(prev_ids))
    inputs = torch.cat([embedded, state.input_feed], dim=-1)
    layer_input, new_h, new_c = inputs, [], []
    for layer, cell in enumerate(model.decoder_cells):
        h, c = cell(layer_input, (state.h[layer], state.c[layer]))
        new_h.append(h)
        new_c.append(c)
        layer_input = model.dropout(h) if layer + 1 < len(model.decoder_cells) else h
    query = new_h[-1]
    context, attention = _attend(
        model.attention, query, encoder_output.keys, encoder_output.outputs, encoder_output.pad_mask,
        state.coverage, beam_size,
    )  # fmt: skip
    attentional = torch.tanh(model.attentional(torch.cat([context, query], dim=-1)))
    vocab_logits = model.generator(model.dropout(attentional))
    p_gen = model.pointer(context, query, inputs) if model.pointer is not None else None
    log_probs = _extended_log_probs(
        vocab_logits, attention=attention, src_ext_ids=src_ext_ids, max_oovs=max_oovs, p_gen=p_gen
    )
    new_state = DecoderState(
        h=torch.stack(new_h), c=torch.stack(new_c), input_feed=attentional, coverage=state.coverage + attention
    )
    if p_gen is None:
        p_gen = query.new_ones(query.shape[0])
    return log_probs, new_state, attention, p_gen


# -- beam search (nlp_lstm/decoding/beam_search.py) ----------------------------------------------------


def _block_tokens(log_probs, tokens, *, min_length, no_repeat_ngram_size):
    log_probs[:, [PAD_ID, BOS_ID]] = float("-inf")
    length = tokens.shape[1]
    if length < min_length:
        log_probs[:, EOS_ID] = float("-inf")
    n = no_repeat_ngram_size
    if n and length >= n:
        windows = tokens.unfold(1, n, 1)
        prefix = tokens[:, length - n + 1 :]
        seen = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(dim=-1)
        rows, positions = seen.nonzero(as_tuple=True)
        log_probs[rows, windows[rows, positions, -1]] = float("-inf")
    return log_probs


def _length_penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def _coverage_penalty(coverage, pad_mask, beta):
    if beta == 0:
        return coverage.new_zeros(coverage.shape[0])
    logs = coverage.clamp(min=1e-10, max=1.0).log().masked_fill(pad_mask, 0.0)
    return beta * logs.sum(dim=-1)


def reference_beam_search(model, batch, config, *, step=None):
    """`beam_search_hypotheses` as it was: a list of `(tokens, score)` per example.

    `step` defaults to the model's own `step`; pass `reference_step` bound to a `Summarizer` to
    freeze the model side too.
    """
    step = step or model.step
    beam_size, alpha, beta = config.beam_size, config.length_penalty, config.coverage_penalty
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _search(model, step, batch, config, beam_size, alpha, beta)
    finally:
        model.train(was_training)


def _search(model, step_fn, batch, config, beam_size, alpha, beta):
    encoder_output = model.encode(
        src_ids=batch["src_ids"], src_lengths=batch["src_lengths"], src_pad_mask=batch["src_pad_mask"]
    )
    state = model.init_state(encoder_output)
    src_ext_ids, max_oovs = batch["src_ext_ids"], int(batch["max_oovs"])
    num_examples = src_ext_ids.shape[0]
    device = src_ext_ids.device
    active = torch.arange(num_examples, device=device)
    beams = torch.arange(beam_size, device=device)
    first_beam_rows = torch.arange(num_examples, device=device).repeat_interleave(beam_size)
    state = state.index_select(first_beam_rows)
    scores = torch.full((num_examples, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0
    tokens = torch.empty(num_examples * beam_size, 0, dtype=torch.long, device=device)
    prev_ids = torch.full((num_examples * beam_size,), BOS_ID, dtype=torch.long, device=device)
    best_scores = torch.full((num_examples,), float("-inf"), dtype=torch.float64, device=device)
    best_tokens = torch.zeros(num_examples, config.max_length, dtype=torch.long, device=device)
    best_lengths = torch.zeros(num_examples, dtype=torch.long, device=device)

    def finish(final_scores, rows, length):
        top, rank = final_scores.max(dim=1)
        better = top > best_scores[active]
        if better.any():
            examples = active[better]
            best_scores[examples] = top[better]
            best_lengths[examples] = length
            best_tokens[examples, :length] = tokens[rows[better, rank[better]], :length]

    def hypotheses():
        return [
            (row[:length], score)
            for row, length, score in zip(best_tokens.tolist(), best_lengths.tolist(), best_scores.tolist())
        ]

    for step in range(config.max_length):
        log_probs, state, _, _ = step_fn(
            prev_ids=prev_ids, state=state, encoder_output=encoder_output, src_ext_ids=src_ext_ids,
            max_oovs=max_oovs, beam_size=beam_size,
        )  # fmt: skip
        _block_tokens(log_probs, tokens, min_length=config.min_length, no_repeat_ngram_size=config.no_repeat_ngram_size)
        num_active, width = active.numel(), log_probs.shape[1]
        candidates = log_probs.add_(scores.view(-1, 1)).view(num_active, beam_size * width)
        top_scores, top_indices = candidates.topk(2 * beam_size, dim=1)
        top_beams, top_tokens = top_indices // width, top_indices % width
        is_eos = top_tokens == EOS_ID
        first_rows = torch.arange(num_active, device=device).unsqueeze(1) * beam_size
        ended = is_eos[:, :beam_size] & (top_scores[:, :beam_size] > float("-inf"))
        if ended.any():
            ended_rows = first_rows + top_beams[:, :beam_size]
            examples, ranks = ended.nonzero(as_tuple=True)
            penalties = _coverage_penalty(
                state.coverage[ended_rows[examples, ranks]], encoder_output.pad_mask[examples], beta
            )
            raw = top_scores[examples, ranks].double()
            final_scores = raw.new_full(ended.shape, float("-inf"))
            final_scores[examples, ranks] = raw / _length_penalty(step, alpha) + penalties.double()
            finish(final_scores, ended_rows, step)
        live = torch.argsort(is_eos.int(), dim=1, stable=True)[:, :beam_size]
        scores = top_scores.gather(1, live)
        origin = (first_rows + top_beams.gather(1, live)).view(-1)
        prev_ids = top_tokens.gather(1, live).view(-1)
        tokens = torch.cat([tokens.index_select(0, origin), prev_ids.unsqueeze(1)], dim=1)
        state = state.index_select(origin)
        if step + 1 == config.max_length:
            break
        best_lp = max(_length_penalty(step + 1, alpha), _length_penalty(config.max_length, alpha))
        bounds = scores.max(dim=1).values / best_lp
        done = best_scores[active] >= bounds
        if done.any():
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                return hypotheses()
            keep_rows = (keep.unsqueeze(1) * beam_size + beams).view(-1)
            active = active[keep]
            scores = scores.index_select(0, keep)
            tokens = tokens.index_select(0, keep_rows)
            prev_ids = prev_ids.index_select(0, keep_rows)
            state = state.index_select(keep_rows)
            encoder_output = encoder_output.index_select(keep)
            src_ext_ids = src_ext_ids.index_select(0, keep)

    num_active = active.numel()
    pad_mask = encoder_output.pad_mask.repeat_interleave(beam_size, dim=0)
    penalties = _coverage_penalty(state.coverage, pad_mask, beta).view(num_active, beam_size)
    final_scores = torch.where(
        scores > float("-inf"),
        scores.double() / _length_penalty(config.max_length, alpha) + penalties.double(),
        float("-inf"),
    )
    rows = torch.arange(num_active * beam_size, device=device).view(num_active, beam_size)
    finish(final_scores, rows, config.max_length)
    return hypotheses()

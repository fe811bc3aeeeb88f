"""`explain` for a summarizer: per output word, where it looked and whether it copied.

The summary is decoded as `summarize` decodes it (the model's saved settings), then replayed one
decoder step per output token (`Summarizer.step`), which gives at step t the attention a_t over the
source tokens, p_gen (the probability of generating from the vocabulary rather than copying, See et
al. 2017 eq. 8) and the final distribution P (eq. 9). The output token w was copied with probability

    copy(w) = (1 - p_gen) * sum_{i: w_i = w} a_ti / P(w)

(the share of P(w) that came from pointing at the source), and "copied" means copy(w) > 1/2; it was
copied from the source word holding the most of that attention mass.

Words: source tokens are spread onto the words of the source text (`words.spread`: the attention a
word gets is the sum over its tokens); output tokens are grouped into words (a sentencepiece piece
starting with "▁" starts one; spaCy tokens are words), and a word's attention and p_gen are the mean
over its tokens (still a distribution over the source), its copy probability the mean of its
tokens', and its source the word with the most copy mass summed over its tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nlp_lstm.data.collate import collate_summarization, to_device
from nlp_lstm.data.encode import ids_to_tokens
from nlp_lstm.decoding.beam_search import decoding_mode
from nlp_lstm.inference.explain import check_texts
from nlp_lstm.inference.words import spread, word_spans

WORD_START = "▁"  # sentencepiece's mark of a piece that begins a word


def explain_summary(predictor, texts: Sequence[str], **decoding: Any) -> list[dict[str, Any]]:
    """Per text: `kind` ("summarizer"), `text`, `summary` (as `summarize` writes it), `truncated`,
    `source_words` (per word `word`, `start`, `end`), and `outputs`: per output word `word`, `p_gen`,
    `copy` (the probability it was copied), `copied` (bool), `copied_from` (a source word index or
    None) and `attention` (one weight per source word). `decoding` overrides the saved settings."""
    check_texts(texts)
    config = predictor.decode_config(**decoding)
    return [_explain_one(predictor, text, config) for text in texts]


def _explain_one(predictor, text: str, config) -> dict[str, Any]:
    tokenizer, model, device = predictor.tokenizer, predictor.model, predictor.device
    [example] = predictor.encode_texts([text], warn=False)
    limit = predictor.max_source_length
    spans = tokenizer.spans(text)
    truncated = len(spans) > limit
    spans = spans[:limit] or [(0, len(text))]
    read = text[: spans[-1][1]] if truncated else text
    [ids] = predictor.decode([example], config)
    batch = to_device(collate_summarization([example]), device)
    source_ext = batch["src_ext_ids"][0]  # (S,)
    rows, gates, copies = [], [], []
    with decoding_mode(model):
        encoder_output = model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
        state = model.init_state(encoder_output)
        previous = torch.tensor([tokenizer.bos_id], device=device)
        for token in ids:
            log_probs, state, attention, p_gen = model.step(
                prev_ids=previous, state=state, encoder_output=encoder_output,
                src_ext_ids=batch["src_ext_ids"], max_oovs=int(batch["max_oovs"]))
            pointed = (1.0 - p_gen[0]) * attention[0] * (source_ext == token)  # (S,) copy mass per source token
            probability = log_probs[0, token].exp().clamp_min(1e-12)
            rows.append(attention[0].cpu())
            gates.append(float(p_gen[0]))
            copies.append((pointed / probability).cpu())  # sums to copy(w)
            previous = torch.tensor([token], device=device)
    words = word_spans(read)
    tokens = ids_to_tokens(ids, example["oovs"], tokenizer)
    outputs = []
    for group in _word_groups(tokens, by_pieces=tokenizer.kind == "sentencepiece"):
        attention = torch.stack([rows[i] for i in group]).mean(dim=0)  # (S,)
        copy_mass = torch.stack([copies[i] for i in group]).sum(dim=0)  # (S,)
        on_words = spread([(start, end, float(a)) for (start, end), a in zip(spans, attention)], words)
        copy_on_words = spread([(start, end, float(c)) for (start, end), c in zip(spans, copy_mass)], words)
        copy = float(copy_mass.sum()) / len(group)
        source = max(range(len(words)), key=copy_on_words.__getitem__) if words and copy > 0 else None
        outputs.append({"word": tokenizer.detokenize([tokens[i] for i in group]).strip(),
                        "p_gen": sum(gates[i] for i in group) / len(group), "copy": copy, "copied": copy > 0.5,
                        "copied_from": source if copy > 0.5 else None, "attention": on_words})
    return {"kind": "summarizer", "text": text, "summary": predictor.text(ids, example, text), "truncated": truncated,
            "copies": bool(model.config.copy),
            "source_words": [{"word": read[start:end], "start": start, "end": end} for start, end in words],
            "outputs": outputs}


def _word_groups(tokens: list[str], *, by_pieces: bool) -> list[list[int]]:
    """Indices of output tokens grouped into words (see the module docstring)."""
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        if not groups or not by_pieces or token.startswith(WORD_START):
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups

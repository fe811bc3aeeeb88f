"""Long texts cut before tokenization: a 1 MB text costs a few kilobytes of tokenization.

A text is first cut (`clip_text`) to a prefix that still holds more tokens than the model reads; the
model then truncates that prefix as it would have truncated the whole text, and the batch methods of
the predictors (`predict_batch`, what the server runs) say `truncated` per text.
"""

from __future__ import annotations

from typing import Sequence

CLIP_CHARS_PER_TOKEN = 16  # first prefix tried: 16 characters per token the model reads


def clip_text(text: str, tokenizer, limit: int) -> tuple[str, bool | None]:
    """`(text or a prefix of it, True if the model truncates it, None if not known without a count)`.

    The prefix ends before a space, and both tokenizers split at spaces first (spaCy's rules apply
    within space-separated chunks; sentencepiece pieces never cross a space), so the prefix's tokens
    are the first tokens of the whole text. Once the prefix holds more than `limit` tokens, its first
    `limit` tokens are exactly those the model would keep. Prefixes grow 4x until one suffices, so a
    text with few spaces costs at most about 1.3x one tokenization of the whole text.
    """
    size = CLIP_CHARS_PER_TOKEN * (limit + 1)
    while size < len(text):
        cut = text.rfind(" ", 0, size)
        if cut > 0:
            prefix = text[:cut]
            if len(tokenizer.encode_batch([prefix])[0]) > limit:
                return prefix, True
        size *= 4
    return text, None  # short enough to tokenize whole: the caller counts its tokens


def clip_texts(texts: Sequence[str], tokenizer, limit: int) -> tuple[list[str], list[bool | None]]:
    """`clip_text` over texts: texts to run, and True / None (not known yet: count the tokens)."""
    clipped, truncated = [], []
    for text in texts:
        if len(text) <= CLIP_CHARS_PER_TOKEN * (limit + 1):
            clipped.append(text)
            truncated.append(None)
        else:
            prefix, cut = clip_text(text, tokenizer, limit)
            clipped.append(prefix)
            truncated.append(cut)
    return clipped, truncated


def clip_and_count(texts: Sequence[str], tokenizer, limit: int) -> tuple[list[str], list[bool], list[int]]:
    """`(texts to run, truncated per text, token count per text before truncation, of the clipped text)`."""
    clipped, truncated = clip_texts(texts, tokenizer, limit)
    counts = [len(ids) for ids in tokenizer.encode_batch(clipped)]
    return clipped, [cut if cut is not None else count > limit for cut, count in zip(truncated, counts)], counts

"""A tagger's `explain` result (`TaggerPredictor.explain`) laid out for the views: the terminal view
and the HTML file (`explain_terminal`, `explain_html`); the page (`serve/page/page.js`) lays it out
the same way in the browser.

The tokens fall into segments, in text order: an entity span (`spans`: B-PER I-PER is one PER
segment), a token whose tag is a type of its own (a plain tag set: NOUN, VERB), or a token tagged
`O` (no type). A token is of low confidence when its tag's marginal probability is under
`LOW_CONFIDENCE`: the model put more than 30% of the probability on other tags, so a view marks it
without relying on colour (a `?`), beside its runner-up.
"""

from __future__ import annotations

from typing import Any

from nlp_lstm.metrics.spans import split_tag

LOW_CONFIDENCE = 0.7  # page.js LOW_CONFIDENCE


def is_low(word: dict[str, Any]) -> bool:
    return word["probability"] < LOW_CONFIDENCE


def spanned(result: dict[str, Any]) -> bool:
    """Whether the tags mark spans (`O`, `B-PER`, ...) rather than being a plain tag set (NOUN, VERB)."""
    return any(split_tag(word["tag"])[0] != "" for word in result["words"])


def segments(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per segment `{"type": str | None, "tokens": [index, ...], "confidence": float | None}`: an
    entity span's type and probability, a plain tag's own token and its marginal, or an `O` token
    (type and confidence None)."""
    words, starts = result["words"], {span["start"]: span for span in result["spans"]}
    laid_out, index = [], 0
    while index < len(words):
        span = starts.get(index)
        if span is not None:
            laid_out.append({"type": span["type"], "tokens": list(range(span["start"], span["end"])),
                             "confidence": span.get("confidence")})
            index = span["end"]
            continue
        _, kind = split_tag(words[index]["tag"])  # "O" -> None; "NOUN" -> "NOUN"
        laid_out.append({"type": kind, "tokens": [index], "confidence": words[index]["probability"] if kind else None})
        index += 1
    return laid_out


def types(results: list[dict[str, Any]]) -> list[str]:
    """Every segment type shown, in order of first appearance (a colour each)."""
    found: dict[str, None] = {}
    for result in results:
        for segment in segments(result):
            if segment["type"] is not None:
                found.setdefault(segment["type"])
    return list(found)


def before(result: dict[str, Any], index: int) -> str:
    """What goes before token `index` in the inline view: the text's own characters between it and
    the token before (the spaces the user typed, tabs and newlines shown as one space), or one space
    between pre-tokenized tokens."""
    if index == 0:
        return ""
    words = result["words"]
    if "start" not in words[index] or "text" not in result:
        return " "
    return " " if result["text"][words[index - 1]["end"] : words[index]["start"]] else ""


def least_sure(result: dict[str, Any], count: int) -> list[int]:
    """Indices of the `count` tokens with the smallest tag probability (ties: in text order)."""
    words = result["words"]
    return sorted(range(len(words)), key=lambda i: (words[i]["probability"], i))[:count]

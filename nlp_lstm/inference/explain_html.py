"""`explain` results as one self-contained HTML file (`--html FILE`): styles and the little script
inline, no network needed to open it. Classifier words are shaded green (for the label) or red
(against), with the numbers beside them; a summarizer's output words, hovered or focused with the
keyboard, shade the source by their attention and say whether they were copied. A tagger's spans are
highlighted by type (a light colour each, with the type written after the span), and each token,
hovered or focused, gives its tag's probability and the runner-up; low-confidence tokens carry a `?`."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from nlp_lstm.inference.explain_tagger import LOW_CONFIDENCE, before, is_low, segments, spanned, types

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; color: #1a1a1a; background: #fff; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
.text { font-size: 1.15rem; line-height: 2.2; }
.w { padding: 0.1em 0.15em; border-radius: 0.2em; }
.for { border-bottom: 3px solid #1b5e20; } .against { border-bottom: 3px dashed #b71c1c; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.15rem 0.6rem; text-align: right; }
td:first-child, th:first-child, td.bars { text-align: left; }
.bar { display: inline-block; height: 0.8em; vertical-align: middle; }
.pos { background: #2e7d32; } .neg { background: #c62828; } .prob { background: #0d47a1; }
.out { border: 1px solid #888; background: #f4f4f4; margin: 0.1em; padding: 0.1em 0.3em; font: inherit; cursor: pointer; }
.out.copied { border-color: #1b5e20; border-width: 2px; }
.out:focus, .out:hover { outline: 3px solid #0d47a1; }
.note { color: #444; }
.ent { padding: 0.15em 0.3em; margin: 0 0.1em; border-radius: 0.3em; border: 2px solid; line-height: 2.4; }
.tagged td, .tagged th { text-align: left; }
.type { font-size: 0.7em; font-weight: 700; margin-left: 0.5em; vertical-align: 0.1em; }
.tok:focus, .tok:hover { outline: 3px solid #0d47a1; outline-offset: 1px; }
.low { text-decoration: underline dotted 2px; text-underline-offset: 0.2em; }
.low::after { content: "?"; font-weight: 700; }
"""

# Light backgrounds (black text on each keeps a contrast over 12:1) and darker borders, a pair per
# span type in order of appearance; the type is also written after each span. page.css: `.t0`...
TYPE_COLOURS = (("#cfe2ff", "#0d47a1"), ("#ffe0b2", "#e65100"), ("#d7f5d0", "#1b5e20"), ("#f8d7f0", "#880e4f"),
                ("#fff3a0", "#7a6400"), ("#e0d7ff", "#4527a0"), ("#c9f1ee", "#00695c"), ("#ffd6d6", "#b71c1c"),
                ("#e6e6e6", "#424242"), ("#e8f0c0", "#556b00"), ("#f3e0c8", "#6d4c41"), ("#d0f0ff", "#01579b"))
STYLE += "".join(f".t{i} {{ background: {bg}; border-color: {border}; }}\n" for i, (bg, border) in enumerate(TYPE_COLOURS))

SCRIPT = """
document.querySelectorAll('.tagged').forEach(function (block) {
  var info = block.querySelector('.info');
  block.querySelectorAll('.tok').forEach(function (token) {
    function show() { info.textContent = token.title; }
    token.addEventListener('mouseenter', show);
    token.addEventListener('focus', show);
  });
});
document.querySelectorAll('.summary').forEach(function (block) {
  var data = JSON.parse(block.querySelector('script').textContent);
  var words = block.querySelectorAll('.src');
  var info = block.querySelector('.info');
  function show(i) {
    var out = data.outputs[i], top = Math.max.apply(null, out.attention.concat([1e-9]));
    words.forEach(function (w, j) {
      var a = out.attention[j] / top;
      w.style.background = 'rgba(13, 71, 161,' + (0.65 * a).toFixed(3) + ')';
      w.style.outline = (out.copied_from === j) ? '3px solid #1b5e20' : '';
    });
    info.textContent = '"' + out.word + '": ' + (out.copied ? 'copied (' + out.copy.toFixed(2) + ') from "' +
      data.source_words[out.copied_from].word + '"' : 'generated (copy ' + out.copy.toFixed(2) + ')') +
      ', p_gen ' + out.p_gen.toFixed(2);
  }
  block.querySelectorAll('.out').forEach(function (b, i) {
    b.addEventListener('mouseenter', function () { show(i); });
    b.addEventListener('focus', function () { show(i); });
  });
});
"""


def shade(value: float, largest: float) -> str:
    """A background for a word: green for support, red against, more opaque when stronger (at most
    65%, so black text on it keeps a contrast of 5:1 or more), and an underline that thickens."""
    strength = min(abs(value) / largest, 1.0) if largest > 0 else 0.0
    colour = "46, 125, 50" if value > 0 else "198, 40, 40"
    return f"background: rgba({colour}, {0.65 * strength:.3f}); border-bottom-width: {1 + round(4 * strength)}px;"


def _classifier(result: dict[str, Any]) -> str:
    words, lstm, linear = result["words"], result["lstm"], result["linear"]
    largest = max((abs(word["total"]) for word in words), default=0.0)
    spans, previous = [], None
    for word in words:
        if previous is not None and previous < word["start"]:
            spans.append(" ")
        direction = "for" if word["total"] > 0 else "against"
        title = f"{word['total']:+.3f} (BiLSTM {word['lstm']:+.3f}, n-gram {word['linear']:+.3f})"
        spans.append(f'<span class="w {direction}" style="{shade(word["total"], largest)}" title="{escape(title)}">'
                     f'{escape(word["word"])}</span>')
        previous = word["end"]
    bars = "".join(
        f'<tr><td>{escape(name)}</td><td>{p:.3f}</td><td class="bars"><span class="bar prob" style="width: {200 * p:.0f}px"></span></td></tr>'
        for name, p in result["scores"].items())
    rows = "".join(
        f'<tr><td>{escape(w["word"])}</td><td>{w["lstm"]:+.3f}</td><td>{w["linear"]:+.3f}</td><td>{w["total"]:+.3f}</td>'
        f'<td class="bars"><span class="bar {"pos" if w["total"] > 0 else "neg"}" '
        f'style="width: {120 * abs(w["total"]) / largest if largest else 0:.0f}px"></span></td></tr>' for w in words)
    parts = f"BiLSTM {lstm['score']:+.3f}" + (f" + n-gram part {linear['score']:+.3f}" if linear else "")
    ngrams = ""
    if linear and linear["ngrams"]:
        ngrams = "<h3>Strongest n-grams of the linear part</h3><table><tr><th>n-gram</th><th>kind</th><th>contribution</th></tr>" + "".join(
            f'<tr><td>{escape(repr(g["ngram"]))}</td><td>{g["kind"]}</td><td>{g["contribution"]:+.3f}</td></tr>'
            for g in linear["ngrams"][:12]) + "</table>"
    return (f'<section><h2>{escape(result["label"])} ({result["probability"]:.3f})</h2>'
            f'<table aria-label="label probabilities">{bars}</table>'
            f'<p class="text">{"".join(spans)}</p>'
            f'<p class="note">Score {result["score"]:+.3f} (logit units) = {parts}; decided by {result["decided_by"]}. '
            f'Green (solid underline): for {escape(result["label"])}; red (dashed): against. BiLSTM: integrated gradients, '
            f'{lstm["steps"]} gradient evaluations ({lstm["segments"]} path segments) from {escape(lstm["baseline"])} (baseline score {lstm["baseline_score"]:+.3f}), '
            f'completeness residual {lstm["residual"]:+.2e} ({100 * lstm["relative_residual"]:.2f}%).'
            + (" Only the words shown were read (the text is longer)." if result["truncated"] else "") + "</p>"
            f'<table><tr><th>word</th><th>BiLSTM</th><th>n-gram</th><th>total</th><th></th></tr>{rows}</table>{ngrams}</section>')


def _summarizer(result: dict[str, Any]) -> str:
    source, previous, spans = result["source_words"], None, []
    for word in source:
        if previous is not None and previous < word["start"]:
            spans.append(" ")
        spans.append(f'<span class="w src">{escape(word["word"])}</span>')
        previous = word["end"]
    outputs = "".join(f'<button type="button" class="out{" copied" if o["copied"] else ""}">{escape(o["word"])}</button>'
                      for o in result["outputs"])
    data = json.dumps({"outputs": result["outputs"], "source_words": source}).replace("</", "<\\/")
    return (f'<section class="summary"><h2>Summary: {escape(result["summary"])}</h2>'
            f'<p class="note">Hover over or tab to an output word: the source is shaded by its attention; '
            f'copied words have a thick border.</p><p>{outputs}</p><p class="info" aria-live="polite"></p>'
            f'<p class="text">{"".join(spans)}</p><script type="application/json">{data}</script></section>')


def token_note(result: dict[str, Any], index: int, segment: dict[str, Any]) -> str:
    """What a token says when hovered or focused (the page's info line says the same)."""
    word = result["words"][index]
    note = (f"{word['token']}: {word['tag']} {word['probability']:.3f}; runner-up {word['runner_up']} "
            f"{word['runner_up_probability']:.3f}" + (" (low confidence)" if is_low(word) else ""))
    if segment["type"] is not None and (len(segment["tokens"]) > 1 or word["tag"] != segment["type"]):
        text = "".join(before(result, i) + result["words"][i]["token"] for i in segment["tokens"]).strip()
        confidence = f" {segment['confidence']:.3f}" if segment["confidence"] is not None else ""
        note += f"; in the {segment['type']} span \u201c{text}\u201d{confidence}"
    return note


def _tagger(result: dict[str, Any], colours: dict[str, int]) -> str:
    words, parts = result["words"], []
    for segment in segments(result):
        first = segment["tokens"][0]
        tokens = "".join(
            (before(result, i) if i != first else "")
            + f'<span class="tok{" low" if is_low(words[i]) else ""}" tabindex="0" '
              f'title="{escape(token_note(result, i, segment))}">{escape(words[i]["token"])}</span>'
            for i in segment["tokens"])
        parts.append(before(result, first))
        if segment["type"] is None:
            parts.append(tokens)
        else:
            parts.append(f'<mark class="ent t{colours[segment["type"]] % len(TYPE_COLOURS)}">{tokens}'
                         f'<span class="type">{escape(segment["type"])}</span></mark>')
    shown = [kind for kind in colours if any(seg["type"] == kind for seg in segments(result))]
    legend = "".join(f'<span class="ent t{colours[kind] % len(TYPE_COLOURS)}">{escape(kind)}</span> ' for kind in shown)
    low = sum(is_low(word) for word in words)
    spans = "".join(f'<tr><td>{escape(span["type"])}</td><td>{escape(span.get("text", ""))}</td>'
                    f'<td>{span["confidence"]:.3f}</td></tr>' for span in result["spans"])
    rows = "".join(f'<tr><td>{escape(w["token"])}</td><td>{escape(w["tag"])}</td><td>{w["probability"]:.3f}'
                   f'{" ?" if is_low(w) else ""}</td><td>{escape(w["runner_up"])}</td><td>{w["runner_up_probability"]:.3f}</td></tr>'
                   for w in words)
    counted = f", {len(result['spans'])} span{'s' * (len(result['spans']) != 1)}" if spanned(result) else ""
    return (f'<section class="tagged"><h2>Tags: {len(words)} tokens{counted}</h2>'
            f'<p class="note">Legend: {legend}<span class="low">low confidence</span> (tag probability under '
            f'{LOW_CONFIDENCE:.2f}: {low} tokens). Hover over or tab to a token for its tag\'s probability and the runner-up.'
            + (" Only the tokens shown were read (the text is longer)." if result["truncated"] else "") + "</p>"
            f'<p class="text">{"".join(parts)}</p><p class="info" aria-live="polite"></p>'
            + (f'<table><tr><th>span</th><th>text</th><th>probability</th></tr>{spans}</table>' if spans else "")
            + f'<table><tr><th>token</th><th>tag</th><th>probability</th><th>runner-up</th><th>probability</th></tr>'
              f'{rows}</table></section>')


def explanations_html(results: list[dict[str, Any]]) -> str:
    """One HTML document showing every result."""
    colours = {kind: index for index, kind in enumerate(types([r for r in results if r["kind"] == "tagger"]))}
    views = {"classifier": _classifier, "summarizer": _summarizer, "tagger": lambda r: _tagger(r, colours)}
    body = "".join(views[r["kind"]](r) for r in results)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>nlp-lstm explain</title>'
            f'<style>{STYLE}</style></head><body><h1>Why the model answered so</h1>{body}'
            f'<script>{SCRIPT}</script></body></html>\n')

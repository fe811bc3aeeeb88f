"""`explain` results as a terminal view (rich): green for support, red against, and the strength
readable without colour as well, from the signed numbers and a bar that grows to the right for
support and to the left against. A tagger's tokens are shown inline with their tags (spans in
brackets with their type, a colour per type), each token's tag probability beside the runner-up's,
and tokens of low confidence marked with a `?` (`explain_tagger`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from nlp_lstm.inference.explain_tagger import LOW_CONFIDENCE, before, is_low, segments, spanned, types

BAR_WIDTH = 10
TOP_NGRAMS = 8
TOP_SOURCE = 3
TYPE_STYLES = ("bold cyan", "bold magenta", "bold yellow", "bold blue", "bold green", "bold red",
               "cyan", "magenta", "yellow", "blue", "green", "red")


def bar(value: float, largest: float) -> Text:
    """A diverging bar: `BAR_WIDTH` cells left of the axis for against, right for support."""
    cells = round(BAR_WIDTH * min(abs(value) / largest, 1.0)) if largest > 0 else 0
    left = " " * (BAR_WIDTH - cells) + ("█" * cells if value < 0 else " " * cells)
    right = ("█" * cells if value > 0 else " " * cells) + " " * (BAR_WIDTH - cells)
    return Text.assemble((left, "red"), "│", (right, "green"))


def shade(value: float, largest: float) -> str:
    """A rich style: green or red background, stronger for larger values."""
    strength = min(abs(value) / largest, 1.0) if largest > 0 else 0.0
    if strength < 0.15:
        return ""
    tone = "green" if value > 0 else "red"
    return f"bold white on {tone}" if strength >= 0.5 else f"{tone}"


def classifier_view(result: dict[str, Any]) -> Group:
    lstm, linear, words = result["lstm"], result["linear"], result["words"]
    largest = max((abs(word["total"]) for word in words), default=0.0)
    chosen = "predicted" if result["label"] == result["predicted"] else f"asked; predicted {result['predicted']}"
    head = Text.assemble(("label ", "bold"), (result["label"], "bold cyan"),
                         f" ({chosen})  probability {result['probability']:.3f}")
    parts = f"score {result['score']:+.3f} (logit units) = BiLSTM {lstm['score']:+.3f}"
    if linear is not None:
        parts += f" + n-gram part {linear['score']:+.3f}"
    names = {"bilstm": "the BiLSTM", "linear": "the n-gram part", "both": "both parts"}
    lines = [Text(result["text"]), head, Text(f"{parts}; decided by {names[result['decided_by']]}"),
             Text(f"BiLSTM: baseline {lstm['baseline_score']:+.3f} ({lstm['baseline']}) + attributions "
                  f"{lstm['attribution_sum']:+.3f}; integrated gradients, {lstm['steps']} gradient evaluations "
                  f"({lstm['segments']} path segments), completeness residual {lstm['residual']:+.2e} "
                  f"({100 * lstm['relative_residual']:.2f}% of the difference)")]
    if linear is not None:
        lines.append(Text(f"n-gram part: bias {linear['bias']:+.3f} + contributions of {len(linear['ngrams'])} n-grams"))
    if result["truncated"]:
        lines.append(Text("the text was longer than the model reads: only the words shown were read", style="yellow"))
    inline = Text()
    for index, word in enumerate(words):
        if index and words[index - 1]["end"] < word["start"]:
            inline.append(" ")
        inline.append(word["word"], style=shade(word["total"], largest))
    lines += [Text("words shaded by total attribution (green: for the label, red: against):"), inline]
    table = Table(title=f"attribution to {result['label']!r} per word", title_justify="left")
    for column in ("word", "BiLSTM", "n-gram", "total"):
        table.add_column(column, justify="left" if column == "word" else "right")
    table.add_column("against │ for", no_wrap=True)
    for word in words:
        table.add_row(word["word"], f"{word['lstm']:+.3f}", f"{word['linear']:+.3f}", f"{word['total']:+.3f}",
                      bar(word["total"], largest))
    lines.append(table)
    if linear is not None and linear["ngrams"]:
        top = Table(title="strongest n-grams of the linear part", title_justify="left")
        for column in ("n-gram", "kind", "tf-idf", "contribution"):
            top.add_column(column, justify="left" if column in ("n-gram", "kind") else "right")
        for row in linear["ngrams"][:TOP_NGRAMS]:
            top.add_row(repr(row["ngram"]), row["kind"], f"{row['value']:.3f}", f"{row['contribution']:+.3f}")
        lines.append(top)
    return Group(*lines)


def summarizer_view(result: dict[str, Any]) -> Group:
    source = result["source_words"]
    lines = [Text(result["text"]), Text.assemble(("summary ", "bold"), (result["summary"], "bold cyan"))]
    if result["truncated"]:
        lines.append(Text("the source was longer than the model reads: attention covers the words shown", style="yellow"))
    table = Table(title="per output word: generated or copied, and where the attention went", title_justify="left")
    for column in ("output", "p_gen", "copied", "most attended source words"):
        table.add_column(column, justify="right" if column == "p_gen" else "left")
    for output in result["outputs"]:
        ranked = sorted(range(len(source)), key=lambda i: -output["attention"][i])[:TOP_SOURCE]
        attended = ", ".join(f"{source[i]['word']} {output['attention'][i]:.2f}" for i in ranked)
        if output["copied"]:
            copied = Text(f"yes ({output['copy']:.2f}) from {source[output['copied_from']]['word']!r}", style="green")
        else:
            copied = Text(f"no ({output['copy']:.2f})" if result["copies"] else "no (model without copying)")
        table.add_row(output["word"], f"{output['p_gen']:.2f}", copied, attended)
    lines.append(table)
    return Group(*lines)


def confidence_bar(probability: float) -> str:
    """`BAR_WIDTH` cells, one filled per tenth of probability: readable without colour."""
    cells = round(BAR_WIDTH * min(max(probability, 0.0), 1.0))
    return "█" * cells + "·" * (BAR_WIDTH - cells)


def tagger_view(result: dict[str, Any], styles: dict[str, str] | None = None) -> Group:
    words = result["words"]
    styles = styles if styles is not None else {kind: TYPE_STYLES[i % len(TYPE_STYLES)] for i, kind in enumerate(types([result]))}
    low = [word for word in words if is_low(word)]
    lines = [Text(result.get("text", " ".join(result["tokens"]))),
             Text(f"{len(words)} tokens" + (f", {len(result['spans'])} span{'s' * (len(result['spans']) != 1)}" if spanned(result) else "") + f"; {len(low)} of low confidence "
                  f"(tag probability under {LOW_CONFIDENCE:.2f}: marked ?)")]
    if result["truncated"]:
        lines.append(Text("the text was longer than the model reads: only the tokens shown were read", style="yellow"))
    inline = Text()
    for segment in segments(result):
        style, first = styles.get(segment["type"], ""), segment["tokens"][0]
        inline.append(" " if first else "")  # between segments always a space: "gitti/VERB ,/PUNCT"
        bracketed = segment["type"] is not None and (len(segment["tokens"]) > 1 or words[first]["tag"] != segment["type"])
        if bracketed:
            inline.append("[", style=style)
        for index in segment["tokens"]:
            inline.append(before(result, index) if index != first else "")
            inline.append(words[index]["token"], style=style)
            if is_low(words[index]):
                inline.append("?", style="bold yellow")
        if bracketed:
            inline.append(f"]{segment['type']}", style=style)
        elif segment["type"] is not None:  # a plain tag set: word/TAG
            inline.append(f"/{segment['type']}", style=style)
    lines += [Text("tokens with their tags (spans in brackets with their type):"), inline]
    if result["spans"]:
        lines.append(Text("spans (probability: that the model tags exactly this span):"))
        spans = Table()
        for column in ("type", "text", "tokens", "probability"):
            spans.add_column(column, justify="right" if column == "probability" else "left")
        for span in result["spans"]:
            text = span.get("text", " ".join(result["tokens"][span["start"] : span["end"]]))
            probability = f"{span['confidence']:.3f}" if "confidence" in span else ""
            spans.add_row(Text(span["type"], style=styles.get(span["type"], "")), text,
                          str(span["start"]) if span["end"] - span["start"] == 1 else f"{span['start']}-{span['end'] - 1}",
                          probability)
        lines.append(spans)
    lines.append(Text("per token: its tag's marginal probability, and the runner-up tag's:"))
    table = Table()
    for column in ("#", "token", "tag", "probability", "runner-up"):
        table.add_column(column, justify="right" if column == "#" else "left", no_wrap=column == "probability")
    for index, word in enumerate(words):
        flag = is_low(word)
        shown = Text.assemble(f"{word['probability']:.3f} ", (confidence_bar(word["probability"]), "yellow" if flag else "green"),
                              (" ? low" if flag else "", "bold yellow"))
        table.add_row(str(index), word["token"], word["tag"], shown, f"{word['runner_up']} {word['runner_up_probability']:.3f}")
    lines.append(table)
    return Group(*lines)


VIEWS = {"classifier": classifier_view, "summarizer": summarizer_view, "tagger": tagger_view}


def print_explanations(results: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    tagged = types([result for result in results if result["kind"] == "tagger"])  # one colour per type throughout
    styles = {kind: TYPE_STYLES[i % len(TYPE_STYLES)] for i, kind in enumerate(tagged)}
    views = {**VIEWS, "tagger": partial(tagger_view, styles=styles)}
    for index, result in enumerate(results):
        if index:
            console.rule()
        console.print(views[result["kind"]](result))

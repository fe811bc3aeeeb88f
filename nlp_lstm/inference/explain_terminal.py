"""`explain` results as a terminal view (rich): green for support, red against, and the strength
readable without colour as well, from the signed numbers and a bar that grows to the right for
support and to the left against."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 10
TOP_NGRAMS = 8
TOP_SOURCE = 3


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


def print_explanations(results: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    for index, result in enumerate(results):
        if index:
            console.rule()
        console.print(classifier_view(result) if result["kind"] == "classifier" else summarizer_view(result))

"""Printing results: a readable table, JSON, or JSON Lines on stdout."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "jsonl")


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}")
    return value


def print_rows(rows: list[dict[str, Any]], *, fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt == "jsonl":
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    else:
        table = Table(show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold", ratio=3 if column in ("text", "summary") else None)
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return "" if value is None else str(value)


def print_tagged(rows: list[dict[str, Any]]) -> None:
    """A tagger's results as a table: each text's tokens with their tags (`word/TAG`, the tag dimmed
    where its confidence is below 0.5), and its spans with their confidence."""
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("tagged tokens", overflow="fold", ratio=3)
    table.add_column("spans", overflow="fold", ratio=2)
    for index, row in enumerate(rows, start=1):
        confidences = row.get("confidences") or [1.0] * len(row["tokens"])
        tagged = " ".join(f"{escape(token)}/[{'bold' if confidence >= 0.5 else 'dim'}]{escape(tag)}[/]"
                          for token, tag, confidence in zip(row["tokens"], row["tags"], confidences))
        spans = "\n".join(f"{escape(span['type'])}: {escape(span['text'])}"
                          + (f" ({span['confidence']:.2f})" if "confidence" in span else "") for span in row["spans"])
        table.add_row(str(index), tagged, spans)
    Console().print(table)

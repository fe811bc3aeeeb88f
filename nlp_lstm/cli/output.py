"""Printing results: a readable table, JSON, or JSON Lines on stdout."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
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

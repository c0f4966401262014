"""Tables for people: the same rows as a rich table (terminal) or a Markdown table (files)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text


def rich_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]], console: Console | None = None) -> Table:
    """A rich table of string rows; printed to `console` when one is given, and returned.

    Cells are literal text: a problem id or model name with square brackets is not rich markup.
    """
    table = Table(title=Text(title) if title else None)
    for name in header:
        table.add_column(Text(name))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    if console is not None:
        console.print(table)
    return table


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float | None, digits: int = 2) -> str:
    """A table cell for a number that may be missing: "-" rather than a misleading 0."""
    return "-" if value is None else f"{value:.{digits}f}"

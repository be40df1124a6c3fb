"""Printing: JSON on stdout, messages on stderr, rich only on a terminal.

Tables are drawn with rich when stdout is a terminal, else as plain aligned
columns (no colour, no rich import). Progress bars appear only when both
streams are terminals and ``--json`` is off.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

Cell = str | int | float | None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def dump_json(data: Any) -> str:
    """The CLI's JSON: indented, keys in the order the views give them."""
    return json.dumps(data, indent=2, default=_default, ensure_ascii=False)


def _text(cell: Cell) -> str:
    return "-" if cell is None or cell == "" else str(cell)


class Output:
    """Where a command prints; decides once whether a terminal is there."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.terminal = _isatty(sys.stdout)

    def json(self, data: Any) -> None:
        click.echo(dump_json(data))

    def line(self, text: str = "") -> None:
        click.echo(text)

    def note(self, text: str) -> None:
        """A message for the human, on stderr (safe with --json)."""
        click.echo(text, err=True)

    def styled(self, text: str, style: str) -> None:
        """A line of stdout, in colour on a terminal."""
        if not self.terminal:
            click.echo(text)
            return
        from rich.console import Console
        from rich.text import Text

        Console(highlight=False).print(Text(text, style=style))

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str = ""
    ) -> None:
        if self.terminal:
            self._rich_table(columns, rows, title)
            return
        if title:
            click.echo(title)
        texts = [[_text(cell) for cell in row] for row in rows]
        widths = [
            max([len(col), *(len(row[i]) for row in texts)])
            for i, col in enumerate(columns)
        ]
        for row in [list(columns), *texts]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            click.echo("  ".join(cells).rstrip())

    def _rich_table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str
    ) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        texts = [[_text(cell) for cell in row] for row in rows]
        table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD)
        for i, column in enumerate(columns):
            table.add_column(column, **column_layout([row[i] for row in texts]))
        for row in texts:
            table.add_row(*row)
        Console().print(table)

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        """Yield an ``advance()``; a bar only on a terminal, never with --json."""
        if self.json_mode or not (self.terminal and _isatty(sys.stderr)):
            yield lambda: None
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


#: Cells up to this long with no space (ids, states, short words) keep
#: their whole width; longer ones (heads, hashes) fold onto more lines.
WHOLE_WORD = 40


def column_layout(cells: Sequence[str]) -> dict[str, Any]:
    """How a rich column treats its cells on a narrow terminal: a word (an
    id, a state such as ``Waiting(approval)``) is never cut or wrapped, since
    users copy them; a long word (a chain head) folds onto more lines with
    every character kept; text wraps at spaces. Nothing is ever cut off with
    an ellipsis."""
    words = [cell for cell in cells if " " not in cell]
    if words and len(words) == len(cells):
        widest = max(len(cell) for cell in cells)
        if widest <= WHOLE_WORD:
            return {"no_wrap": True, "min_width": widest, "overflow": "fold"}
    return {"overflow": "fold"}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

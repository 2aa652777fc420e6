"""Tables that fit the console without cutting a digit.

rich squeezes a table wider than the console by cutting cells ("0.39894228040143…"), and as a last resort
it narrows every column evenly, numbers included. The digits are what this tool exists to print, so a table
is laid out in the first of three ways that fits the console's width:

1. whole, as built;
2. text columns (and the headers of number columns) wrapped at spaces, never narrower than their longest
   word, number columns at their widest number;
3. one record per block: its first cell, then one `header  value` line per other cell.

A cell is never cut in any of the three: a number is one word, so it is never split either.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

UNBOUNDED = 1 << 20  # a width no table reaches: measures a table's natural width


@dataclass(frozen=True)
class Column:
    """One column: a header (plain text) and whether its cells are numbers (never wrapped)."""

    header: str
    numeric: bool = True
    justify: str = "right"


def fitted(
    console: Console,
    title: str,
    columns: list[Column],
    rows: list[list[str]],
    table_box: box.Box | None = box.SIMPLE_HEAD,
    **table_options,
) -> RenderableType:
    """The table of rows (cells in rich markup) laid out to fit console.width; the title is rich markup too."""
    table = _table(title, columns, rows, table_box, None, table_options)
    natural = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
    if natural <= console.width:
        return table
    cells = [[_plain(c) for c in row] for row in rows]
    widest = [max([len(col.header)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    least = [_least_width(col, [r[i] for r in cells]) for i, col in enumerate(columns)]
    overhead = natural - sum(widest)  # padding and borders
    spare = console.width - overhead - sum(least)
    if spare < 0:
        return _records(title, columns, rows)
    return _table(title, columns, rows, table_box, _share(spare, least, widest), table_options)


def _table(title, columns, rows, table_box, widths, options) -> Table:
    table = Table(title=title, title_justify="left", box=table_box, **options)
    for i, col in enumerate(columns):
        table.add_column(
            escape(col.header),
            justify=col.justify,
            no_wrap=col.numeric and widths is None,  # with widths, a number column is as wide as its widest cell
            overflow="fold",  # never "…": only a word longer than its column (none, by _least_width) folds
            width=None if widths is None else widths[i],
        )
    for row in rows:
        table.add_row(*row)
    return table


def _least_width(col: Column, cells: list[str]) -> int:
    """The narrowest the column may be: its widest number, or the longest word of its text."""
    words = [len(w) for w in col.header.split()]
    for cell in cells:
        words += [len(cell)] if col.numeric else [len(w) for w in cell.split()]
    return max(words, default=1)


def _share(spare: int, least: list[int], widest: list[int]) -> list[int]:
    """Column widths from their least widths, the spare columns given to each in proportion to what it lacks."""
    lacking = [w - m for w, m in zip(widest, least)]
    total = sum(lacking)
    if total <= spare:
        return list(widest)
    widths = [m + lack * spare // total for m, lack in zip(least, lacking)]
    left = spare - sum(w - m for w, m in zip(widths, least))
    for i in sorted(range(len(widths)), key=lambda i: widths[i] - widest[i]):  # the rounding's leftovers
        if left == 0:
            break
        if widths[i] < widest[i]:
            widths[i] += 1
            left -= 1
    return widths


def _records(title: str, columns: list[Column], rows: list[list[str]]) -> Group:
    """One block per row: its first cell on a line, then `header  value` for each other non-empty cell."""
    blocks: list[RenderableType] = [Text.from_markup(title)] if title else []
    label_width = max(len(col.header) for col in columns[1:]) if len(columns) > 1 else 0
    for row in rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=label_width)
        grid.add_column(overflow="fold")
        for col, cell in zip(columns[1:], row[1:]):
            if _plain(cell).strip():
                grid.add_row(escape(col.header), cell)
        blocks += [Text(""), Text.from_markup(f"[bold]{row[0]}[/]"), _indented(grid)]
    return Group(*blocks)


def _indented(renderable: RenderableType) -> RenderableType:
    return Padding(renderable, (0, 0, 0, 2))


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain

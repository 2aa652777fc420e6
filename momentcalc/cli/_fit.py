"""Tables that fit the console without cutting a digit.

rich squeezes a table wider than the console by cutting cells ("0.39894228040143…"), and as a last resort
narrows every column evenly, numbers included. The digits are what this tool exists to print, so a table is
laid out in the first of four ways that fits the console's width:

1. whole, as built;
2. text columns (and the headers of number columns) wrapped at spaces, never narrower than their longest
   word; number columns as wide as their widest number;
3. as 2, with each uncertainty column (Column.attach) stacked under the value it belongs to;
4. one record per block: its first cell, then one `header  value` line per other cell.

No cell is cut in any of them, and a number, being one word, is never split.
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
    """A column: its header (plain text), whether its cells are numbers (never wrapped), and whether it is the
    uncertainty of the column before it (attach: stacked under that column's value where space is short)."""

    header: str
    numeric: bool = True
    justify: str = "right"
    attach: bool = False


def fitted(
    console: Console,
    title: str,
    columns: list[Column],
    rows: list[list[str]],
    table_box: box.Box | None = box.SIMPLE_HEAD,
    **table_options,
) -> RenderableType:
    """The table of rows (cells in rich markup; title too) laid out to fit console.width (see the module)."""
    for cols, cells in ((columns, rows), _stacked(columns, rows)):
        table = _table(title, cols, cells, table_box, None, table_options)
        natural = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
        if natural <= console.width:
            return table
        widest, least = _widest(cols, cells), _least(cols, cells)
        available = console.width - (natural - sum(widest))  # natural - widest: padding and borders
        if sum(least) <= available:
            return _table(title, cols, cells, table_box, _share(available, least, widest), table_options)
    return _records(title, columns, rows)


def _table(title, columns, rows, table_box, widths, options) -> Table:
    table = Table(title=title or None, title_justify="left", box=table_box, **options)
    for i, col in enumerate(columns):
        table.add_column(
            escape(col.header),
            justify=col.justify,
            no_wrap=col.numeric and widths is None,  # with widths, a number column is as wide as its widest cell
            overflow="fold",  # never "…"; only a word longer than its column (none, by _least) would fold
            width=None if widths is None else widths[i],
        )
    for row in rows:
        table.add_row(*row)
    return table


def _lines(markup: str) -> list[str]:
    return Text.from_markup(markup).plain.split("\n")


def _widest(columns: list[Column], rows: list[list[str]]) -> list[int]:
    cells = [[col.header] + [r[i] for r in rows] for i, col in enumerate(columns)]
    return [max(len(line) for c in column for line in _lines(c)) for column in cells]


def _least(columns: list[Column], rows: list[list[str]]) -> list[int]:
    """The narrowest each column may be: its widest number, or the longest word of its text."""
    found = []
    for i, col in enumerate(columns):
        words = [len(w) for w in col.header.split()]
        for line in (line for r in rows for line in _lines(r[i])):
            words += [len(line)] if col.numeric else [len(w) for w in line.split()]
        found.append(max(words, default=1))
    return found


def _stacked(columns: list[Column], rows: list[list[str]]) -> tuple[list[Column], list[list[str]]]:
    """Each attached column merged into the column before it, as a second line `± value` (its header's first
    word); from the right, so that a run of attached columns all land in the column they follow."""
    keep = [i for i, col in enumerate(columns) if not col.attach]
    merged_columns = [columns[i] for i in keep]
    merged_rows = []
    for row in rows:
        cells = list(row)
        for i in reversed(range(1, len(columns))):
            if columns[i].attach and Text.from_markup(cells[i]).plain.strip():
                mark = columns[i].header.split()[0]  # "±" of "± (bound or SE)"
                cells[i - 1] = f"{cells[i - 1]}\n{escape(mark)} {cells[i]}"
        merged_rows.append([cells[i] for i in keep])
    return merged_columns, merged_rows


def _share(available: int, least: list[int], widest: list[int]) -> list[int]:
    """Column widths that sum to `available` at most: the widest columns are narrowed first, each down to its
    least width at most, so that the narrow ones (a list of methods, a word) stay on one line."""
    widths = list(widest)
    excess = sum(widths) - available
    while excess > 0:
        narrowable = [i for i, w in enumerate(widths) if w > least[i]]
        top = max(widths[i] for i in narrowable)
        at_top = [i for i in narrowable if widths[i] == top]
        floor = max([widths[i] for i in narrowable if widths[i] < top] + [least[i] for i in at_top])
        step = min(top - floor, -(-excess // len(at_top)))
        for i in at_top:
            cut = min(step, widths[i] - least[i], excess)
            widths[i] -= cut
            excess -= cut
    return widths


def _records(title: str, columns: list[Column], rows: list[list[str]]) -> Group:
    """One block per row: its first cell, then `header  value` per other non-empty cell; an attached column's
    value follows the value before it on the same line."""
    blocks: list[RenderableType] = [Text.from_markup(title)] if title else []
    for row in rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        lines: list[list[str]] = []
        for col, cell in zip(columns[1:], row[1:]):
            if not Text.from_markup(cell).plain.strip():
                continue
            if col.attach and lines:
                lines[-1][1] += f" {escape(col.header)} {cell}"
            else:
                lines.append([escape(col.header), cell])
        for header, value in lines:
            grid.add_row(header, value)
        blocks += [Text(""), Text.from_markup(f"[bold]{row[0]}[/]"), Padding(grid, (0, 0, 0, 2), expand=False)]
    return Group(*blocks, Text(""))

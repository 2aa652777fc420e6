"""cli._fit: any table, any console width from 40 columns: no line wider than the console, no cell cut.

Hypothesis draws the tables (number and text columns, uncertainty columns attached to their values, empty
cells) and the width; the rendered text must hold every number whole and every word of every text cell whole.
"""

import io
import re
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from momentcalc.cli._fit import Column, fitted

WORD = st.text(alphabet=string.ascii_letters + "()=,.'_-", min_size=1, max_size=15)
NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=0, max_value=10**12).map(str),
    st.floats(min_value=1e-300, max_value=1.0).map(lambda x: f"{x:.2g}"),
)
HEADER = st.text(alphabet=string.ascii_lowercase + " ±", min_size=1, max_size=12).filter(lambda h: h.strip())


@st.composite
def tables(draw):
    count = draw(st.integers(min_value=1, max_value=9))
    columns = [Column(draw(HEADER), numeric=False, justify="left")]  # the first cell names a record
    for _ in range(count - 1):
        numeric = draw(st.booleans())
        attach = numeric and columns[-1].numeric and draw(st.booleans())
        columns.append(Column(draw(HEADER), numeric=numeric, attach=attach))
    rows = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        row = [draw(WORD)]
        for col in columns[1:]:
            if col.numeric:
                row.append(draw(st.one_of(NUMBER, st.just(""))))
            else:
                row.append(" ".join(draw(st.lists(WORD, min_size=0, max_size=8))))
        rows.append(row)
    return columns, rows


def render(columns, rows, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False, markup=True)
    escaped = [[cell.replace("[", "\\[") for cell in row] for row in rows]
    console.print(fitted(console, "a title", columns, escaped))
    return out.getvalue()


def whole(text: str, token: str) -> bool:
    return re.search(rf"(?<![^\s│┃]){re.escape(token)}(?![^\s│┃])", text) is not None


@settings(max_examples=150, deadline=None)
@given(tables(), st.integers(min_value=40, max_value=200))
@example(  # the estimate table of `momentcalc estimate relu` at 60 columns: one record per block
    (
        [Column("method", numeric=False, justify="left"), Column("mean"), Column("±", attach=True)]
        + [Column("std"), Column("±", attach=True), Column("samples"), Column("time")],
        [["certified*", "0.39894228040143270", "2.8e-17", "0.58381937010354890", "5.6e-17", "", "0.05s"]],
    ),
    60,
)
@example(  # two attached columns in a row, stacked: the second one's cell once vanished (hypothesis found it)
    (
        [Column("a", numeric=False, justify="left"), Column("a"), Column("a", attach=True)]
        + [Column("a", attach=True), Column("a", numeric=False), Column("a", numeric=False)],
        [["=", "", "0.0", "1000000000000.0", "", ""]],
    ),
    40,
)
def test_no_line_is_wider_than_the_console_and_no_cell_is_cut(table, width):
    columns, rows = table
    text = render(columns, rows, width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text
    for row in rows:
        for col, cell in zip(columns, row):
            tokens = [cell] if col.numeric and cell else cell.split()
            missing = [t for t in tokens if not whole(text, t)]
            assert not missing, (missing, text)


def test_a_table_that_fits_is_printed_as_built():
    columns = [Column("op", numeric=False, justify="left"), Column("mean")]
    text = render(columns, [["relu", "0.3989422804014327"]], 80)
    assert re.search(r"^\s*relu\s+0\.3989422804014327\s*$", text, re.M), text


def test_uncertainties_stack_under_their_values_before_records_are_used():
    columns = [Column("method", numeric=False, justify="left"), Column("mean"), Column("±", attach=True)]
    columns += [Column("std"), Column("±", attach=True)]
    row = ["certified*", "0.39894228040143270", "2.8e-17", "0.58381937010354890", "5.6e-17"]
    text = render(columns, [row], 60)
    assert re.search(r"^\s*certified\*\s+0\.39894228040143270\s+0\.58381937010354890\s*$", text, re.M), text
    assert re.search(r"^\s+± 2\.8e-17\s+± 5\.6e-17\s*$", text, re.M), text

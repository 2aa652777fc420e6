"""Rendering of a spatial.SpatialResult (`momentcalc estimate SPEC --size I`): window kinds, layout, verdict.

Only rendering: the numbers come from momentcalc.spatial; --json prints result.to_dict() instead.
"""

from __future__ import annotations

import string

from rich.console import Console
from rich.markup import escape

from ._fit import Column, fitted
from ._util import _se, _value

MAX_LAYOUT_SIDE = 32  # draw the letter layout of maps up to this side
MAX_LISTED = 4  # list positions of a kind up to this many, else count them


def render_map(result, console: Console) -> None:
    """The kinds of output positions with their values, a letter layout of the map, and the verdict."""
    letters = _letters(len(result.kinds))
    console.print(_kinds_table(result, letters, console))
    for line in _layout(result, letters):
        console.print(line, highlight=False)
    _verdict(result, console)


def _kinds_table(result, letters: list[str], console: Console):
    """One row per kind of output position: where it is, its values, and its Monte Carlo check."""
    side = " x ".join([str(result.size)] * result.dims)
    out = " x ".join([str(result.output_size)] * result.dims)
    title = f"{escape(result.spec)}   on a {side} input map -> {out} outputs, X ~ N({result.mu:g}, {result.sigma:g}²)"
    # Numbers carry the digits their uncertainty supports (up to 17): never wrapped or cut; the text columns wrap.
    columns = [Column("kind", numeric=False, justify="left"), Column("where", numeric=False, justify="left")]
    columns += [Column("positions", numeric=False, justify="left"), Column("real inputs")]
    columns += [Column("mean"), Column("± mean", attach=True), Column("std"), Column("± std", attach=True)]
    columns += [Column("method", numeric=False, justify="left"), Column("check", numeric=False, justify="left")]
    checks = _checks_by_kind(result)
    rows = [
        [
            letter,
            escape(kind.label),
            _positions(kind),
            "—" if kind.real_inputs is None else str(kind.real_inputs),
            _value(kind.mean, kind.mean_se),
            _se(kind.mean_se),
            _value(kind.std, kind.std_se),
            _se(kind.std_se),
            kind.method,
            _check_text(checks.get(index, []), kind),
        ]
        for index, (letter, kind) in enumerate(zip(letters, result.kinds))
    ]
    return fitted(console, title, columns, rows)


def map_rows(result) -> tuple[list[str], list[list]]:
    """The map as CSV rows: one per output position, its kind (letter and label), the values of record and
    Monte Carlo's."""
    axes = ["i", "j", "k"][: result.dims]
    letters = _letters(len(result.kinds))
    kind_at = {tuple(p): (letter, kind.label) for letter, kind in zip(letters, result.kinds) for p in kind.positions}
    mc = result.montecarlo
    header = axes + ["kind", "where", "mean", "mean_se", "std", "std_se"]
    header += [] if mc is None else ["mc_mean", "mc_mean_se", "mc_std", "mc_std_se"]
    rows = []
    for position in sorted(kind_at):
        row = [*position, *kind_at[position]]
        row += [float(m[position]) for m in (result.mean_map, result.mean_se_map, result.std_map, result.std_se_map)]
        if mc is not None:
            row += [float(m[position]) for m in (mc.mean, mc.mean_se, mc.std, mc.std_se)]
        rows.append(row)
    return header, rows


def _letters(count: int) -> list[str]:
    if count <= 26:
        return list(string.ascii_uppercase[:count])
    return [str(i + 1) for i in range(count)]


def _positions(kind) -> str:
    if kind.count <= MAX_LISTED:
        return " ".join("(" + ",".join(map(str, p)) + ")" for p in kind.positions)
    return f"{kind.count} positions"


def _checks_by_kind(result) -> dict[int, list]:
    found: dict[int, list] = {}
    for c in result.checks:
        found.setdefault(c.kind_index, []).append(c)
    return found


def _check_text(checks: list, kind) -> str:
    """The worst z-score of Monte Carlo against the kind's exact values, or why there is no check."""
    if checks:
        max_z = max(c.max_z for c in checks)
        colour = "green" if all(c.ok for c in checks) else "bold red"
        return f"[{colour}]MC max z {max_z:.2f}[/]"
    if kind.method == "montecarlo":
        return "Monte Carlo only" if kind.note is None else f"MC only: {escape(kind.note)}"
    return "exact only"


def _layout(result, letters: list[str]) -> list[str]:
    """Each output position as its kind's letter: one line for dims=1, rows for dims=2, slices for dims=3."""
    o = result.output_size
    if o > MAX_LAYOUT_SIDE or (result.dims == 3 and o > 8):
        return []
    where = {}
    for letter, kind in zip(letters, result.kinds):
        for p in kind.positions:
            where[p] = letter
    width = max(len(x) for x in letters) if letters else 1

    def row(prefix: tuple) -> str:
        return "  " + " ".join(where[prefix + (j,)].rjust(width) for j in range(o))

    if result.dims == 1:
        return ["layout:", row(())]
    if result.dims == 2:
        return ["layout:"] + [row((i,)) for i in range(o)]
    lines = []
    for i in range(o):
        lines += [f"layout, slice {i}:"] + [row((i, j)) for j in range(o)]
    return lines


def _verdict(result, console: Console) -> None:
    """The Monte Carlo run, and whether it agrees with the exact values."""
    if result.montecarlo is not None:
        mc = result.montecarlo
        console.print(f"Monte Carlo: {mc.samples:,} maps, seed {mc.seed}, {mc.seconds:.2f} s")
    if not result.checks:
        console.print("[yellow]no exact values to cross-check against Monte Carlo[/]")
    elif result.agree:
        z, count = result.checks[0].z, len(result.checks)
        console.print(
            f"[green]agree[/]: exact and Monte Carlo within z = {z:g} at every position ({count} checks; "
            "the limit grows with the positions a check covers, so that a map has one check's false-alarm rate)"
        )
    else:
        console.print(f"[bold red]DISAGREE[/]: {escape(', '.join(result.disagreements))}")

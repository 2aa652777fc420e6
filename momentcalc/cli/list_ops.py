"""`momentcalc list`: every op a spec may name, with its parameters, defaults and applicable methods."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .. import catalog, engine
from ..settings import WINDOW_MAX
from ._util import _console, app


def _op_rows() -> list[tuple[str, str, str, str]]:
    """(name, parameters, description, methods) of every op: the one place that reads the op declarations."""

    def methods(op) -> str:
        if op.kind == catalog.LAYER:
            return "a layer for `momentcalc backward` only"
        support = engine.method_support(op)  # each method reads the declaration
        found = [("closed¹" if m == "closed" else m) for m, why in support.items() if why is None]
        return ", ".join(found) or "none"

    def params(op) -> str:
        if op.kind == catalog.WINDOW:
            extra = ", count_include_pad=true" if op.param("count_include_pad") else ""
            return (
                f"k (window side) or n (window size); dims=2; with k: s=k (stride), p=0 (padding){extra}; "
                f"n or k**dims at most {WINDOW_MAX}"
            )
        parts = []
        for p in op.params:
            required = f"{p.name}=<{p.describe()}> (required)"
            ranged = "" if p.bounds is None else f" in {p.range_text()}"
            text = required if p.default is None else f"{p.name}={p.default}{ranged}"
            parts.append(text + (f" [{'|'.join(p.choices)}]" if p.choices else ""))
        return ", ".join(parts) or "—"

    return [(op.name, params(op), op.description, methods(op)) for op in catalog.all_ops()]


@app.command("list", epilog="Example:\n\n  momentcalc list")
def list_ops() -> None:
    """Every op a spec may name, with its parameters, defaults and applicable methods."""
    title = "ops (join them with | into a pipeline, e.g. 'relu | normalize | maxpool(k=3)')"
    grid = Table(title=title, title_justify="left")
    for name in ("op", "parameters", "description", "methods"):
        grid.add_column(name)
    for name, params, description, methods in _op_rows():
        grid.add_row(name, escape(params), escape(description), methods)
    console = _console()
    console.print(grid)
    console.print(
        "Each method as the op's declaration allows; whether it applies to a given spec can depend on its "
        "parameters and what precedes it. ¹ where a closed form is known for the single op (e.g. relu, avgpool, "
        "maxpool with n <= 4). `momentcalc estimate SPEC --method all` shows which methods apply to a given spec."
    )

"""`momentcalc list`: every op a spec may name, with its parameters, defaults and applicable methods."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.markup import escape

from .. import catalog, engine
from ..settings import WINDOW_MAX
from ._fit import Column, fitted
from ._util import _console, _echo_csv, _examples, _one_format, app


def _op_rows() -> list[tuple[str, str, str, str]]:
    """(name, parameters, description, methods) of every op: the one place that reads the op declarations."""

    def methods(op) -> str:
        if op.kind == catalog.LAYER:
            return "a layer for `momentcalc backward` only"
        support = engine.methods.method_support(op)  # each method reads the declaration
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


def _op_document(op, params: str, methods: str) -> dict:
    """One op for --json: the columns of the table, and each parameter's declaration."""
    declared = [
        {
            "name": p.name,
            "type": p.kind.__name__,
            "default": p.default,
            "required": p.default is None,
            "range": None if p.bounds is None else list(p.bounds),
            "choices": list(p.choices),
        }
        for p in op.params
    ]
    return {
        "name": op.name,
        "kind": op.kind,
        "parameters": "" if params == "—" else params,
        "parameter_list": declared,
        "description": op.description,
        "methods": methods.replace("¹", ""),  # the footnote mark of the table
        "declined": dict(op.declined),  # method -> the op's reason why it declines every use
    }


@app.command("list", epilog=_examples("list", "list --json", "list --csv"))
def list_ops(
    as_json: Annotated[bool, typer.Option("--json", help="Print the ops as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the table as CSV.")] = False,
) -> None:
    """Every op a spec may name, with its parameters, defaults and applicable methods."""
    _one_format(as_json, as_csv)
    rows = _op_rows()
    if as_json:
        ops = {op.name: op for op in catalog.all_ops()}
        doc = {"ops": [_op_document(ops[name], params, methods) for name, params, _, methods in rows]}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    if as_csv:
        _echo_csv(["op", "parameters", "description", "methods"], rows)
        return
    title = "ops (join them with | into a pipeline, e.g. 'relu | normalize | maxpool(k=3)')"
    columns = [Column(name, numeric=False, justify="left") for name in ("op", "parameters", "description", "methods")]
    cells = [[name, escape(params), escape(description), methods] for name, params, description, methods in rows]
    console = _console()
    console.print(fitted(console, title, columns, cells, table_box=box.HEAVY_HEAD))
    console.print(
        "Each method as the op's declaration allows; whether it applies to a given spec can depend on its "
        "parameters and what precedes it. ¹ where a closed form is known for the single op (e.g. relu, avgpool, "
        "maxpool with n <= 4). `momentcalc estimate SPEC --method all` shows which methods apply to a given spec."
    )
    for op in catalog.all_ops():  # the reasons an op states for a method that declines it, one line each
        for method, why in op.declined:
            console.print(f"{op.name}: {method} declines: {escape(why)}")

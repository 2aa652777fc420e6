"""`momentcalc shape`: output size and padding of a conv or pooling layer (conv/pool arithmetic)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .._lazy import lazy_module
from ._util import _console, _examples, app

convshape = lazy_module("momentcalc.convshape")  # loads when the command runs: `momentcalc --help` stays fast


@app.command(
    "shape",
    epilog=_examples(
        "shape --i 5 --k 3 --s 2 --p 1", "shape --i 32 --k 3 --padding same", "shape --i 7 --k 2 --pool --json"
    ),
)
def shape(
    i: Annotated[int, typer.Option("--i", help="Input size along one axis.")],
    k: Annotated[int, typer.Option("--k", help="Kernel (window) size.")],
    s: Annotated[int | None, typer.Option("--s", help="Stride [default: 1, or k with --pool].")] = None,
    p: Annotated[int | None, typer.Option("--p", help="Explicit zero padding per side (not with --padding).")] = None,
    d: Annotated[int, typer.Option("--d", help="Dilation.")] = 1,
    padding: Annotated[str | None, typer.Option("--padding", help="Padding mode: valid, same (half) or full.")] = None,
    pool: Annotated[bool, typer.Option("--pool", help="Pooling window: no padding unless given, p <= k/2.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print {output, padding, warning} as JSON.")] = False,
) -> None:
    """Output size and padding of a conv or pooling layer: o = floor((i + 2p - k_eff)/s) + 1."""

    result = convshape.conv_shape(i, k, s, p, d, padding=padding, pool=pool)
    if json_out:
        typer.echo(json.dumps(result.as_dict()))
        return
    _render_shape(result)


def _render_shape(result) -> None:
    """Output, padding, stride and effective kernel as a two-column table, then any warning."""
    table = Table(show_header=False, box=None)
    table.add_row("output", str(result.output))
    table.add_row("padding", str(result.padding) + (f" ({result.mode})" if result.mode else ""))
    table.add_row("stride", str(result.stride))
    table.add_row("effective kernel", str(result.effective_kernel))
    console = _console(highlight=False)
    console.print(table)
    if result.warning:
        console.print(f"[yellow]warning:[/yellow] {result.warning}", markup=True)

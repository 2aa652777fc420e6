"""CLI commands ``shape`` (conv/pool output-size arithmetic) and ``backward`` (variance maps).

``register(app)`` adds both to a typer app. The commands only parse options,
call ``momentcalc.convshape`` / ``momentcalc.backward`` and render the result;
numpy and the library are imported inside the commands so that
``momentcalc --help`` stays fast. Exit codes follow ``momentcalc.cli``: bad
input prints one ``error: ...`` line to stderr and exits 2; a simulation that
disagrees with the exact backward map exits 1.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

_TABLE_MAX_SIZE = 12  # maps up to this side are shown whole; larger ones as distinct values
_DISTINCT_SHOWN = 30


def register(app: typer.Typer) -> None:
    """Add the ``shape`` and ``backward`` commands to ``app``."""
    app.command("shape")(shape)
    app.command("backward")(backward)


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def shape(
    i: int = typer.Option(..., "--i", help="Input size along one axis."),
    k: int = typer.Option(..., "--k", help="Kernel (window) size."),
    s: Optional[int] = typer.Option(None, "--s", help="Stride [default: 1, or k with --pool]."),
    p: Optional[int] = typer.Option(None, "--p", help="Explicit zero padding per side (not with --padding)."),
    d: int = typer.Option(1, "--d", help="Dilation."),
    padding: Optional[str] = typer.Option(None, "--padding", help="Padding mode: valid, same (half) or full."),
    pool: bool = typer.Option(False, "--pool", help="Pooling window: no padding unless given, p <= k/2."),
    json_out: bool = typer.Option(False, "--json", help="Print {output, padding, warning} as JSON."),
) -> None:
    """Output size and padding of a conv or pooling layer: o = floor((i + 2p - k_eff)/s) + 1."""
    from .convshape import conv_shape
    from .errors import MomentcalcError

    try:
        result = conv_shape(i, k, s, p, d, padding=padding, pool=pool)
    except MomentcalcError as error:
        _fail(error)
    if json_out:
        typer.echo(json.dumps(result.as_dict()))
        return
    _render_shape(result)


def _render_shape(result) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_row("output", str(result.output))
    table.add_row("padding", str(result.padding) + (f" ({result.mode})" if result.mode else ""))
    table.add_row("stride", str(result.stride))
    table.add_row("effective kernel", str(result.effective_kernel))
    console = _console()
    console.print(table)
    if result.warning:
        console.print(f"[yellow]warning:[/yellow] {result.warning}", markup=True)


def backward(
    layer: str = typer.Argument(..., help="Layer spec, e.g. 'conv(k=3,s=2,p=1,cin=1,cout=1)', 'maxpool(k=3,s=2)'."),
    size: int = typer.Option(..., "--size", help="Side I of the I x I input."),
    json_out: bool = typer.Option(False, "--json", help="Print the map and summary as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulation cross-check."),
    trials: int = typer.Option(1000, "--trials", help="Simulation trials for the cross-check; 0 skips it."),
) -> None:
    """Variance of the input gradient at each position, for iid N(0, 1) upstream gradient."""
    from .backward import backward_map
    from .errors import MomentcalcError

    try:
        result = backward_map(layer, size, trials=trials, seed=seed)
    except MomentcalcError as error:
        _fail(error)
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
    else:
        _render_backward(result)
    if result.simulation is not None and not result.simulation.passed:
        raise typer.Exit(1)  # a finding: the exact map and the simulation disagree


def _render_backward(result) -> None:
    console = _console()
    console.print(f"[bold]{result.layer}[/bold] on {result.size}x{result.size} input "
                  f"(output {result.output_size}x{result.output_size})", markup=True)
    console.print(_map_table(result.map))
    console.print(_summary_table(result))
    if result.simulation is not None:
        console.print(_simulation_line(result.simulation), markup=True)


def _map_table(values: list[list[float]]):
    """The whole map for small inputs, else its distinct values with counts."""
    import numpy as np
    from rich.table import Table

    if len(values) <= _TABLE_MAX_SIZE:
        table = Table(title="gradient variance map", show_header=False)
        for row in values:
            table.add_row(*(f"{v:.4g}" for v in row))
        return table
    distinct, counts = np.unique(np.round(np.asarray(values), 12), return_counts=True)
    table = Table(title=f"gradient variance map: {len(distinct)} distinct values")
    table.add_column("variance", justify="right")
    table.add_column("positions", justify="right")
    for value, count in list(zip(distinct, counts))[:_DISTINCT_SHOWN]:
        table.add_row(f"{value:.6g}", str(count))
    if len(distinct) > _DISTINCT_SHOWN:
        table.add_row("...", f"{len(distinct) - _DISTINCT_SHOWN} more values")
    return table


def _summary_table(result):
    from rich.table import Table

    def fmt(value):
        return "n/a" if value is None else f"{value:.6g}"

    table = Table(show_header=False, box=None)
    table.add_row("min (reached positions)", fmt(result.min))
    table.add_row("max", fmt(result.max))
    table.add_row("mean", fmt(result.mean))
    table.add_row("ratio max/min", fmt(result.ratio))
    table.add_row("positions with no gradient", f"{result.unreached} of {result.size * result.size}")
    table.add_row("backward constant 1/sqrt(mean)", fmt(result.backward_constant))
    return table


def _simulation_line(check) -> str:
    verdict = "[green]agrees[/green]" if check.passed else "[red]DISAGREES[/red]"
    line = (f"simulation ({check.trials} trials, seed {check.seed}): {verdict}, "
            f"max |z| = {check.max_abs_z:.2f} (limit {check.z})")
    if check.adjoint_max_diff is not None:
        line += f", scatter vs rot180 gradient max diff {check.adjoint_max_diff:.1e}"
    return line

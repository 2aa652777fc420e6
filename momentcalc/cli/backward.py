"""`momentcalc backward`: the variance of the input gradient at each position (variance maps of conv and pool).

Exit code 1 when the simulation cross-check disagrees with the exact map.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from .._lazy import lazy_module
from ._fit import UNBOUNDED
from ._util import EXIT_DISAGREE, _console, _examples, _LazyBar, app

# numpy and the library load when the command runs, so `momentcalc --help` stays fast.
backward_maps = lazy_module("momentcalc.backward")
np = lazy_module("numpy")

_TABLE_MAX_SIZE = 12  # maps up to this side are shown whole; larger ones as distinct values
_DISTINCT_SHOWN = 30


@app.command(
    "backward",
    epilog=_examples(
        "backward 'conv(k=3,s=2,p=1,cin=1,cout=1)' --size 7",
        "backward 'maxpool(k=3,s=2)' --size 9 --trials 4000",
        "backward 'conv(k=3,s=1,p=1,cin=16,cout=16)' --size 32 --trials 0 --json",
    ),
)
def backward(
    layer: Annotated[
        str, typer.Argument(help="Layer spec, e.g. 'conv(k=3,s=2,p=1,cin=1,cout=1)', 'maxpool(k=3,s=2)'.")
    ],
    size: Annotated[int, typer.Option("--size", help="Side I of the I x I input.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the map and summary as JSON.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulation cross-check.")] = 0,
    trials: Annotated[int, typer.Option("--trials", help="Simulation trials for the cross-check; 0 skips it.")] = 1000,
) -> None:
    """Variance of the input gradient at each position, for iid N(0, 1) upstream gradient."""

    with _LazyBar("simulation") as bar:
        result = backward_maps.backward_map(layer, size, trials=trials, seed=seed, progress=bar)
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
    else:
        _render_backward(result)
    if result.simulation is not None and not result.simulation.passed:
        raise typer.Exit(EXIT_DISAGREE)  # a finding: the exact map and the simulation disagree


def _render_backward(result) -> None:
    """Title line, the map, its summary and the simulation's verdict."""
    console = _console(highlight=False)
    console.print(
        f"[bold]{result.layer}[/bold] on {result.size}x{result.size} input "
        f"(output {result.output_size}x{result.output_size})",
        markup=True,
    )
    console.print(_map_table(result.map, console))
    console.print(_summary_table(result))
    if result.simulation is not None:
        console.print(_simulation_line(result.simulation), markup=True)


def _map_table(values: list[list[float]], console: Console):
    """The whole map for small inputs where it fits the console, else its distinct values with counts."""

    if len(values) <= _TABLE_MAX_SIZE:
        table = Table(title="gradient variance map", show_header=False)
        for row in values:
            table.add_row(*(f"{v:.4g}" for v in row))
        if Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum <= console.width:
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
    """Min, max, mean and ratio of the map, unreached positions, and the backward constant."""

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
    """The simulation cross-check in one line: trials, seed, verdict, worst |z|."""
    verdict = "[green]agrees[/green]" if check.passed else "[red]DISAGREES[/red]"
    line = (
        f"simulation ({check.trials} trials, seed {check.seed}): {verdict}, "
        f"max |z| = {check.max_abs_z:.2f} (limit {check.z})"
    )
    if check.adjoint_max_diff is not None:
        line += f", scatter vs rot180 gradient max diff {check.adjoint_max_diff:.1e}"
    return line

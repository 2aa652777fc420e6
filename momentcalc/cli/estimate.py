"""`momentcalc estimate`: the mean and std of a spec's output by every method that applies, cross-checked."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..result import informative
from ._extras import DASK, require
from ._fit import Column, fitted
from ._util import EXIT_DISAGREE, TimeoutOption, _console, _echo_csv, _examples, _LazyBar, _one_format, _se, _value, app
from .render_map import map_rows, render_map

engine = lazy_module(
    "momentcalc.engine"
)  # numba: loads when something is computed, so `momentcalc --help` stays instant


MAP_WIDTH = 200  # piped width of a map's table: ten columns, values with up to 17 digits


class Method(str, Enum):
    auto = "auto"
    certified = "certified"
    closed = "closed"
    quadrature = "quadrature"
    montecarlo = "montecarlo"
    qmc = "qmc"
    all = "all"


@app.command(
    epilog=_examples(
        "estimate relu",
        "estimate 'maxpool(k=3)' --method all --json",
        "estimate 'relu | normalize | maxpool(k=3)' --samples 16777216",
        "estimate 'dropout(p=0.8)' --mu -1 --sigma 2 --tol 1e-4",
        "estimate gelu --method certified --digits 30",
        "estimate 'maxpool(k=3,s=1,p=1)' --size 6 --csv > map.csv",
    )
)
def estimate(
    spec: Annotated[
        str, typer.Argument(help="What to measure, e.g. relu, 'maxpool(k=3)', 'relu | normalize | maxpool(k=3)'.")
    ],
    mu: Annotated[float, typer.Option(help="Mean of the Gaussian input.")] = 0.0,
    sigma: Annotated[float, typer.Option(help="Standard deviation of the Gaussian input (> 0).")] = 1.0,
    method: Annotated[
        Method,
        typer.Option(
            help="auto: certified and the closed form, quadrature and Monte Carlo only where those do not check each "
            "other; all: every method that applies, quasi-Monte Carlo too; or just one."
        ),
    ] = Method.auto,
    samples: Annotated[int | None, typer.Option(help="Monte Carlo samples (default 2**22).")] = None,
    tol: Annotated[
        float | None, typer.Option(help="Monte Carlo: sample until both standard errors are below this.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Monte Carlo seed; the same seed gives the same bits on any thread count.")
    ] = 0,
    z: Annotated[float, typer.Option(help="Agreement bound for Monte Carlo: |difference| <= z * combined SE.")] = 4.5,
    size: Annotated[
        int | None,
        typer.Option(
            help="Input feature-map side I: report the mean and std at every output position, border windows included."
        ),
    ] = None,
    digits: Annotated[
        int | None,
        typer.Option(help="Ask the certified method for N correctly rounded significant digits, and print them."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    as_csv: Annotated[
        bool,
        typer.Option("--csv", help="With --size: print one CSV row per output position, every number in full."),
    ] = False,
    timings: Annotated[
        bool,
        typer.Option(
            "--timings", help="Also print the time spent loading modules and kernels (not in the methods' times)."
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            envvar="MOMENTCALC_SCHEDULER",
            help="Run Monte Carlo on a Dask cluster, with the same bits: tcp://host:8786, or local:N "
            "for N worker processes here. Needs momentcalc[dask].",
        ),
    ] = None,
    timeout: TimeoutOption = None,
) -> None:
    """Mean and std of SPEC's output for X ~ N(mu, sigma^2), by every method that applies.

    Exit code 0 when the methods agree, 1 when they disagree, 2 on bad input.
    """
    _one_format(as_json, as_csv)
    if as_csv and size is None:
        raise MomentcalcError("--csv prints the map of --size I, one row per position; without --size use --json")
    if scheduler:
        require(DASK, "--scheduler")

    with _LazyBar("Monte Carlo") as bar, engine.clock.compile_clock(bar.compiling, method.value):
        result = engine.estimate(
            spec,
            mu=mu,
            sigma=sigma,
            method=method.value,
            samples=samples,
            tol=tol,
            seed=seed,
            z=z,
            progress=bar,
            size=size,
            digits=digits,
            scheduler=scheduler,
            timeout=timeout,
        )
    overheads = getattr(result, "overheads", {})  # a whole map (--size) has none
    if as_json:
        typer.echo(_strict_json({**result.to_dict(), **({"overheads": overheads} if timings else {})}))
    elif as_csv:
        header, rows = map_rows(result)
        _echo_csv(header, rows)
    elif size is not None:
        render_map(result, _console(MAP_WIDTH))
    else:
        _render_result(result)
    if timings and not as_json:
        spent = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in overheads.items())
        _console().print(f"set-up, not in the methods' times: {spent or 'none recorded'}")
    if not result.agree:
        raise typer.Exit(EXIT_DISAGREE)


def _strict_json(data: dict) -> str:
    """JSON with no NaN or Infinity, which are not JSON (the engine lets no non-finite number through)."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise MomentcalcError(
            "the result holds a non-finite number, which JSON cannot carry; run without --json"
        ) from None


def _render_result(result) -> None:
    """One row per method, the method of record, each estimate's notes, and the cross-check's verdict."""
    console = _console()
    console.print(_estimates_table(result, console))
    seeds = sorted({e.seed for e in result.estimates if e.seed is not None})
    mean_by, std_by = result.mean_record, result.record
    legend = "method of record"
    if mean_by is not std_by:
        legend += f": mean by {mean_by.method}, std by {std_by.method}"
    console.print(f"* {legend}" + (f"; Monte Carlo seed {', '.join(map(str, seeds))}" if seeds else ""))
    for e in result.estimates:
        if e.notes:
            console.print(f"{e.method}: {escape('; '.join(e.notes))}")
    for e in result.estimates:
        for quantity in ("mean", "std", "grad_sq"):
            text = getattr(e, quantity + "_digits", None)
            if text is not None:
                console.print(f"{e.method} {quantity}: {text}")
    if result.not_run:
        console.print(f"not run by auto: {', '.join(result.not_run)} (--method all runs every method)")
    if len(result.estimates) < 2:
        console.print("[yellow]one method only: nothing to cross-check[/]")
    elif result.agree:
        console.print(f"[green]agree[/]: all {len(result.checks)} comparisons within their bounds")
    else:
        console.print(f"[bold red]DISAGREE[/]: {escape(', '.join(result.disagreements))}")
        for c in result.checks:
            if not c.ok:
                console.print(f"  {escape(c.pair)}: |difference| {abs(c.diff):.3g} > bound {c.tolerance:.3g}")


def _estimates_table(result, console):
    title = f"{escape(result.spec)}   for X ~ N({result.mu:g}, {result.sigma:g}²)"
    columns = [Column("method", numeric=False, justify="left"), Column("mean"), Column("±", attach=True)]
    columns += [Column("std"), Column("±", attach=True), Column("samples"), Column("time")]
    # Each value with the digits its uncertainty supports (cli._util._value); the values of record starred.
    rows = []
    for e in result.estimates:
        mean_known, std_known = informative(e, "mean"), e.std is None or informative(e, "std")
        rows.append(
            [
                e.method + ("*" if e is result.record or e is result.mean_record else ""),
                _value(e.mean, e.mean_se, mean_known),
                _se(e.mean_se, mean_known),
                _value(e.std, e.std_se, std_known),
                _se(e.std_se, std_known),
                "" if e.samples is None else str(e.samples),
                f"{e.seconds:.2f}s",
            ]
        )
    return fitted(console, title, columns, rows, pad_edge=False)

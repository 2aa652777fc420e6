"""`momentcalc solve`: the parameters marked `?` that bring a layer's output moments to targets; alpha dropout."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer
from rich import box as boxes
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ._fit import Column, fitted
from ._util import _console, _examples, _LazyBar, app

solve_lib = lazy_module("momentcalc.solve")  # scipy, numba, flint: only when the command runs


@app.command(
    "solve",
    epilog=_examples(
        "solve 'selu(alpha=?,scale=?)' --mean 0 --var 1",
        "solve 'selu(alpha=?,scale=?)' --mean -0.1 --var 2 --fixed-point",
        "solve 'elu(alpha=?)' --mean 0",
        "solve relu --affine 'a=?,b=?,c=1,d=?' --mean 0 --var 1 --grad-sq 1.0027709658495370",
        "solve selu --alpha-dropout 0.9 --json",
    ),
)
def solve_command(
    spec: Annotated[str, typer.Argument(help="A spec with unknown parameters marked ?, e.g. 'selu(alpha=?,scale=?)'.")],
    mean: Annotated[float | None, typer.Option(help="Target mean of the output.")] = None,
    var: Annotated[float | None, typer.Option(help="Target variance of the output.")] = None,
    grad_sq: Annotated[float | None, typer.Option("--grad-sq", help="Target E[f'(X)^2] (gradients' scale).")] = None,
    q_slope: Annotated[
        float | None,
        typer.Option("--q-slope", help="Target d E[f(X)^2] / d sigma^2 (DKS's local Q-map slope Q'(1) at N(0, 1))."),
    ] = None,
    mu: Annotated[float, typer.Option(help="Mean of the Gaussian input.")] = 0.0,
    sigma: Annotated[float, typer.Option(help="Standard deviation of the Gaussian input (> 0).")] = 1.0,
    fixed_point: Annotated[
        bool,
        typer.Option(
            "--fixed-point", help="Input N(--mean, --var): a fixed point of the moments (the SNNs notebook's)."
        ),
    ] = False,
    alpha_dropout: Annotated[
        float | None,
        typer.Option(
            "--alpha-dropout",
            help="Keep probability q: alpha dropout's affine (a, b) for this selu (no unknowns), keeping --mean/--var "
            "(default 0, 1).",
        ),
    ] = None,
    affine: Annotated[
        str | None,
        typer.Option(
            "--affine",
            help="Wrap the spec as a*f(b*x+c)+d: e.g. 'a=?,b=?,c=1,d=?' (? unknown; defaults a=b=1, c=d=0).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Solve for the op parameters marked ? so that the output has the target mean, variance, E[f'^2]."""
    if alpha_dropout is not None:
        _alpha_dropout(spec, alpha_dropout, mean, var, as_json)
        return
    if fixed_point:
        if mean is None or var is None or var <= 0:
            raise MomentcalcError("--fixed-point takes its input from --mean and --var (> 0): give both")
        mu, sigma = mean, math.sqrt(var)
    input_var = var if fixed_point else None  # the variance as posed, not through the rounded sqrt
    with _LazyBar("solving") as bar:
        result = solve_lib.solve(
            spec,
            mean=mean,
            var=var,
            grad_sq=grad_sq,
            mu=mu,
            sigma=sigma,
            affine=affine,
            q_slope=q_slope,
            progress=bar,
            input_var=input_var,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    _render(result)


def _render(result) -> None:
    console = _console()
    targets = ", ".join(f"{k} = {v!r}" for k, v in result.targets.items())
    wrap = result.affine
    shown = result.spec
    if any(u in wrap for u in result.unknowns) or wrap != solve_lib.AFFINE_DEFAULTS:
        fixed = ", ".join(f"{k}={v!r}" for k, v in wrap.items() if k not in result.unknowns)
        shown = f"a*f(b*x+c)+d, f = {result.spec}" + (f", {fixed}" if fixed else "")
    title = f"{shown} with {targets} for X ~ N({result.mu!r}, {result.sigma!r}^2)"
    if not result.solutions:
        console.print(f"no solution found for {escape(title)} from {result.starts} starts", highlight=False)
        return
    count = len(result.solutions)
    columns = [Column("#")]
    for name in result.unknowns:
        columns += [Column(name), Column("± bound", numeric=False, attach=True)]
    columns += [Column("residual"), Column("method", numeric=False, justify="left")]
    rows = []
    for i, s in enumerate(result.solutions, 1):
        cells = []
        for name in result.unknowns:
            mark = " (last double)" if s.last_double[name] else ""
            cells += [repr(s.values[name]), f"{s.errors[name]:.1e}{mark}"]
        residual = max(abs(r) for r in s.residual.values())
        rows.append([str(i), *cells, f"{residual:.1e}", s.method])
    heading = f"{count} solution{'s' if count > 1 else ''}: {escape(title)}"
    console.print(fitted(console, heading, columns, rows, table_box=boxes.HEAVY_HEAD))
    for i, s in enumerate(result.solutions, 1):
        if s.box is not None:
            box = ", ".join(f"{k} in [{lo!r}, {hi!r}]" for k, (lo, hi) in s.box.items())
            console.print(f"{i}: {escape(s.proof)} (outward doubles: {escape(box)})", highlight=False)
        elif s.proof:
            console.print(f"{i}: {escape(s.proof)}", highlight=False)
        if s.mirror_of is not None:
            console.print(f"{i}: the mirror of {s.mirror_of} ({escape(s.mirror)})", highlight=False)
    console.print(
        "bound: certified (Krawczyk): the distance from the double to the far end of the box, relative radius "
        "2^-80, that interval Newton in ball arithmetic proves holds exactly one root; otherwise "
        "|J^-1| (|residual| + its enclosure) x 2, J by central differences (a linearization, not a proof). "
        "(last double): the true root rounds to this double.",
        highlight=False,
    )


def _alpha_dropout(spec: str, keep: float, mean, var, as_json: bool) -> None:
    from ..spec import parse  # light: the spec language only

    parsed = parse(spec)
    if len(parsed.ops) != 1 or parsed.last.name != "selu":
        raise MomentcalcError(
            f"--alpha-dropout takes a selu spec such as 'selu' or 'selu(alpha=1.5,scale=1.1)', not {spec!r}"
        )
    op = parsed.last
    found = solve_lib.alpha_dropout(
        keep, op.get("alpha"), op.get("scale"), 0.0 if mean is None else mean, 1.0 if var is None else var
    )
    if as_json:
        typer.echo(json.dumps({"spec": str(parsed), **found.to_dict()}, indent=2, sort_keys=True))
        return
    _console().print(
        f"alpha dropout after {escape(str(parsed))}, keep q = {found.keep!r}: dropped units are set to "
        f"alpha' = -scale*alpha = {found.alpha_prime!r}; then y = a*x + b with\n"
        f"a = {found.a!r}\nb = {found.b!r}\n(keeps mean {found.mean!r} and variance {found.var!r}; "
        "Klambauer et al. 2017, closed form)",
        highlight=False,
    )

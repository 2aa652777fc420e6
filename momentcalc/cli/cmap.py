"""`momentcalc cmap`: the correlation map of an activation, E[f(X) f(Y)] for correlated standard normals."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError, WriteError
from ._extras import PLOTS, require
from ._fit import Column, fitted
from ._util import EXIT_DISAGREE, _console, _examples, _LazyBar, _se, _value, app
from .estimate import Method as EstimateMethod

cmap_lib = lazy_module("momentcalc.cmap")  # scipy and numba: only when the command runs


# estimate's methods, less the two K(c) has not: quasi-Monte Carlo, and "all" (auto already runs every one).
Method = Enum("Method", {m.name: m.value for m in EstimateMethod if m.value not in ("qmc", "all")}, type=str)


@app.command(
    "cmap",
    epilog=_examples("cmap relu --c 0.5", "cmap erf --c -0.3 --q 2 --json", "cmap tanh --c 0.9 --plot tanh_cmap.png"),
)
def cmap_command(
    spec: Annotated[str, typer.Argument(help="One elementwise op, e.g. relu, erf, 'leaky_relu(slope=0.2)'.")],
    c: Annotated[float, typer.Option("--c", help="Correlation of the two standard normal inputs, in [-1, 1].")],
    q: Annotated[float, typer.Option("--q", help="Input variance for the Q-map E[f(sqrt(q) Z)^2].")] = 1.0,
    method: Annotated[Method, typer.Option(help="auto: every method that applies, cross-checked; or one.")] = (
        Method.auto
    ),
    samples: Annotated[int, typer.Option(help="Monte Carlo samples.")] = 1 << 20,
    seed: Annotated[int, typer.Option(help="Monte Carlo seed (numpy SeedSequence).")] = 0,
    plot: Annotated[
        Path | None, typer.Option(help="Write a plot of C(c) over [-1, 1] to this .png or .svg file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """E[f(X) f(Y)] for (X, Y) standard normal with correlation c, the correlation map C(c), C(0), C'(1), Q-map."""
    if plot is not None:  # before the work: a bad path or a missing matplotlib should not cost the run
        _check_plot_path(plot)
        require(PLOTS, "cmap --plot")
    methods = cmap_lib.METHODS if method is Method.auto else (method.value,)
    with _LazyBar("Monte Carlo") as bar:
        result = cmap_lib.cmap(spec, c, q, methods=methods, samples=samples, seed=seed, progress=bar)
    if plot is not None:
        _plot(spec, result, plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        _render(result, plot)
    if not result.agree:
        raise typer.Exit(EXIT_DISAGREE)


def _render(r, plot) -> None:
    console = _console()
    title = escape(f"{r.spec}: K(c) = E[f(X) f(Y)], (X, Y) standard normal, corr c = {r.c!r}")
    columns = [Column("method", numeric=False, justify="left"), Column("K(c)")]
    columns += [Column("± (bound or SE)", attach=True), Column("samples"), Column("seed")]
    rows = [
        [
            e.method + (" *" if e is r.record else ""),
            _value(e.mean, e.mean_se),
            _se(e.mean_se),
            "" if e.samples is None else str(e.samples),
            "" if e.seed is None else str(e.seed),
        ]
        for e in r.estimates
    ]
    console.print(fitted(console, title, columns, rows, table_box=box.HEAVY_HEAD))
    lines = [
        f"C(c) = (K - E[f]^2) / Var f = {_value(r.corr, r.corr_se)}   (DKS's uncentred K / E[f^2] = "
        f"{_value(r.dks_corr, r.record.mean_se / r.second_moment)})",
        f"C(0) uncentred = E[f]^2 / E[f^2] = {r.c0!r}   (the centred C(0) is 0)",
        f"C'(1) = E[f'^2] / Var f = {_value(r.slope1, None)}   "
        f"(uncentred E[f'^2] / E[f^2] = {_value(r.dks_slope1, None)})",
        f"Q-map: E[f(sqrt(q) Z)^2] at q = {r.q!r}: {r.qmap!r}",
        f"E[f] = {r.mean!r}, Var f = {r.var!r} (exact, X ~ N(0, 1))",
        "cross-check: " + ("all methods agree" if r.agree else "DISAGREE: " + "; ".join(r.disagreements)),
    ]
    if plot is not None:
        lines.append(f"plot of C(c) written to {plot}")
    console.print(escape("\n".join(lines)), highlight=False)


def _check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise MomentcalcError(f"--plot writes a .png or .svg file, not {str(path)!r}")
    if not path.parent.is_dir():
        raise MomentcalcError(f"--plot: no directory {str(path.parent)!r} to write {path.name!r} into; create it first")


def _plot(spec: str, result, path: Path) -> None:
    matplotlib = lazy_module("matplotlib")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    cs, corr = cmap_lib.curve(spec)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(cs, corr, label=f"C(c) of {result.spec}")
    ax.plot([-1, 1], [-1, 1], ":", color="gray", label="identity")
    ax.scatter([result.c], [result.corr], color="C3", zorder=3, label=f"c = {result.c:g}")
    ax.set_xlabel("input correlation c")
    ax.set_ylabel("output correlation C(c)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, dpi=100, format=path.suffix[1:].lower())  # written whole, then moved into place
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write the plot to {str(path)!r}: {err.strerror or err}") from None
    finally:
        plt.close(fig)

"""`momentcalc gains`: activation gains at N(0, 1) beside the published PyTorch and NF-Nets values."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..spec import parse
from ._util import _console, _examples, app

gains = lazy_module(
    "momentcalc.gains"
)  # numba and scipy: load when the command runs, so `momentcalc --help` stays fast

GAINS_WIDTH = 160  # piped output: wide enough for all nine columns


@app.command("gains", epilog=_examples("gains", "gains --spec tanh --spec 'leaky_relu(slope=0.2)' --json"))
def gains_command(
    spec: Annotated[
        list[str] | None,
        typer.Option("--spec", help="An elementwise spec (repeatable); default: every built-in activation."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Gain 1/sqrt(E[f^2]), gamma 1/std, NormProp affine and E[f'^2] at N(0, 1), \
beside PyTorch's and NF-Nets' published values."""

    rows = gains.gains(_elementwise_specs(spec) if spec else None)
    if as_json:
        doc = {"input": {"mu": 0.0, "sigma": 1.0}, "rows": [r.to_dict() for r in rows]}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    _render(rows, gains.published())


def _elementwise_specs(texts: list[str]) -> list[str]:
    """The canonical form of each spec; a MomentcalcError unless each is a single elementwise op."""
    for text in texts:
        parsed = parse(text)
        if len(parsed.ops) != 1 or parsed.last.kind != "elementwise":
            raise MomentcalcError(
                f"gains takes single elementwise ops such as 'tanh' or 'leaky_relu(slope=0.2)', not {text!r}"
            )
    return [str(parse(t)) for t in texts]


def _render(rows, published) -> None:
    """The gains table, then the sources of the published values."""
    table = Table(
        title="activation gains at X ~ N(0, 1) (published value, relative difference (published - exact) / exact)",
        title_justify="left",
    )
    for name, justify in (
        ("spec", "left"),
        ("method", "left"),
        ("mean", "right"),
        ("std", "right"),
        ("gain 1/√E[f²]", "right"),
        ("PyTorch gain", "right"),
        ("gamma 1/std", "right"),
        ("NF-Nets gamma", "right"),
        ("E[f'²]", "right"),
    ):
        table.add_column(escape(name), justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(
            escape(r.spec),
            r.method,
            f"{r.mean:.10f}",
            f"{r.std:.10f}",
            f"{r.gain:.10f}",
            _rel(r.pytorch),
            f"{r.gamma:.10f}",
            _rel(r.nfnets),
            "" if r.grad_sq is None else f"{r.grad_sq:.10f}",
        )
    console = _console(min_width=GAINS_WIDTH)
    console.print(table)
    sources = "; ".join(
        f"{key}: {s['repository']} {s['file']} @ {s['commit'][:12]}" for key, s in published["sources"].items()
    )
    console.print("NormProp affine: y = (f(x) - mean) / std.  Sources: " + sources, highlight=False)


def _rel(published) -> str:
    return "" if published is None else f"{published.value:.6g} ({published.rel_diff:+.2e})"

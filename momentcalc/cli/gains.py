"""`momentcalc gains`: activation gains at N(0, 1) beside the published PyTorch and NF-Nets values."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..spec import parse
from ._fit import Column, fitted
from ._util import _console, _echo_csv, _examples, _one_format, app

gains = lazy_module(
    "momentcalc.gains"
)  # numba and scipy: load when the command runs, so `momentcalc --help` stays fast

GAINS_WIDTH = 160  # piped output: wide enough for all nine columns


@app.command(
    "gains",
    epilog=_examples("gains", "gains --spec tanh --spec 'leaky_relu(slope=0.2)' --json", "gains --csv > gains.csv"),
)
def gains_command(
    spec: Annotated[
        list[str] | None,
        typer.Option("--spec", help="An elementwise spec (repeatable); default: every built-in activation."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print the rows as CSV, every number in full (its double's repr).")
    ] = False,
) -> None:
    """Gain 1/sqrt(E[f^2]), gamma 1/std, NormProp affine and E[f'^2] at N(0, 1), \
beside PyTorch's and NF-Nets' published values."""
    _one_format(as_json, as_csv)
    rows = gains.gains(_elementwise_specs(spec) if spec else None)
    if as_json:
        doc = {"input": {"mu": 0.0, "sigma": 1.0}, "rows": [r.to_dict() for r in rows]}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif as_csv:
        _echo_csv(CSV_COLUMNS, ([_csv_cell(r, key) for key in CSV_COLUMNS] for r in rows))
    else:
        _render(rows, gains.published())


# The published values and their relative differences flattened: pytorch_value, pytorch_rel_diff, ...
CSV_COLUMNS = ["spec", "method", "mean", "std", "second_moment", "gain", "gamma", "normprop_shift", "normprop_scale"]
CSV_COLUMNS += ["grad_sq"] + [f"{who}_{what}" for who in ("pytorch", "nfnets") for what in ("value", "rel_diff")]


def _csv_cell(row, key: str):
    who, _, what = key.partition("_")
    if who in ("pytorch", "nfnets"):
        published = getattr(row, who)
        return None if published is None else getattr(published, what)
    return getattr(row, key)


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
    title = "activation gains at X ~ N(0, 1) (published value, relative difference (published - exact) / exact)"
    columns = [Column("spec", numeric=False, justify="left"), Column("method", numeric=False, justify="left")]
    columns += [Column("mean"), Column("std"), Column("gain 1/√E[f²]"), Column("PyTorch gain", numeric=False)]
    columns += [Column("gamma 1/std"), Column("NF-Nets gamma", numeric=False), Column("E[f'²]")]
    cells = [
        [
            escape(r.spec),
            r.method,
            f"{r.mean:.10f}",
            f"{r.std:.10f}",
            f"{r.gain:.10f}",
            _rel(r.pytorch),
            f"{r.gamma:.10f}",
            _rel(r.nfnets),
            "" if r.grad_sq is None else f"{r.grad_sq:.10f}",
        ]
        for r in rows
    ]
    console = _console(min_width=GAINS_WIDTH)
    console.print(fitted(console, title, columns, cells, table_box=box.HEAVY_HEAD))
    sources = "; ".join(
        f"{key}: {s['repository']} {s['file']} @ {s['commit'][:12]}" for key, s in published["sources"].items()
    )
    console.print("NormProp affine: y = (f(x) - mean) / std.  Sources: " + sources, highlight=False)


def _rel(published) -> str:
    return "" if published is None else f"{published.value:.6g} ({published.rel_diff:+.2e})"

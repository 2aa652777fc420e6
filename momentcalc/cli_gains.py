"""`momentcalc gains`: activation gains at N(0, 1) beside the published PyTorch and NF-Nets values.

``register(app)`` adds the command to a typer app. The numbers come from
``momentcalc.gains`` (imported inside the command: numba loads only when
the command runs); this module only renders them.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

EXIT_BAD_INPUT = 2


def _fail(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[bold red]error:[/] {escape(' '.join(message.split()))}")
    raise typer.Exit(EXIT_BAD_INPUT)


def _rel(published) -> str:
    return "" if published is None else f"{published.value:.6g} ({published.rel_diff:+.2e})"


def register(app: typer.Typer) -> None:
    @app.command("gains", epilog="Examples:\n\n  momentcalc gains\n\n  momentcalc gains --spec tanh --spec 'leaky_relu(slope=0.2)' --json")
    def gains_command(
        spec: Annotated[Optional[list[str]], typer.Option("--spec", help="An elementwise spec (repeatable); default: every built-in activation.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    ) -> None:
        """Gain 1/sqrt(E[f^2]), gamma 1/std, NormProp affine and E[f'^2] at N(0, 1), beside PyTorch's and NF-Nets' published values."""
        from . import gains
        from .errors import MomentcalcError
        from .spec import parse

        try:
            for text in spec or ():
                parsed = parse(text)
                if len(parsed.ops) != 1 or parsed.last.kind != "elementwise":
                    raise MomentcalcError(f"gains takes single elementwise ops such as 'tanh' or 'leaky_relu(slope=0.2)', not {text!r}")
            rows = gains.gains([str(parse(t)) for t in spec] if spec else None)
        except MomentcalcError as error:
            _fail(str(error))
        if as_json:
            typer.echo(json.dumps({"input": {"mu": 0.0, "sigma": 1.0}, "rows": [r.to_dict() for r in rows]}, indent=2, sort_keys=True))
            return
        _render(rows, gains.published())


def _render(rows, published) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="activation gains at X ~ N(0, 1) (published value, relative difference (published - exact) / exact)", title_justify="left")
    for name, justify in (("spec", "left"), ("method", "left"), ("mean", "right"), ("std", "right"), ("gain 1/√E[f²]", "right"),
                          ("PyTorch gain", "right"), ("gamma 1/std", "right"), ("NF-Nets gamma", "right"), ("E[f'²]", "right")):
        table.add_column(escape(name), justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(
            escape(r.spec), r.method, f"{r.mean:.10f}", f"{r.std:.10f}", f"{r.gain:.10f}", _rel(r.pytorch),
            f"{r.gamma:.10f}", _rel(r.nfnets), "" if r.grad_sq is None else f"{r.grad_sq:.10f}",
        )
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped: wide enough that no digit is cut
        console = Console(soft_wrap=True, width=max(console.width, 160))
    console.print(table)
    sources = published["sources"]
    console.print(
        "NormProp affine: y = (f(x) - mean) / std.  Sources: "
        + "; ".join(f"{key}: {s['repository']} {s['file']} @ {s['commit'][:12]}" for key, s in sources.items()),
        highlight=False,
    )

"""The `momentcalc` command: parse options, call the library, render with rich.

Thin on purpose: every number comes from momentcalc.engine / tables; this
module only turns data into tables, progress bars and exit codes.
momentcalc.engine imports numba, so it is imported inside the commands
that need it, never at module level: `momentcalc --help` stays instant.

Exit codes: 0 success (estimates agree, tables match), 1 a finding
(estimates disagree, tables differ), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__, catalog, tables
from .errors import MomentcalcError

try:  # recent typer ships its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer depends on click
    from click import exceptions as _click_errors

ClickException = _click_errors.ClickException
# `momentcalc` alone shows the help; click >= 8.2 signals that with this "error".
NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", ())

EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2
SHOW_BAR_AFTER_S = 1.0
BIG_RUN_SAMPLES = 1 << 27  # a run this large gets its bar at once


class _OneLineErrors(typer.core.TyperGroup):
    """Turn every error a user can cause into one line on stderr and exit code 2.

    Typer would print usage errors as a multi-line panel and let library
    errors escape as tracebacks; both go through here instead, for the
    console script and for CliRunner alike.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name or "momentcalc", complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelp as shown:
            # With rich help, typer has printed it already while building the exception.
            if shown.format_message().strip():
                typer.echo(shown.format_message())
            code = 0
        except ClickException as error:
            hint = f" (see '{error.ctx.command_path} --help')" if getattr(error, "ctx", None) else ""
            code = _fail(error.format_message() + hint)
        except MomentcalcError as error:
            code = _fail(str(error))
        except (typer.Abort, KeyboardInterrupt):
            code = _fail("interrupted", 130)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    one_line = " ".join(message.split())
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[bold red]error:[/] {escape(one_line)}")
    return code


app = typer.Typer(
    cls=_OneLineErrors,
    help="Exact, cross-checked normalization constants: the mean and std of a layer's output for X ~ N(mu, sigma^2).",
    epilog="Examples:  momentcalc estimate 'maxpool(k=3)'  ·  momentcalc list  ·  momentcalc tables build",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
tables_app = typer.Typer(
    help="Build, check and show the generated tables of constants (tables/normprop.json).",
    epilog="Examples:  momentcalc tables build  ·  momentcalc tables check --dir tables  ·  momentcalc tables show",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(tables_app, name="tables")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"momentcalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Exact, cross-checked normalization constants for normalized networks (NormProp)."""


# ---------------------------------------------------------------- estimate


class Method(str, Enum):
    auto = "auto"
    closed = "closed"
    quadrature = "quadrature"
    montecarlo = "montecarlo"
    qmc = "qmc"
    all = "all"


@app.command(
    epilog="Examples:\n\n"
    "  momentcalc estimate relu\n\n"
    "  momentcalc estimate 'maxpool(k=3)' --method all --json\n\n"
    "  momentcalc estimate 'relu | normalize | maxpool(k=3)' --samples 16777216\n\n"
    "  momentcalc estimate 'dropout(p=0.8)' --mu -1 --sigma 2 --tol 1e-4"
)
def estimate(
    spec: Annotated[str, typer.Argument(help="What to measure, e.g. relu, 'maxpool(k=3)', 'relu | normalize | maxpool(k=3)'.")],
    mu: Annotated[float, typer.Option(help="Mean of the Gaussian input.")] = 0.0,
    sigma: Annotated[float, typer.Option(help="Standard deviation of the Gaussian input (> 0).")] = 1.0,
    method: Annotated[Method, typer.Option(help="auto: every applicable exact method plus Monte Carlo, cross-checked; all: also quasi-Monte Carlo; or just one.")] = Method.auto,
    samples: Annotated[Optional[int], typer.Option(help="Monte Carlo samples (default 2**22).")] = None,
    tol: Annotated[Optional[float], typer.Option(help="Monte Carlo: sample until both standard errors are below this.")] = None,
    seed: Annotated[int, typer.Option(help="Monte Carlo seed; the same seed gives the same bits on any thread count.")] = 0,
    z: Annotated[float, typer.Option(help="Agreement bound for Monte Carlo: |difference| <= z * combined SE.")] = 4.5,
    size: Annotated[Optional[int], typer.Option(help="Input feature-map side I: report the mean and std at every output position, border windows included.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Mean and std of SPEC's output for X ~ N(mu, sigma^2), by every method that applies.

    Exit code 0 when the methods agree, 1 when they disagree, 2 on bad input.
    """
    from . import engine  # numba: only when something is computed

    with _LazyBar("Monte Carlo") as bar:
        result = engine.estimate(spec, mu=mu, sigma=sigma, method=method.value, samples=samples, tol=tol, seed=seed, z=z, progress=bar, size=size)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif size is not None:
        from .cli_spatial import render_map

        render_map(result, _console())
    else:
        _render_result(result)
    if not result.agree:
        raise typer.Exit(EXIT_DISAGREE)


def _render_result(result) -> None:
    console = _console()
    grid = Table(title=f"{escape(result.spec)}   for X ~ N({result.mu:g}, {result.sigma:g}²)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # Seven narrow columns: the table fits an 80-column terminal without truncating a digit.
    for name in ("method", "mean", "±", "std", "±", "samples", "time"):
        grid.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
    for e in result.estimates:
        grid.add_row(
            e.method + ("*" if e is result.record else ""), _num(e.mean), _se(e.mean_se), _num(e.std), _se(e.std_se),
            "" if e.samples is None else str(e.samples), f"{e.seconds:.2f}s",
        )
    console.print(grid)
    seeds = sorted({e.seed for e in result.estimates if e.seed is not None})
    console.print("* method of record" + (f"; Monte Carlo seed {', '.join(map(str, seeds))}" if seeds else ""))
    for e in result.estimates:
        if e.notes:
            console.print(f"{e.method}: {escape('; '.join(e.notes))}")
    if len(result.estimates) < 2:
        console.print("[yellow]one method only: nothing to cross-check[/]")
    elif result.agree:
        console.print(f"[green]agree[/]: all {len(result.checks)} comparisons within their bounds")
    else:
        console.print(f"[bold red]DISAGREE[/]: {escape(', '.join(result.disagreements))}")
        for c in result.checks:
            if not c.ok:
                console.print(f"  {escape(c.pair)}: |difference| {abs(c.diff):.3g} > bound {c.tolerance:.3g}")


def _console() -> Console:
    """stdout console; when piped (CI logs, files) wide enough that numbers never get truncated."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=max(console.width, 150))
    return console


def _num(x) -> str:
    return "—" if x is None else f"{x:.10g}"


def _se(x) -> str:
    return "—" if x is None else ("0" if x == 0 else f"{x:.2g}")


class _LazyBar:
    """A progress callback whose rich bar appears only once a run has lasted ~1 s, or is big.

    Short runs print nothing extra; the bar goes to stderr so --json output stays clean.
    """

    def __init__(self, description: str):
        self.description = description
        self.progress: Progress | None = None
        self.task = None
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if time.perf_counter() - self.start < SHOW_BAR_AFTER_S and total < BIG_RUN_SAMPLES:
                return
            self.progress = _progress(transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(transient: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=transient,
    )


# ---------------------------------------------------------------- list


# Which estimators apply, by kind of op (closed forms exist only for single ops).
_METHODS_BY_KIND = {
    catalog.ELEMENTWISE: "closed¹, quadrature, montecarlo",
    catalog.WINDOW: "closed¹, quadrature, montecarlo",
    catalog.DROPOUT: "closed, quadrature, montecarlo",
    catalog.NORMALIZE: "those of what precedes it",
}


@app.command("list", epilog="Example:\n\n  momentcalc list")
def list_ops() -> None:
    """Every op a spec may name, with its parameters, defaults and applicable methods."""
    grid = Table(title="ops (join them with | into a pipeline, e.g. 'relu | normalize | maxpool(k=3)')", title_justify="left")
    for name in ("op", "parameters", "description", "methods"):
        grid.add_column(name)
    for op in catalog.all_ops():
        grid.add_row(op.name, escape(_params(op)), escape(op.description), _METHODS_BY_KIND.get(op.kind, "quadrature, montecarlo"))
    console = _console()
    console.print(grid)
    console.print(
        "¹ where a closed form is known for the single op (e.g. relu, avgpool, maxpool with n <= 4); "
        "`momentcalc estimate SPEC --method all` shows which methods apply to a given spec."
    )


def _params(op: catalog.OpInfo) -> str:
    if op.kind == catalog.WINDOW:
        extra = ", count_include_pad=true" if op.param("count_include_pad") else ""
        return f"k (window side) or n (window size); dims=2; with k: s=k (stride), p=0 (padding){extra}"
    parts = []
    for p in op.params:
        text = f"{p.name}=<{p.accepted or p.kind.__name__}> (required)" if p.default is None else f"{p.name}={p.default}"
        parts.append(text + (f" [{'|'.join(p.choices)}]" if p.choices else ""))
    return ", ".join(parts) or "—"


# ---------------------------------------------------------------- tables

DirOption = Annotated[Path, typer.Option("--dir", help="Directory of the table files.", show_default=True)]


@tables_app.command("build", epilog="Examples:\n\n  momentcalc tables build\n\n  momentcalc tables build --dir /tmp/tables")
def tables_build(directory: DirOption = tables.DEFAULT_DIR) -> None:
    """Compute every default entry and write normprop.json and schema.json (atomically).

    A file whose content already matches (ignoring timing, within the recorded uncertainties) is left untouched, so a rebuild makes no diff.
    """
    start = time.perf_counter()
    tables.ensure_writable(directory)  # fail before a minute of work, not after
    with _entry_bar() as step:
        doc = tables.build(step)
    outcome = tables.write(doc, directory)
    console = Console()
    for path in outcome.written:
        console.print(f"wrote {escape(str(path))}")
    for path in outcome.unchanged:
        console.print(f"unchanged {escape(str(path))} (matches the regenerated content)")
    bad = [e["spec"] for e in doc["entries"] if not e["agree"]]
    console.print(f"{len(doc['entries'])} entries in {time.perf_counter() - start:.1f} s")
    if bad:
        console.print(f"[bold red]DISAGREE[/]: the estimates of {escape(', '.join(bad))} disagree; see `momentcalc estimate SPEC`")
        raise typer.Exit(EXIT_DISAGREE)


@contextmanager
def _entry_bar():
    """A progress bar over table entries, started at the first entry (so an early error prints no bar)."""
    bar = _progress(transient=False)
    task = None

    def step(done: int, total: int, spec: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("building", total=total)
        bar.update(task, completed=done, total=total, description=escape(spec or "done"))

    try:
        yield step
    finally:
        bar.stop()


@tables_app.command("check", epilog="Examples:\n\n  momentcalc tables check\n\n  momentcalc tables check --dir path/to/tables")
def tables_check(directory: DirOption = tables.DEFAULT_DIR) -> None:
    """Regenerate in memory and compare with the files; exit 1 with the differences if they differ.

    Numbers may differ by at most max(1e-12 * max(1, |x|), 1e-3 * their recorded SE); timing (seconds) is ignored.
    """
    if not directory.is_dir():
        raise MomentcalcError(f"no table directory {str(directory)!r}; build one with `{tables.regenerate_command(directory)}`")
    with _entry_bar() as step:
        outcome = tables.check(directory, progress=step)
    console = Console(soft_wrap=True)
    if outcome.ok:
        console.print(f"[green]ok[/]: the tables in {escape(str(directory))}/ match what this momentcalc generates")
        return
    console.print(f"[bold red]{escape(str(directory))} differs from the regenerated tables[/] ({len(outcome.differences)} differences):")
    for line in outcome.differences:
        console.print(f"  {escape(line)}")
    console.print(f"regenerate with: {escape(outcome.command)}")
    raise typer.Exit(EXIT_DISAGREE)


@tables_app.command("show", epilog="Examples:\n\n  momentcalc tables show\n\n  momentcalc tables show --file other_table.json")
def tables_show(
    directory: DirOption = tables.DEFAULT_DIR,
    file: Annotated[Optional[Path], typer.Option(help="A table file to show instead of DIR/normprop.json.")] = None,
) -> None:
    """Render a table file: spec, mean ± se, std ± se, method of record, agreement."""
    path = file if file is not None else directory / tables.TABLE_NAME
    doc = tables.load(path)
    inputs = {(e["input"]["mu"], e["input"]["sigma"]) for e in doc["entries"]}
    common = f", input N({next(iter(inputs))[0]:g}, {next(iter(inputs))[1]:g}²)" if len(inputs) == 1 else ""
    grid = Table(
        title=f"{escape(str(path))}: momentcalc {doc['generator']['version']}, format {doc['format_version']}, {len(doc['entries'])} entries{common}",
        title_justify="left", box=box.SIMPLE_HEAD,
    )
    grid.add_column("spec", no_wrap=True)
    if not common:
        grid.add_column("input", no_wrap=True)
    for name in ("mean", "± se", "std", "± se"):
        grid.add_column(name, justify="right", no_wrap=True)
    grid.add_column("method")
    grid.add_column("agree")
    for e in doc["entries"]:
        cells = [escape(e["spec"])] + ([] if common else [f"N({e['input']['mu']:g}, {e['input']['sigma']:g}²)"])
        cells += [_fixed(e["mean"]), _se(e["mean_se"]), _fixed(e["std"]), _se(e["std_se"]), e["method"], "[green]yes[/]" if e["agree"] else "[bold red]NO[/]"]
        grid.add_row(*cells)
    _console().print(grid)


def _fixed(value) -> str:
    return "—" if value is None else f"{value:.10f}"


# ---------------------------------------------------------------- commands kept in their own modules

from .cli_gains import register as _register_gains  # noqa: E402
from .cli_geometry import register as _register_geometry  # noqa: E402

_register_geometry(app)
_register_gains(app)


def main() -> None:
    """Console-script entry point (`momentcalc`, `python -m momentcalc`)."""
    app(prog_name="momentcalc")

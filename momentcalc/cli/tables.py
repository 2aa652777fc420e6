"""`momentcalc tables build|check|show`: the generated tables of constants (tables/normprop.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import processes, tablefile
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ._extras import DASK, require
from ._fit import Column, fitted
from ._util import (
    EXIT_DISAGREE,
    TimeoutOption,
    _console,
    _echo_csv,
    _entry_bar,
    _examples,
    _one_format,
    _se,
    _value,
    tables_app,
)

table_files = lazy_module("momentcalc.tables")  # the builder and checker: only where a table is built, checked or read

DirOption = Annotated[Path, typer.Option("--dir", help="Directory of the table files.", show_default=True)]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        min=1,
        help="Processes that estimate entries side by side (default: one per CPU); the same numbers for any.",
        show_default=False,
    ),
]
ReadDirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Directory of the table files (default: tables, or the table packaged with momentcalc where ./tables "
        "does not exist).",
        show_default=False,
    ),
]


@tables_app.command("build", epilog=_examples("tables build", "tables build --dir /tmp/tables"))
def tables_build(
    directory: DirOption = tablefile.DEFAULT_DIR,
    scheduler: Annotated[
        str | None,
        typer.Option(
            envvar="MOMENTCALC_SCHEDULER",
            help="Run Monte Carlo on a Dask cluster, with the same bits: tcp://host:8786, or local:N. "
            "Needs momentcalc[dask].",
        ),
    ] = None,
    jobs: JobsOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Compute every default entry and write normprop.json and schema.json (atomically).

    A file that is already exactly what this build writes (timing aside, numbers within a few ulps) is left \
untouched, so a rebuild makes no diff.
    """
    start = time.perf_counter()
    if scheduler:
        require(DASK, "--scheduler")
    table_files.ensure_writable(directory)  # fail before a minute of work, not after
    with _entry_bar() as step:
        doc = table_files.build(step, scheduler=scheduler, jobs=jobs or processes.cpus(), timeout=timeout)
    outcome = table_files.write(doc, directory)
    console = _console()
    for path in outcome.removed:
        console.print(f"removed {escape(str(path))} (left by a build that was killed)")
    for path in outcome.written:
        console.print(f"wrote {escape(str(path))}")
    for path in outcome.unchanged:
        console.print(f"unchanged {escape(str(path))} (matches the regenerated content)")
    bad = [e["spec"] for e in doc["entries"] if not e["agree"]]
    console.print(f"{len(doc['entries'])} entries in {time.perf_counter() - start:.1f} s")
    if bad:
        console.print(
            f"[bold red]DISAGREE[/]: the estimates of {escape(', '.join(bad))} disagree; see `momentcalc estimate SPEC`"
        )
        raise typer.Exit(EXIT_DISAGREE)


@tables_app.command("check", epilog=_examples("tables check", "tables check --dir path/to/tables"))
def tables_check(directory: ReadDirOption = None, jobs: JobsOption = None) -> None:
    """Regenerate in memory and compare with the files; exit 1 with the differences if they differ.

    The file must be byte for byte what `build` writes (its sha256 in the header, canonical spelling), and each \
regenerated number must match: certified ones bit for bit, the others within 32 ulps of their scale (what another \
CPU may change in a Monte Carlo sum); only timing (seconds) is ignored.
    """
    directory = _read_directory(directory)
    if not directory.is_dir():
        command = table_files.regenerate_command(directory)
        raise MomentcalcError(f"no table directory {str(directory)!r}; build one with `{command}`")
    with _entry_bar() as step:
        outcome = table_files.check(directory, progress=step, jobs=jobs or processes.cpus())
    console = _console()
    if outcome.ok:
        console.print(f"[green]ok[/]: the tables in {escape(str(directory))}/ match what this momentcalc generates")
        return
    console.print(
        f"[bold red]{escape(str(directory))} differs from the regenerated tables[/] "
        f"({len(outcome.differences)} differences):"
    )
    for line in outcome.differences:
        console.print(f"  {escape(line)}")
    console.print(f"regenerate with: {escape(outcome.command)}")
    raise typer.Exit(EXIT_DISAGREE)


@tables_app.command(
    "show", epilog=_examples("tables show", "tables show --file other_table.json", "tables show --csv > constants.csv")
)
def tables_show(
    directory: ReadDirOption = None,
    file: Annotated[Path | None, typer.Option(help="A table file to show instead of DIR/normprop.json.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table file's content as JSON.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print one CSV row per entry, every number in full (its double's repr).")
    ] = False,
) -> None:
    """Render a table file: spec, mean ± se, std ± se, method of record, agreement."""
    _one_format(as_json, as_csv)
    path = file if file is not None else _read_directory(directory, quiet=as_json or as_csv) / tablefile.TABLE_NAME
    doc = table_files.load(path)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif as_csv:
        _echo_csv(CSV_COLUMNS, ([_csv_cell(e, key) for key in CSV_COLUMNS] for e in doc["entries"]))
    else:
        console = _console()
        console.print(_table_grid(path, doc, console))


CSV_COLUMNS = ["spec", "mu", "sigma", "mean", "mean_se", "std", "std_se", "grad_sq", "grad_sq_se", "method", "agree"]


def _csv_cell(entry: dict, key: str):
    return entry["input"][key] if key in ("mu", "sigma") else entry.get(key)


def _read_directory(directory: Path | None, quiet: bool = False) -> Path:
    """--dir, else ./tables, else the packaged table; says so when it is the packaged one (on stderr with
    quiet: --json and --csv print only their data on stdout)."""
    found, packaged = table_files.table_directory(directory)
    if packaged and quiet:
        Console(stderr=True).print(f"reading the table packaged with momentcalc, {escape(str(found))}/")
    elif packaged:
        _console().print(f"no ./tables here: reading the table packaged with momentcalc, {escape(str(found))}/")
    return found


def _table_grid(path: Path, doc: dict, console: Console):
    """One row per entry; the input column only when the entries do not share one input."""
    inputs = {(e["input"]["mu"], e["input"]["sigma"]) for e in doc["entries"]}
    common = f", input N({next(iter(inputs))[0]:g}, {next(iter(inputs))[1]:g}²)" if len(inputs) == 1 else ""
    title = (
        f"{escape(str(path))}: momentcalc {doc['generator']['version']}, format {doc['format_version']}, "
        f"{len(doc['entries'])} entries{common}"
    )
    columns = [Column("spec", numeric=False, justify="left")]
    columns += [] if common else [Column("input", numeric=False, justify="left")]
    columns += [Column("mean"), Column("± se", attach=True), Column("std"), Column("± se", attach=True)]
    columns += [Column("method", numeric=False, justify="left"), Column("agree", numeric=False, justify="left")]
    rows = []
    for e in doc["entries"]:
        cells = [escape(e["spec"])] + ([] if common else [f"N({e['input']['mu']:g}, {e['input']['sigma']:g}²)"])
        cells += [
            _value(e["mean"], e["mean_se"]),
            _se(e["mean_se"]),
            _value(e["std"], e["std_se"]),
            _se(e["std_se"]),
            e["method"],
            "[green]yes[/]" if e["agree"] else "[bold red]NO[/]",
        ]
        rows.append(cells)
    return fitted(console, title, columns, rows)

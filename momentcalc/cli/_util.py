"""What every `momentcalc` command shares: the typer app, the one error path, the console, formatters, progress bars.

Exit codes: 0 success (estimates agree, tables match), 1 a finding (estimates disagree, tables differ),
2 bad input (one line on stderr), 74 output that could not be written whole (a full disk, a file size limit, a
closed stdout; one line on stderr), 130 interrupted. A reader that leaves early (`momentcalc list | head -2`) is
no error: exit 0, nothing said.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__, processes
from .._lazy import lazy_module
from ..errors import MomentcalcError, WriteError
from ._interrupts import EXIT_INTERRUPTED, interrupted, noting_interrupts
from ._output import OutputLost, checked_stdout, silence_stdout

if TYPE_CHECKING:
    from rich.progress import Progress

# rich.progress (~6 ms of a 0.15 s `momentcalc list`): only where a bar is drawn
rich_progress = lazy_module("rich.progress")

try:  # recent typer ships its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer depends on click
    from click import exceptions as _click_errors

ClickException = _click_errors.ClickException
# `momentcalc` alone shows the help; click >= 8.2 signals that with this "error".
NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", ())

EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE = 74  # EX_IOERR of sysexits.h: not 1, which says the estimates disagree
SHOW_BAR_AFTER_S = 1.0
BIG_RUN_SAMPLES = 1 << 27  # a run this large gets its bar at once
# Help is plain text: rich markup would eat every bracket of the help texts (E[f'(X)^2], momentcalc[dask],
# [default: 1]), and typer's rich panels print flags as `--json <bool>`.
HELP_MARKUP = None
PIPED_WIDTH = 150  # console width when piped: wide enough that numbers never get truncated
# --timeout of the commands that can run on a Dask cluster (estimate, tables build).
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        help="With --scheduler: give up after this many seconds without an answer from the scheduler, a "
        "worker or a task (default 10 s to connect, 30 s for a first worker, 120 s for the next task).",
        show_default=False,
    ),
]


class _OneLineErrors(typer.core.TyperGroup):
    """Turn every error a user can cause into one line on stderr and exit code 2.

    Typer would print usage errors as a multi-line panel and let library errors escape as tracebacks;
    both go through here instead, for the console script and for CliRunner alike.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        with checked_stdout(), noting_interrupts():
            code = self._run(args, prog_name, complete_var, **extra)
            try:  # what is still buffered: a write that fails here fails the command as one inside it does
                sys.stdout.flush()
            except OutputLost as lost:
                code = _output_lost(lost.error)
            except KeyboardInterrupt:
                code = _fail("interrupted", EXIT_INTERRUPTED)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args, prog_name, complete_var, **extra) -> int:
        try:
            code = super().main(args, prog_name or "momentcalc", complete_var, standalone_mode=False, **extra)
        except OutputLost as lost:
            code = _output_lost(lost.error)
        except NoArgsIsHelp as shown:
            # With rich help, typer has printed it already while building the exception.
            if shown.format_message().strip():
                typer.echo(shown.format_message())
            code = 0
        except ClickException as error:
            hint = f" (see '{error.ctx.command_path} --help')" if getattr(error, "ctx", None) else ""
            code = _fail(error.format_message() + hint)
        except WriteError as error:
            code = _fail(str(error), EXIT_WRITE)
        except MomentcalcError as error:
            code = _fail(str(error))
        except (typer.Abort, KeyboardInterrupt):
            code = EXIT_INTERRUPTED
        except Exception:
            if not interrupted():
                raise  # a bug: its traceback
            code = EXIT_INTERRUPTED  # what a Ctrl-C broke on its way (_interrupts says how)
        if interrupted():  # a Ctrl-C that something swallowed still ends the command
            code = EXIT_INTERRUPTED
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent Exit(130); we say so
            _fail("interrupted", EXIT_INTERRUPTED)
        return code if isinstance(code, int) else 0


def _output_lost(error: OSError) -> int:
    """The exit code, and the one line, of a command whose stdout failed with `error`."""
    silence_stdout()  # Python's own flush at exit would fail again, with a message of its own
    if error.errno == errno.EPIPE:  # the reader left early (`| head`): what it read is all it wanted
        return 0
    reason = error.strerror or str(error)
    return _fail(f"could not write the output to stdout ({reason}): what was written is incomplete", EXIT_WRITE)


@contextmanager
def exit_at_once(report=lambda code: None):
    """In the console script only: once a command has finished and flushed its output, leave at once (os._exit).

    A normal exit tears down every module numba, llvmlite and scipy loaded, 0.3-0.5 s on every command here
    (`python -c 'import numba, scipy.integrate'` takes that much longer to exit than to import), and after
    Ctrl-C (exit 130, message printed) it joins the Monte Carlo thread pool, which first finishes every batch
    already queued (seconds of kernel work that nobody will read). Nothing is lost by skipping both: every
    command closes what it opened (Dask clients, progress bars, temporary files) on its way out, and table
    files are replaced whole (tables.writer._atomic_write), before SystemExit reaches this point.

    report(code) is called just before leaving (a served command tells its client, serve.py).
    """
    try:
        yield
    except SystemExit as done:
        if not isinstance(done.code, (int, type(None))):
            raise  # a message to print: Python's own exit prints it
        if processes.started():
            # A table build's worker processes are stopped, but their queues' named semaphores are released by
            # multiprocessing's own exit handlers: skipping them, its resource tracker would report them leaked.
            # The worker processes ran the Monte Carlo, so this process has no thread pool to join.
            report(done.code or 0)
            raise
        for stream in (sys.stdout, sys.stderr):  # None where closed when Python started
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # a failed stdout was reported (_output_lost); stderr has no one to tell
                pass
        report(done.code or 0)
        os._exit(done.code or 0)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """The one error path of the CLI: print `error: MESSAGE` as one red line on stderr, return the exit code."""
    one_line = " ".join(message.split())
    try:
        Console(stderr=True, soft_wrap=True, highlight=False).print(f"[bold red]error:[/] {escape(one_line)}")
    except OSError:  # stderr cannot be written either (closed, a full disk): the exit code must say it alone
        pass
    return code


app = typer.Typer(
    cls=_OneLineErrors,
    help="Exact, cross-checked normalization constants: the mean and std of a layer's output for X ~ N(mu, sigma^2).",
    epilog="Examples:  momentcalc estimate 'maxpool(k=3)'  ·  momentcalc list  ·  momentcalc tables build",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
    pretty_exceptions_show_locals=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
tables_app = typer.Typer(
    help="Build, check and show the generated tables of constants (tables/normprop.json).",
    epilog="Examples:  momentcalc tables build  ·  momentcalc tables check --dir tables  ·  momentcalc tables show",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(tables_app, name="tables")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"momentcalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Exact, cross-checked normalization constants for normalized networks (NormProp)."""
    _check_numba_threads()


def _check_numba_threads() -> None:
    """numba reads NUMBA_NUM_THREADS when a command first imports it, and raises a bare ValueError (a traceback)
    where it is below 1: say so here, before any command runs, as bad input."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    try:
        threads = int(value)
    except ValueError:  # unset, or not a number: numba warns and uses every CPU
        return
    if threads < 1:
        raise MomentcalcError(
            f"NUMBA_NUM_THREADS={value} is below 1: set it to a whole number of threads from 1 to "
            f"{processes.cpus()} (this machine's CPUs), or unset it to use them all"
        )


def _console(min_width: int = PIPED_WIDTH, highlight: bool = True) -> Console:
    """stdout console: a terminal's width, or COLUMNS where set; piped without COLUMNS (CI logs, files) at least
    min_width wide, one table row per line. Tables fit the width without cutting a digit (_fit.fitted)."""
    console = Console(soft_wrap=True, highlight=highlight)
    if console.is_terminal:
        # rich wraps long lines at spaces, so that no number is split across the terminal's edge
        return Console(highlight=highlight)
    if not os.environ.get("COLUMNS", "").strip().isdigit():
        console = Console(soft_wrap=True, highlight=highlight, width=max(console.width, min_width))
    return console


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise MomentcalcError("--json and --csv both given: choose one")


def _echo_csv(header: list[str], rows) -> None:
    """rows as CSV on stdout, numbers in full (repr: the digits that read back as the same double)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if x is None else repr(x) if isinstance(x, float) else x for x in row])
    typer.echo(out.getvalue(), nl=False)


def _examples(*commands: str) -> str:
    """A command's help epilog: one `momentcalc COMMAND` example per paragraph."""
    return "Examples:\n\n" + "\n\n".join(f"  momentcalc {c}" for c in commands)


def _value(x, se, known: bool = True) -> str:
    """A value printed with the digits its uncertainty se supports, plus one guard digit.

    The last digit printed is at the place of se's leading digit: 0.398812 with se 3e-4 prints
    0.3988, a quadrature value with a bound of 1e-14 prints 15 significant digits. A value with se 0
    (a closed form) prints in full (repr: the digits that give back the same double). A value
    smaller than se prints rounded to se's place (often 0). known=False (a Monte Carlo quantity
    with no usable standard error, result.informative) prints 3 significant digits.
    JSON output keeps every value in full: this is only for people.
    """
    if x is None:
        return "—"
    if not known:
        return f"{x:.3g}"
    if not se or not math.isfinite(se) or not math.isfinite(x):
        return repr(float(x))
    place = math.floor(math.log10(abs(se)))  # 10**place: where se's leading digit is
    if x == 0 or abs(x) < 10.0**place:
        rounded = round(x, -place)
        return "0" if rounded == 0 else f"{rounded:.1g}"
    digits = math.floor(math.log10(abs(x))) - place + 1
    text = f"{x:#.{min(digits, 17)}g}"
    return text[:-1] if text.endswith(".") else text


def _se(x, known: bool = True) -> str:
    """An uncertainty with 2 significant digits; 'n/a' for one that is not usable."""
    if not known:
        return "n/a"
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
        self.status = None

    def compiling(self, started: bool) -> None:
        """A note on stderr while numba compiles kernels (a first run in a new environment takes seconds)."""
        console = Console(stderr=True)
        if started and self.status is None and self.progress is None and console.is_terminal:
            self.status = console.status("compiling Monte Carlo kernels, first run only")
            self.status.start()
        elif not started and self.status is not None:
            self.status.stop()
            self.status = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if time.perf_counter() - self.start < SHOW_BAR_AFTER_S and total < BIG_RUN_SAMPLES:
                return
            if not _stderr_is_terminal():  # piped: a bar cannot redraw, and would leave a blank line behind
                return
            self.progress = _progress(transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.compiling(False)
        if self.progress is not None:
            self.progress.stop()


def _stderr_is_terminal() -> bool:
    return Console(stderr=True).is_terminal


def _progress(transient: bool) -> Progress:
    """A rich progress bar on stderr, so that stdout stays clean."""
    bar = rich_progress
    return bar.Progress(
        bar.TextColumn("{task.description}"),
        bar.BarColumn(),
        bar.MofNCompleteColumn(),
        bar.TimeElapsedColumn(),
        bar.TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


@contextmanager
def _entry_bar():
    """A progress bar over table entries, started at the first entry (so an early error prints no bar). Piped
    stderr gets none: a bar cannot redraw there, and its last frame (with its elapsed time) would end up in logs."""
    bar = _progress(transient=False)
    task = None
    drawn = _stderr_is_terminal()

    def step(done: int, total: int, spec: str) -> None:
        nonlocal task
        if not drawn:
            return
        if task is None:
            bar.start()
            task = bar.add_task("building", total=total)
        bar.update(task, completed=done, total=total, description=escape(spec or "done"))

    try:
        yield step
    finally:
        if task is not None:  # an unstarted bar would still print a blank line on stopping
            bar.stop()

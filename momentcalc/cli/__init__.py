"""The `momentcalc` command, one module per command (spaCy's cli/ layout); `_util` holds the app they share.

Importing a command module registers its command. The modules import numba and scipy (momentcalc.engine, gains,
backward, convshape, spatial) inside the command functions only, so `momentcalc --help` stays instant.
"""

# isort: off
# `momentcalc --help` lists the commands in the order these imports register them.
from . import estimate, list_ops, tables, shape, backward, gains, solve, cmap, propagate, server  # noqa: F401 (imported to register)
from ._util import app

from ._util import exit_at_once

# isort: on

__all__ = ["app", "command_runner", "main"]


def main() -> None:
    """Console-script entry point (`momentcalc`, `python -m momentcalc`)."""
    with exit_at_once():
        app(prog_name="momentcalc")


class _Runner:
    """How the warm server (momentcalc/server/) runs commands: the click command typer builds, built once."""

    def __init__(self):
        import typer.main

        self.command = typer.main.get_command(app)

    def run(self, argv: list[str], report) -> None:
        """Run a command as the console script does; report(code) just before it leaves."""
        with exit_at_once(report):
            self.command(args=argv, prog_name="momentcalc")

    def warm(self, argv: list[str]) -> None:
        """Run a command for what it loads (its output is the caller's to discard); errors raise."""
        self.command(args=argv, prog_name="momentcalc", standalone_mode=False)


def command_runner() -> _Runner:
    return _Runner()

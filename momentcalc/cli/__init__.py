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

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (`momentcalc`, `python -m momentcalc`)."""
    with exit_at_once():
        app(prog_name="momentcalc")

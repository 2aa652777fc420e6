import importlib
import os
import sys
import time
from pathlib import Path

import pytest

# tests/naive.py holds slow references; make it importable as `naive`.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the long part of a test matrix (deselect with -m 'not slow')")


# Optional extras whose tests skip where they are missing, except in CI (env CI set: .ci/run sets it),
# where a missing one fails the run: CI installs them and must never skip their tests silently.
OPTIONAL_IN_CI = ("torch", "matplotlib", "distributed")


def pytest_sessionstart(session):
    if not os.environ.get("CI"):
        return
    for name in OPTIONAL_IN_CI:
        try:
            importlib.import_module(name)
        except ImportError as why:
            why = f"CI is set but {name} is not importable ({why})"
            pytest.exit(f"{why}; the README's test command installs torch==2.13.0", 3)


# Some machines set PYTHONDONTWRITEBYTECODE=1: then every worker and every CLI subprocess of the suite compiles the
# package's sources again (about 0.1 s of CPU each, several hundred processes; the pyc files go to the git-ignored
# __pycache__ folders, and the server's stamp skips them). Set here, before xdist starts its workers, so all inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# The console script hands commands to a warm server where one runs for this installation (momentcalc_launch.py):
# the tests' own subprocesses run in their own processes, whatever server a developer has running.
# tests/test_server.py turns it on for its own subprocesses.
os.environ["MOMENTCALC_SERVER"] = "0"

# pytest-xdist's worker processes run with COLUMNS=80 and LINES=24 set (the -n 0 process has neither): the CLI
# reads COLUMNS as the width of piped output, so the tests would see 80-column layouts under xdist alone.
# Tests of the width set it themselves (tests/test_cli_width.py).
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


# The suite's time budget (issue 33): the README's test command in at most 3 minutes on an idle 2-core machine,
# numba compiling included. A session past it says so at the end, with the load (a warning, never a failure: a
# loaded machine is slower); a test that must run long belongs in tests_long/, which .ci/run runs after this suite.
SESSION_BUDGET_S = 180.0
_SESSION_START = time.monotonic()  # conftest is imported as the session starts, before collection


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller reports
    spent = time.monotonic() - _SESSION_START
    if spent > SESSION_BUDGET_S:
        load = os.getloadavg()[0]
        terminalreporter.write_line(
            f"warning: this test session took {spent:.0f} s (load average {load:.1f}), over the suite's budget of "
            f"{SESSION_BUDGET_S:.0f} s; a test that must run long goes to tests_long/",
            yellow=True,
        )

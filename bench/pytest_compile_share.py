"""A pytest plugin: the share of a test run's wall time spent in numba compiling (not cache loads).

    NUMBA_CACHE_DIR=$(mktemp -d) python -m pytest -p bench.pytest_compile_share tests/test_montecarlo.py

Run with an empty NUMBA_CACHE_DIR for a cold run (the issue's "cold test suite"), without for a warm one.
Counts numba's "numba:compile" events (outermost compilations: a kernel with its callees) in each test
process; the line printed at the end gives compile seconds, session seconds and their ratio. Under
pytest-xdist (the suite's default, -n auto) each worker counts its own and hands it to the controller, and
the share is of the processes' time together (workers x wall); `-n 0` measures one process.
"""

from __future__ import annotations

import time

import pytest
from numba.core import event

from momentcalc.estimators.jit import CompileClock

_clock = CompileClock()
_start = [0.0]
_workers: list[float] = []  # compile seconds of each xdist worker, as they finish


def pytest_sessionstart(session):
    event.register("numba:compile", _clock)
    _start[0] = time.perf_counter()


def pytest_sessionfinish(session):
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: the controller prints the summary
        output["numba_compile_s"] = _clock.seconds


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _workers.append(getattr(node, "workeroutput", {}).get("numba_compile_s", 0.0))


def pytest_terminal_summary(terminalreporter):
    total = time.perf_counter() - _start[0]
    compiling, processes = (sum(_workers), len(_workers)) if _workers else (_clock.seconds, 1)
    terminalreporter.write_line(
        f"numba compiling: {compiling:.1f} s of {total:.1f} s wall x {processes} process(es)"
        f" ({compiling / (total * processes):.0%})"
    )

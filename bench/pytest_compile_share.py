"""A pytest plugin: the share of a test run's wall time spent in numba compiling (not cache loads).

    NUMBA_CACHE_DIR=$(mktemp -d) python -m pytest -p bench.pytest_compile_share tests/test_montecarlo.py

Run with an empty NUMBA_CACHE_DIR for a cold run (the issue's "cold test suite"), without for a warm one.
Counts numba's "numba:compile" events (outermost compilations: a kernel with its callees) in the test
process; the line printed at the end gives compile seconds, session seconds and their ratio.
"""

from __future__ import annotations

import time

from numba.core import event

from momentcalc.estimators.jit import CompileClock

_clock = CompileClock()
_start = [0.0]


def pytest_sessionstart(session):
    event.register("numba:compile", _clock)
    _start[0] = time.perf_counter()


def pytest_terminal_summary(terminalreporter):
    total = time.perf_counter() - _start[0]
    terminalreporter.write_line(
        f"numba compiling: {_clock.seconds:.1f} s of {total:.1f} s wall ({_clock.seconds / total:.0%})"
    )

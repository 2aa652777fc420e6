"""A pytest plugin: the share of a test run's wall time spent in numba compiling (not cache loads).

    MOMENTCALC_KERNELS=$(mktemp -d) python -m pytest -p bench.pytest_compile_share tests/test_montecarlo.py

Run with an empty MOMENTCALC_KERNELS for a cold run (the issue's "cold test suite"), without for a warm one (or
for the run after a fresh editable install, whose kernels folder holds what the install compiled).
Counts numba's "numba:compile" events (outermost compilations: a kernel with its callees) in each test
process; the line printed at the end gives compile seconds, session seconds and their ratio. Under
pytest-xdist (the suite's default, -n auto) each worker counts its own and hands it to the controller, and
the share is of the processes' time together (workers x wall); `-n 0` measures one process.
With `--compile-files N` it also lists the N test files that compiled longest, with their compile and
test seconds (a file's fixtures and tests together): where trimming kernels would pay. With
`--compile-kinds N`, the N kinds of function that compiled longest (self time, the numeric suffix of generated
names such as _activation_7 dropped so that one kind's activations add up), with their compilation counts.
"""

from __future__ import annotations

import time

import pytest
from numba.core import event

from bench.compile_profile import Recorder
from momentcalc.estimators.jit import CompileClock

_clock = CompileClock()
_start = [0.0]
_workers: list[float] = []  # compile seconds of each xdist worker, as they finish
_files: dict[str, list[float]] = {}  # test file: [compile seconds, test seconds]
_recorder = Recorder()
_kinds: dict[str, list[float]] = {}  # kind of function: [self compile seconds, compilations]


def pytest_addoption(parser):
    parser.addoption("--compile-files", type=int, default=0, help="list the N files that compiled longest")
    parser.addoption("--compile-kinds", type=int, default=0, help="list the N kinds of function that did")


def _kind(name: str) -> str:
    stem, _, suffix = name.rpartition("_")
    return f"{stem}_N" if suffix.isdigit() and stem else name


def _add_kinds(kinds: dict[str, list[float]]) -> None:
    for name, (seconds, count) in kinds.items():
        spent = _kinds.setdefault(name, [0.0, 0])
        spent[0], spent[1] = spent[0] + seconds, spent[1] + count


def _own_kinds() -> dict[str, list[float]]:
    kinds: dict[str, list[float]] = {}
    for name, seconds in _recorder.self_time.items():
        spent = kinds.setdefault(_kind(name), [0.0, 0])
        spent[0], spent[1] = spent[0] + seconds, spent[1] + _recorder.count[name]
    return kinds


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    compiled, started = _clock.seconds, time.perf_counter()
    yield
    spent = _files.setdefault(item.nodeid.split("::")[0], [0.0, 0.0])
    spent[0] += _clock.seconds - compiled
    spent[1] += time.perf_counter() - started


def pytest_sessionstart(session):
    event.register("numba:compile", _clock)
    event.register("numba:compile", _recorder)
    _start[0] = time.perf_counter()


def pytest_sessionfinish(session):
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: the controller prints the summary
        output["numba_compile_s"] = _clock.seconds
        output["numba_compile_files"] = _files
        output["numba_compile_kinds"] = _own_kinds()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    _workers.append(output.get("numba_compile_s", 0.0))
    for name, (compiling, testing) in output.get("numba_compile_files", {}).items():
        spent = _files.setdefault(name, [0.0, 0.0])
        spent[0], spent[1] = spent[0] + compiling, spent[1] + testing
    _add_kinds(output.get("numba_compile_kinds", {}))


def pytest_terminal_summary(terminalreporter):
    total = time.perf_counter() - _start[0]
    compiling, processes = (sum(_workers), len(_workers)) if _workers else (_clock.seconds, 1)
    terminalreporter.write_line(
        f"numba compiling: {compiling:.1f} s of {total:.1f} s wall x {processes} process(es)"
        f" ({compiling / (total * processes):.0%})"
    )
    listed = terminalreporter.config.getoption("--compile-files")
    for name, (compiling, testing) in sorted(_files.items(), key=lambda kv: -kv[1][0])[:listed]:
        terminalreporter.write_line(f"  {compiling:7.1f} s compiling of {testing:7.1f} s  {name}")
    if not _workers:
        _add_kinds(_own_kinds())
    listed = terminalreporter.config.getoption("--compile-kinds")
    for name, (seconds, count) in sorted(_kinds.items(), key=lambda kv: -kv[1][0])[:listed]:
        terminalreporter.write_line(f"  {seconds:7.1f} s self, {count:4d} compilations  {name}")

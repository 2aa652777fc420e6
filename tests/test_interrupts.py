"""Ctrl-C at any moment of a plain process (its own, no server): `error: interrupted`, exit 130, no traceback.

Before, 17 of 64 random interrupts of `estimate relu` gave a traceback and exit 1 (which says "the estimates
disagree"): a KeyboardInterrupt cut into an import (a module left half-imported, an AttributeError later), into
python-flint's C callbacks (a SystemError), or before the CLI's own handling began.

The main suite sends 20 interrupts at random delays (fixed seed) from 0 to 2 s after start; tests_long/ 100 more.
Python's own start-up is no part of momentcalc: an interrupt that lands there, before the first line of momentcalc
runs (the first 30-200 ms here, with bytecode writing off), ends the process as Python does (killed by the signal,
or a traceback of site.py or of the import that pip's console script makes); such a try is told apart by its output
(no frame of a momentcalc file) and its delay, and is not counted against momentcalc.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Imports numba, scipy and flint, loads kernels, then samples 10^9 normals (10 s or more): every delay of 0-2 s
# lands while it runs, however fast the machine.
COMMAND = ["estimate", "relu", "--samples", "1000000000", "--json"]
STARTUP_WINDOW_S = 0.5  # an upper bound of Python's own start-up on a loaded machine, before momentcalc's code


def _script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


def _interrupt_at(delay: float) -> tuple[int, str]:
    process = subprocess.Popen([_script(), *COMMAND], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err.decode()


def _before_momentcalc(delay: float, code: int, err: str) -> bool:
    """Whether the interrupt ended Python's own start-up (or the console script's own lines, which pip writes),
    before any file of momentcalc ran: no frame of momentcalc_launch.py or the package in its traceback."""
    ours = "momentcalc_launch.py" in err or f"{os.sep}momentcalc{os.sep}" in err
    return delay < STARTUP_WINDOW_S and code in (-signal.SIGINT, 1) and not ours


def _check(tries: int, seed: int) -> None:
    rng = random.Random(seed)
    wrong, early = [], 0
    for delay in (rng.uniform(0.0, 2.0) for _ in range(tries)):
        code, err = _interrupt_at(delay)
        if code == 130 and err == "error: interrupted\n":
            continue
        if _before_momentcalc(delay, code, err):
            early += 1
            continue
        wrong.append(f"after {delay:.3f} s: exit {code}, {len(err.splitlines())} lines: {err[-400:]!r}")
    assert not wrong, "\n".join(wrong) + f"\n({early} more landed in Python's own start-up)"


def test_ctrl_c_at_random_moments_is_one_line_and_exit_130():
    _check(8, seed=28)  # tests_long runs 100 more moments


def test_ctrl_c_twice_leaves_at_once():
    # The second Ctrl-C while the first one unwinds (closing what the command opened) does not wait for it.
    process = subprocess.Popen([_script(), *COMMAND], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err.decode()) == (130, "error: interrupted\n")

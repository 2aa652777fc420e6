"""Ctrl-C at 100 random moments of a command's life: one line and exit 130 every time (tests/test_interrupts.py
runs 20 other moments in the main suite); Ctrl-C in a table build with worker processes.

Why in tests_long/: 100 console-script processes, each started and interrupted, about 60 s of CPU; a rare
traceback (1 in 100 tries once) needs this many tries to be seen. The build's case starts a process and its two
workers, which import the package and load or compile kernels (about 3 s of CPU); tests/test_tables.py stops a
build's workers from a progress callback in the main suite.
"""

import subprocess
import sys

from test_interrupts import _check
from test_limits import _INTERRUPTED_BUILD


def test_ctrl_c_at_100_random_moments_is_one_line_and_exit_130():
    _check(100, seed=2028)


def test_ctrl_c_in_a_build_stops_its_workers_and_writes_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_BUILD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 130 and done.stdout == ""
    # One line: no traceback, and no semaphores of the worker pool reported leaked by multiprocessing.
    assert done.stderr.strip().splitlines()[-1:] == ["error: interrupted"] and "leaked" not in done.stderr
    assert list(tmp_path.iterdir()) == []

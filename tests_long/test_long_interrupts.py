"""Ctrl-C at 100 random moments of a command's life: one line and exit 130 every time (tests/test_interrupts.py
runs 20 other moments in the main suite).

Why in tests_long/: 100 console-script processes, each started and interrupted, about 60 s of CPU; a rare
traceback (1 in 100 tries once) needs this many tries to be seen.
"""

from test_interrupts import _check


def test_ctrl_c_at_100_random_moments_is_one_line_and_exit_130():
    _check(100, seed=2028)

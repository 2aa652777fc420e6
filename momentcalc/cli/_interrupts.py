"""Ctrl-C while a command runs: `error: interrupted` and exit code 130, whatever it interrupted.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread is, and not all code survives that:
an import cut halfway leaves a module without its attributes (numpy's, found missing later: AttributeError), a
callback from C code (python-flint's integrands) turns it into a SystemError, and some libraries swallow it and go
on. Each came out as a traceback and exit code 1, which means "the estimates disagree". So the handler here notes
the interrupt before raising it, and the CLI reports any error that follows a noted interrupt, or a command that
ended after one, as the interrupt itself. A second Ctrl-C leaves at once.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

EXIT_INTERRUPTED = 130
_noted: list[bool] = [False]


def interrupted() -> bool:
    """Whether Ctrl-C (SIGINT) reached this process while noting_interrupts was on."""
    return _noted[0]


def leave_now(_signum=None, _frame=None) -> None:
    """Say `error: interrupted` and leave with 130 at once: where nothing is left to close (start-up, a second
    Ctrl-C). Worker processes die with this one (processes.py); temporary files are replaced whole or removed by
    the next run."""
    try:
        os.write(2, b"error: interrupted\n")
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)


def _note(_signum, frame) -> None:
    if _noted[0] or _importing(frame):
        leave_now()
    _noted[0] = True
    raise KeyboardInterrupt


def _importing(frame) -> bool:
    """Whether the interrupt landed in Python's import machinery: raised there, it may reach an import made from
    C code, which prints its traceback; nothing is open yet that leaving at once would cut."""
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


def _unraisable(before):
    """sys.unraisablehook while a command runs: a KeyboardInterrupt that C code could not raise further (a
    ctypes callback from LLVM while numba compiles, an import made from C) would be printed with its traceback
    and dropped; it leaves at once instead, with the one line (numba writes its cache files whole, by renaming)."""

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            leave_now()
        before(unraisable)

    return hook


@contextmanager
def noting_interrupts():
    """While the block runs, Ctrl-C is noted (interrupted()) and raised as KeyboardInterrupt; a second one leaves
    at once. A SIGINT that this process was told to ignore (`cmd &` in a script) stays ignored; off the main
    thread (where signals cannot be handled) nothing changes."""
    _noted[0] = False
    try:
        before = signal.getsignal(signal.SIGINT)
        if before is signal.SIG_IGN:
            yield
            return
        signal.signal(signal.SIGINT, _note)
    except ValueError:  # not the main thread
        yield
        return
    hook_before = sys.unraisablehook
    sys.unraisablehook = _unraisable(hook_before)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        sys.unraisablehook = hook_before

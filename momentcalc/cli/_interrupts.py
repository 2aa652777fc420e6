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
    if _noted[0] or _in_llvm_callback(frame):
        leave_now()
    _noted[0] = True
    raise KeyboardInterrupt


def _in_llvm_callback(frame) -> bool:
    """Whether Python code that LLVM calls back through ctypes (numba compiling, llvmlite's object cache) is
    running: an exception raised there is printed by ctypes with its traceback and dropped, so the interrupt
    leaves at once instead (numba writes its cache files whole, by renaming)."""
    return frame is not None and "llvmlite" in frame.f_code.co_filename


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
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)

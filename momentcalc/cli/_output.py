"""stdout checked while a command runs: a write that does not go through whole raises OutputLost.

Python loses output silently in two ways a command must not: a closed stdout (file descriptor 1 closed when
Python starts) makes sys.stdout None, and rich and click then write nothing, without an error; and a write that
the system cuts short (a file size limit, `ulimit -f`, takes the first bytes and refuses the rest) is returned as
short by the buffered writer, whose count the text layer ignores. Everything else (a full disk, a full
non-blocking pipe, a reader that left) is an OSError that would surface where the library or click mistakes it
for one of theirs (click exits 1 on a broken pipe, the code for "the estimates disagree").
"""

from __future__ import annotations

import errno
import io
import os
import sys
from contextlib import contextmanager


class OutputLost(Exception):
    """stdout did not take what a command wrote (the OSError `error`): not an OSError itself, so that no handler
    in the library or click takes it for one of its own."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


class _WholeWrites(io.BufferedWriter):
    """A buffered writer whose write takes every byte or raises: a short write is retried, and the retry gets the
    system's error (EFBIG past a file size limit)."""

    def write(self, data):
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            written = super().write(view[done:])
            if not written:
                raise OSError(errno.EIO, "the output took no more bytes")
            done += written
        return done


class _CheckedStdout(io.TextIOWrapper):
    """sys.stdout while a command runs: a write or flush that fails raises OutputLost."""

    def write(self, text):
        try:
            return super().write(text)
        except OSError as error:
            raise OutputLost(error) from None

    def flush(self):
        try:
            return super().flush()
        except OSError as error:
            raise OutputLost(error) from None


_KEPT: list[io.IOBase] = []  # layers that could not let go of stdout's file (see checked_stdout)


@contextmanager
def checked_stdout():
    """sys.stdout as a _CheckedStdout over a _WholeWrites over stdout's own file while the block runs; a closed
    stdout as one whose every write fails with EBADF. A stream with no file under it (a test runner's) is only
    checked for errors."""
    original = sys.stdout
    if original is None:
        buffer = _WholeWrites(_closed_stdout())
    else:
        buffer = getattr(original, "buffer", None)
        raw = buffer if isinstance(buffer, io.FileIO) else getattr(buffer, "raw", None)  # unbuffered (-u): the file
        if isinstance(raw, io.FileIO):
            buffer.flush()
            buffer = _WholeWrites(raw)
    if buffer is None:  # text only (a StringIO): nothing to check it with
        yield
        return
    checked = _CheckedStdout(
        buffer,
        encoding=getattr(original, "encoding", None) or "utf-8",
        errors=getattr(original, "errors", None) or "strict",
        line_buffering=getattr(original, "line_buffering", False),
        write_through=getattr(original, "write_through", False),
    )
    sys.stdout = checked
    try:
        yield
    finally:
        sys.stdout = original
        _let_go(checked)


def _let_go(checked: _CheckedStdout) -> None:
    # Collected while attached, a layer closes what is under it: stdout's file, which the original stream shares.
    try:
        under = checked.detach()  # flushes first
        if isinstance(under, _WholeWrites):
            under.detach()
    except (OSError, OutputLost, ValueError):
        _KEPT.append(checked)


def _closed_stdout() -> io.FileIO:
    # /dev/null opened read-only takes the lowest free descriptor, 1 where stdout is closed: a file the command
    # opens later cannot become its stdout, and every write to it fails (EBADF).
    return io.FileIO(os.open(os.devnull, os.O_RDONLY), "w", closefd=False)


def silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null: what is still buffered goes nowhere instead of failing again
    (Python's own flush at exit would print a message of its own)."""
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError):
        return
    os.dup2(null, fd)
    os.close(null)

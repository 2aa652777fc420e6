"""Independent tasks in worker processes, their results in task order: how `momentcalc tables build` and
`tables check` estimate their entries side by side.

Processes, not threads: an entry's time is mostly Python (quadrature, certified intervals) or, in a first run,
numba compiling its kernels, and both hold the GIL (numba's compiler holds a lock of its own as well). On the
2-core machine a cold table build took 38.3 s in one process and 24.2 s in two, a warm one 7.3 s and 5.4-6.5 s.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial

Mapper = Callable[[Callable, Iterable], Iterator]


def cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def mapper(jobs: int, initializer: Callable[[], None] | None = None):
    """A context that gives map(task, items): the builtin for one job, else `jobs` spawned processes' map.

    Either way the results come in the order of the items. In processes: the task and the items must pickle, a
    task's exception is raised in this process (as itself), and the workers ignore Ctrl-C. When the context is
    left, normally or by an exception (Ctrl-C's KeyboardInterrupt in this process among them), every worker is
    stopped: none outlives the context, and no task goes on running that nobody will read.
    """
    return nullcontext(map) if jobs <= 1 else _pool(jobs, initializer)


@contextmanager
def _pool(jobs: int, initializer: Callable[[], None] | None) -> Iterator[Mapper]:
    # spawn: a fresh interpreter, not a fork of this one with its threads (progress bars, thread pools) and locks.
    workers = multiprocessing.get_context("spawn").Pool(jobs, initializer=partial(_start, initializer))
    try:
        yield lambda task, items: workers.imap(task, items, chunksize=1)
    finally:
        workers.terminate()
        workers.join()


def _start(initializer: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    if initializer is not None:
        initializer()

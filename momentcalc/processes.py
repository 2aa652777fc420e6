"""Independent tasks in worker processes, their results in task order: how `momentcalc tables build` and
`tables check` estimate their entries side by side.

Processes, not threads: an entry's time is mostly Python (quadrature, certified intervals) or, in a first run,
numba compiling its kernels, and both hold the GIL (numba's compiler holds a lock of its own as well). On the
2-core machine a cold table build took 45.7-46.6 s in one process and 25.0-30.3 s in two, a warm one 8.7-9.5 s and
6.2-6.6 s (bench/startup.py, two runs side by side).

The workers are spawned, not forked: a fork would copy this process's threads (progress bars, thread pools) and
locks mid-use. Spawning runs the main module again in each worker, so a script that asks for jobs > 1 needs
Python's `if __name__ == "__main__":` guard; the console script and `python -m momentcalc` have it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial

from .errors import MomentcalcError

Mapper = Callable[[Callable, Iterable], Iterator]
_started = [False]  # whether this process has started workers (the console script collects their leftovers)


def cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def started() -> bool:
    """Whether this process has started worker processes (mapper with jobs > 1)."""
    return _started[0]


def mapper(jobs: int, initializer: Callable[[], None] | None = None):
    """A context that gives map(task, items): the builtin for one job, else one over `jobs` spawned processes.

    Either way the results come in the order of the items. In processes: the task and the items must pickle, a
    task's exception is raised here as itself, a worker that dies (killed, out of memory) raises MomentcalcError,
    and the workers ignore Ctrl-C. Leaving the context, normally or by an exception (Ctrl-C's KeyboardInterrupt
    here among them), stops every worker: none outlives it, and no task goes on running that nobody will read.
    """
    return nullcontext(map) if jobs <= 1 else _pool(jobs, initializer)


@contextmanager
def _pool(jobs: int, initializer: Callable[[], None] | None) -> Iterator[Mapper]:
    # Imported here: 0.05 s that every command would pay (the CLI imports this module), and only builds use.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    before, _started[0] = set(multiprocessing.active_children()), True
    context = multiprocessing.get_context("spawn")
    workers = ProcessPoolExecutor(jobs, mp_context=context, initializer=partial(_start, initializer, os.getpid()))
    try:
        yield lambda task, items: _results(workers.map(task, items))
    finally:
        # The executor would wait for the running tasks: stop its workers (the children started since), and let it
        # reap them as it does a broken pool's. Its manager thread, joined here, lets go of its queues then.
        for child in set(multiprocessing.active_children()) - before:
            child.terminate()
        workers.shutdown(wait=True, cancel_futures=True)


def _results(results: Iterator) -> Iterator:
    from concurrent.futures.process import BrokenProcessPool

    try:
        yield from results
    except BrokenProcessPool:
        raise MomentcalcError(
            "a worker process died before its task was done (killed, or out of memory?); run again, with --jobs 1 "
            "for a single process"
        ) from None


def _start(initializer: Callable[[], None] | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _die_with(parent)
    if initializer is not None:
        initializer()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHAN_POLL_S = 0.5


def _die_with(parent: int) -> None:
    """End this worker when its parent ends, however it ends: a parent killed with SIGKILL runs no code of its
    own, and the workers (each holding hundreds of MB) would go on until their task is done, or forever.

    Linux: the kernel sends SIGKILL to this process when the parent's thread that started it ends (the thread
    that maps the tasks, which holds the pool until it is done: its end is the parent's end, or the pool's).
    Elsewhere: a thread that notices being orphaned. Either way, a parent that ended before this ran is noticed
    at once (getppid is then another process)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _watch_parent(parent)
    else:
        _watch_parent(parent)
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="momentcalc-orphan-watch", daemon=True).start()

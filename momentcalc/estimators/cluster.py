"""Monte Carlo chunks on a Dask cluster (dask.distributed), with the same bits as on this machine's threads.

The driver (driver.py) cuts a run into chunks whose streams depend only on the
seed and the chunk's index; here its tasks (a slice of chunks: seed them, run
the kernel, return one row per chunk) become Dask futures, and their rows come
back in task order. So a run on N workers merges exactly the rows a local run
merges, in the same order: the same bits. A task is pure: when a worker dies,
Dask runs its tasks again elsewhere and the rows are the same.

``running_on(scheduler)`` is where a run asks for it: an address
('tcp://host:8786'), 'local:N' (a LocalCluster of N worker processes on this
machine) or a ``distributed.Client``. dask is optional (``momentcalc[dask]``)
and imported only here, and only when a scheduler is given. The connection is
made when the first chunks are run, so a run that samples nothing connects to
nothing. Quasi-Monte Carlo replicas run here too (their
extensions are pure tasks: qmc.extension). User callables (``expr(...)`` and
Python functions) are refused with a scheduler (vectorized.run_numpy says why).

Progress comes from each future as it finishes (as_completed), while results
still come out in task order; tasks grow with the number of workers
(batch_scale), so the one scheduler's cost per task stays small, and a short
run's chunks are grouped into tasks of at least min_task_s (TASK_OVER_OVERHEAD
round trips of an empty task, measured once per scheduler), so that Dask's cost
stays within 20% of a task's compute however few chunks a run has.

Bits are the same on workers with the same momentcalc and the same CPU
features: numba compiles for the CPU it runs on, and a CPU with other vector
instructions may round differently. A worker's momentcalc (version and kernel
sources: kernel_stamp) is checked for every task: each task returns its
worker's stamp with its rows, so a worker that joins mid-run with other code
fails the run instead of changing it. (Nothing is checked on connecting: a
worker that stopped answering would hang that check.)

Every wait is bounded: connecting (CONNECT_TIMEOUT_S), a first worker to join
(WORKERS_TIMEOUT_S) and the next task to finish (TASK_TIMEOUT_S: a worker that
stops answering holds its tasks until the scheduler drops it, minutes later);
``timeout=`` (the CLI's --timeout) replaces all three.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np

from .. import __version__
from .._lazy import lazy_module
from ..errors import MomentcalcError

# numba: every run enters running_on, and one with no scheduler (or with no sampling method) never needs it.
driver = lazy_module("momentcalc.estimators.driver")
jit = lazy_module("momentcalc.estimators.jit")

DASK_MODULE = "distributed"  # the package that `pip install 'momentcalc[dask]'` brings
INSTALL_HINT = "pip install 'momentcalc[dask]'"
CONNECT_TIMEOUT_S = 10  # an address that does not answer within this fails the run
WORKERS_TIMEOUT_S = 30  # a scheduler with no worker after this fails the run
POLL_S = 0.02  # how often a wait for the next task looks (it adds at most this to a progress report)
TASK_TIMEOUT_S = 120  # no task finished for this long (a first run on a worker compiles its kernels): fails the run
BATCH_SCALE = 16  # at least: tasks of 128 chunks (0.2-0.5 s of kernel work), so a worker's ~1 ms a task costs < 1%
TASK_OVER_OVERHEAD = 5  # a task computes at least 5 round trips of an empty task: Dask's cost <= 20% of it
ROUND_TRIPS = 8  # empty tasks timed one after the other on a first run, per scheduler; their median is the round trip
ROUND_TRIP_WAIT_S = 2.0  # longest that timing may take (a worker that stopped answering): then ROUND_TRIP_S
ROUND_TRIP_S = 0.011  # an empty task's round trip on 2 loaded cores (bench/cluster.py), where none was measured
_round_trips: dict[str, float] = {}  # scheduler address -> its measured round trip, once a process


def running_on(scheduler, timeout: float | None = None):
    """A context in which Monte Carlo chunks run on `scheduler` (None: on this process's threads).

    timeout: the longest any wait on the cluster lasts, in seconds (connecting, a first worker, the next task to
    finish); None: CONNECT_TIMEOUT_S, WORKERS_TIMEOUT_S and TASK_TIMEOUT_S."""
    check_timeout(timeout)
    if scheduler is None:
        return nullcontext()
    return _running_on(DaskExecutor(scheduler, timeout))


def check_timeout(timeout) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e6:
        raise MomentcalcError(f"timeout is a number of seconds > 0 and < 1e6, got {timeout!r}")


@contextmanager
def _running_on(executor: DaskExecutor):
    with driver.executing(executor):
        try:
            yield executor
        finally:
            executor.close()


def batch_scale(slots: int) -> int:
    """How many times longer than on threads a batch is (and so each of its tasks), on `slots` worker threads.

    One scheduler serves every worker and spends about a millisecond on each task (Dask's own figure; an empty
    task's round trip measured 11 ms on this 2-core machine under load, bench/cluster.py). With W workers each
    finishing a task every T seconds it is busy W / T * 1 ms of every second: tasks must last longer as
    workers are added, T >= W * 20 ms to keep that near 5%. A task of scale s holds 32 * s / 4 = 8 s chunks of
    about 2.5-4 ms (2^18 normals and the kernel's work on them), T ~ s * 25 ms: so s = W, and at least
    BATCH_SCALE, which keeps a worker's own costs per task (seeding, pickling rows) below 1%. On 100 workers:
    tasks of 800 chunks, 2-3 s each (the scheduler busy a few percent of the time; a third at 11 ms a task,
    which it still keeps up with). Bits do not depend on it: chunks are seeded by their index and merged in
    chunk order however they are grouped into tasks.
    """
    return max(BATCH_SCALE, slots)


class DaskExecutor:
    """driver.Executor on a dask.distributed cluster: connected on first use, closed by running_on."""

    def __init__(self, scheduler, timeout: float | None = None):
        self.scheduler, self._client, self._cluster, self._owned = scheduler, None, None, False
        self.timeout = timeout
        self._workers = _local_workers(scheduler) if isinstance(scheduler, str) else None
        if isinstance(scheduler, str) and not scheduler.strip():
            raise MomentcalcError("scheduler must be an address such as tcp://host:8786, or local:N")
        if not isinstance(scheduler, str) and not _is_client(scheduler):
            raise MomentcalcError(
                f"scheduler must be an address such as tcp://host:8786, local:N or a dask.distributed.Client, "
                f"got {scheduler!r}"
            )
        _distributed()  # says how to install dask now, not when the first chunks run

    @property
    def client(self):
        if self._client is None:
            self._client = self._connect()
            _wait_for_workers(self._client, self._timeout(WORKERS_TIMEOUT_S))
        return self._client

    def _timeout(self, default: float) -> float:
        return default if self.timeout is None else self.timeout

    @property
    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    @property
    def min_task_s(self) -> float:
        """The shortest task worth running here: TASK_OVER_OVERHEAD round trips of an empty task (measured once a
        process for each scheduler), so that what Dask costs a task stays within 1 / TASK_OVER_OVERHEAD of it."""
        address = self.client.scheduler.address
        if address not in _round_trips:
            _round_trips[address] = round_trip(self.client, min(ROUND_TRIP_WAIT_S, self._timeout(ROUND_TRIP_WAIT_S)))
        return TASK_OVER_OVERHEAD * _round_trips[address]

    def batch_scale(self, folded: bool) -> int:
        # Folded rows (maps) are whole maps of moments a chunk: a longer batch would hold more of them at once.
        return BATCH_SCALE if folded else batch_scale(self.slots)

    def in_order(
        self, tasks: Sequence[Callable[[], np.ndarray]], done: Callable[[int], None] | None = None
    ) -> _Futures:
        """Submit every task now (pure=False: a task's key is its own, never another run's); results in order.

        Each task returns its worker's kernel_stamp with its rows (_stamped), checked as it arrives."""
        futures = [self.client.submit(partial(_stamped, task), pure=False) for task in tasks]
        return _Futures(futures, done, self._timeout(TASK_TIMEOUT_S))

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()
        self._client = self._cluster = None

    def _connect(self):
        distributed = _distributed()
        if _is_client(self.scheduler):
            return self.scheduler
        self._owned = True
        if self._workers is not None:
            self._cluster = distributed.LocalCluster(
                n_workers=self._workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,  # a worker that loses its scheduler on close logs an ERROR
            )
            return distributed.Client(self._cluster)
        timeout = self._timeout(CONNECT_TIMEOUT_S)
        try:
            # distributed.Client's own timeout does not cover a peer that accepts and stays silent (it waited
            # for ever): a bounded handshake first, whose wait can be cancelled.
            _probe(self.scheduler, timeout)
            return distributed.Client(self.scheduler, timeout=timeout)
        except Exception as why:  # noqa: BLE001 - garbage from a peer raises anything: ValueError, MemoryError...
            raise self._unreachable(why, timeout) from None

    def _unreachable(self, why: BaseException, timeout: float) -> MomentcalcError:
        if isinstance(why, TimeoutError):
            first_line = f"no answer within {timeout:g} s; a longer --timeout (timeout=) waits longer"
        else:
            first_line = (str(why).strip().splitlines() or [type(why).__name__])[0][:200]
        return MomentcalcError(
            f"cannot reach a Dask scheduler at {self.scheduler!r} ({first_line}); "
            "give the address of a running scheduler (tcp://host:8786) or local:N"
        )


def round_trip(client, wait: float) -> float:
    """Median seconds from submitting an empty task to holding its result, over ROUND_TRIPS tasks one after the
    other: what Dask costs a task at most (many queued at once overlap); ROUND_TRIP_S if they take longer than
    `wait` seconds in all (a worker that stopped answering: the run's own waits report it)."""
    seconds, deadline = [], time.monotonic() + wait
    for i in range(ROUND_TRIPS):
        start = time.perf_counter()
        future = client.submit(int, i, pure=False)  # a builtin: a worker without momentcalc answers it too
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            future.cancel()
            return ROUND_TRIP_S
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def _probe(address: str, timeout: float) -> None:
    """Connect to address and ask its identity, all within timeout seconds; raise unless a scheduler answers.

    Run on an event loop of its own, in a thread of its own (the caller's thread may run a loop already)."""
    with ThreadPoolExecutor(1, thread_name_prefix="momentcalc-probe") as pool:
        pool.submit(asyncio.run, asyncio.wait_for(_identity(address, timeout), timeout)).result()


async def _identity(address: str, timeout: float) -> None:
    comm = await _distributed().comm.connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        reply = await comm.read()
    finally:
        comm.abort()
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise ValueError(f"it answered as {kind!r}, not as a Dask scheduler")


class _Futures:
    """Results of Dask futures in task order; cancel() (the driver's, on Ctrl-C) drops those not yet run.

    done(i) is called as future i finishes (distributed.as_completed): progress follows the cluster,
    while the results still come out in task order, so the merge and its bits do not depend on which finished
    first. Each result is (worker, kernel_stamp, rows), checked against this process's stamp as it arrives; a
    wait longer than timeout seconds for the next one fails the run.
    """

    def __init__(self, futures: list, done: Callable[[int], None] | None = None, timeout: float = TASK_TIMEOUT_S):
        self.futures, self.done, self.timeout = futures, done, timeout

    def __iter__(self) -> Iterator[np.ndarray]:
        index = {f.key: i for i, f in enumerate(self.futures)}
        ready, following, mine = {}, 0, kernel_stamp()
        completed = _distributed().as_completed(self.futures)
        for _ in range(len(self.futures)):
            future = self._next_finished(completed)
            i = index[future.key]
            ready[i] = _checked(_result(future), mine)
            if self.done is not None:
                self.done(i)
            while following in ready:  # the longest finished prefix, in task order
                yield ready.pop(following)
                following += 1

    def _next_finished(self, completed):
        """The next future to finish; MomentcalcError when none does within timeout seconds.

        as_completed's own timeout bounds the whole run, not each wait: so poll it, a few times a second (the
        workers do not wait on this thread: every task of the batch is submitted already)."""
        deadline = time.monotonic() + self.timeout
        while not completed.has_ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise MomentcalcError(
                    f"no Dask task finished within {self.timeout:g} s ({completed.count()} waiting): a worker "
                    "stopped answering, or a task takes longer (a worker's first run compiles its kernels); give "
                    "a longer --timeout (timeout=) if the cluster is only slow"
                )
            time.sleep(min(POLL_S, left))
        return next(completed)

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()


def _stamped(task: Callable[[], np.ndarray]) -> tuple[str, tuple[str, str], np.ndarray]:
    """A task as a worker runs it: the worker's address and kernel_stamp(), then the task's rows."""
    try:
        where = _distributed().get_worker().address
    except ValueError:  # not on a worker (a client's own thread): nothing else to name it by
        where = "(not a worker)"
    return where, kernel_stamp(), task()


def _result(future):
    """A finished future's result; a worker that cannot load momentcalc's task (no momentcalc, another one) is
    one MomentcalcError."""
    try:
        return future.result()
    except (ImportError, AttributeError) as why:
        first = (str(why).strip().splitlines() or [type(why).__name__])[0]
        if isinstance(why, AttributeError) and "momentcalc" not in first:
            raise  # a bug, not a worker's install: its traceback is what helps
        raise MomentcalcError(
            f"a Dask worker cannot load momentcalc's task ({first}): install the same momentcalc on every worker"
        ) from None


def _checked(result, mine: tuple[str, str]) -> np.ndarray:
    """The rows of a task's result, if the worker that ran it has this momentcalc; else MomentcalcError."""
    where, stamp, rows = result
    if tuple(stamp) != mine:
        raise _mismatch(where, stamp, mine)
    return rows


def _mismatch(worker: str, stamp, mine: tuple[str, str]) -> MomentcalcError:
    differs = []
    if stamp[0] != mine[0]:
        differs.append(f"momentcalc {stamp[0]}, not this {mine[0]}")
    if stamp[1] != mine[1]:
        differs.append(f"other kernel sources ({str(stamp[1])[:12]}..., not {mine[1][:12]}...)")
    return MomentcalcError(
        f"Dask worker {worker} runs {' with '.join(differs)}: its rows could differ, so the run stops; "
        "install the same momentcalc on every worker"
    )


def _local_workers(scheduler: str) -> int | None:
    """N of 'local:N', None for an address; refuses a bad N."""
    if not scheduler.startswith("local:"):
        return None
    count = scheduler.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise MomentcalcError(f"local:N needs N >= 1 worker processes, got {scheduler!r}")
    return int(count)


def _distributed():
    if importlib.util.find_spec(DASK_MODULE) is None:
        raise MomentcalcError(f"a Dask scheduler needs dask.distributed, which is not installed: {INSTALL_HINT}")
    return lazy_module(DASK_MODULE)


def _is_client(scheduler) -> bool:
    return type(scheduler).__name__ == "Client" and type(scheduler).__module__.startswith("distributed")


def kernel_stamp() -> tuple[str, str]:
    """What must match between this process and every worker for the same bits: version and kernel sources."""
    return __version__, jit.sources_stamp()


def _wait_for_workers(client, timeout: float) -> None:
    """Return once the scheduler has a worker; MomentcalcError after timeout seconds without one."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise MomentcalcError(
            f"the Dask scheduler at {client.scheduler.address} has no worker (none joined within {timeout:g} s): "
            "start workers (dask worker ADDRESS), or give a longer --timeout (timeout=) if they are starting"
        ) from None

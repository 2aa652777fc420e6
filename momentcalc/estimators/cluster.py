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
(batch_scale), so the one scheduler's cost per task stays small.

Bits are the same on workers with the same momentcalc (its kernel sources are
compared on connecting) and the same CPU features: numba compiles for the CPU
it runs on, and a CPU with other vector instructions may round differently.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

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
BATCH_SCALE = 16  # at least: tasks of 128 chunks (0.2-0.5 s of kernel work), so a worker's ~1 ms a task costs < 1%


def running_on(scheduler):
    """A context in which Monte Carlo chunks run on `scheduler` (None: on this process's threads)."""
    if scheduler is None:
        return nullcontext()
    return _running_on(DaskExecutor(scheduler))


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

    def __init__(self, scheduler):
        self.scheduler, self._client, self._cluster, self._owned = scheduler, None, None, False
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
            _check_workers(self._client)
        return self._client

    @property
    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def batch_scale(self, folded: bool) -> int:
        # Folded rows (maps) are whole maps of moments a chunk: a longer batch would hold more of them at once.
        return BATCH_SCALE if folded else batch_scale(self.slots)

    def in_order(
        self, tasks: Sequence[Callable[[], np.ndarray]], done: Callable[[int], None] | None = None
    ) -> _Futures:
        """Submit every task now (pure=False: a task's key is its own, never another run's); results in order."""
        return _Futures([self.client.submit(task, pure=False) for task in tasks], done)

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
        try:
            return distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as why:
            first_line = (str(why).strip().splitlines() or [type(why).__name__])[0]
            raise MomentcalcError(
                f"cannot reach a Dask scheduler at {self.scheduler!r} ({first_line}); "
                "give the address of a running scheduler (tcp://host:8786) or local:N"
            ) from None


class _Futures:
    """Results of Dask futures in task order; cancel() (the driver's, on Ctrl-C) drops those not yet run.

    done(i) is called as future i finishes (distributed.as_completed): progress follows the cluster, while
    the results still come out in task order, so the merge and its bits do not depend on which finished first.
    """

    def __init__(self, futures: list, done: Callable[[int], None] | None = None):
        self.futures, self.done = futures, done

    def __iter__(self) -> Iterator[np.ndarray]:
        index = {f.key: i for i, f in enumerate(self.futures)}
        ready, following = {}, 0
        for future in _distributed().as_completed(self.futures):
            i = index[future.key]
            ready[i] = future.result()
            if self.done is not None:
                self.done(i)
            while following in ready:  # the longest finished prefix, in task order
                yield ready.pop(following)
                following += 1

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()


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


def _check_workers(client) -> None:
    """Refuse workers whose momentcalc differs from this one (or is missing): their rows could differ."""
    try:
        stamps = client.run(kernel_stamp)
    except ImportError as why:
        raise MomentcalcError(
            f"a Dask worker cannot import momentcalc ({why}); install momentcalc on every worker"
        ) from None
    mine = kernel_stamp()
    for worker, stamp in sorted(stamps.items()):
        if tuple(stamp) != mine:
            raise MomentcalcError(
                f"Dask worker {worker} runs momentcalc {stamp[0]} with other kernel sources than this "
                f"momentcalc {mine[0]}: install the same momentcalc on every worker"
            )

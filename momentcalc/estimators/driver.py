"""The one driver of every sampling run: chunk streams, the thread pool, fixed runs and the tolerance loop.

Samples are cut into chunks whose boundaries depend only on the sample count
and the chunk size. Chunk j draws from its own SFC64 stream, seeded with
SeedSequence(seed, spawn_key=(j,)), and its row of moments does not depend on
which thread ran it; rows are combined in chunk order. So a result has the
same bits on 1 thread or many, and a run with ``tol`` that stops after m
chunks equals a run of exactly those m chunks.

Users: plain and antithetic Monte Carlo (montecarlo.py, antithetic.py: jitted
kernels over a slice of chunks), the numpy path of user functions (vectorized.py),
whole simulated maps (spatial/maps.py: rows of shape (5, positions)) and the
quasi-Monte Carlo replicas (qmc.py: their extensions as tasks, anywhere_in_order, and the tolerance loop).

Progress convention: progress(done, total) in samples, after each batch of
work (on an executor, as each task finishes), where total is what the run (or
the current extension of it) reaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any, Protocol

import numba
import numpy as np

from ..errors import MomentcalcError
from ..settings import DEFAULT_WORK, MAX_SAMPLES, MIN_CUT_SAMPLES, Progress, RunSettings
from . import normals

TASKS_PER_THREAD = 4  # slices per thread: a thread slowed by a neighbour on the machine holds up less

Streams = Callable[[int, int], Sequence]  # (first, count) -> the streams of chunks first, ..., first + count - 1
Launch = Callable[[Sequence, np.ndarray], np.ndarray]  # (streams of some chunks, their sizes) -> one row per chunk


# --- chunk streams -------------------------------------------------------------------


def chunk_sizes(samples: int, chunk: int) -> list[int]:
    full, rest = divmod(samples, chunk)
    return [chunk] * full + ([rest] if rest else [])


def _chunk_bit_generator(seed: int, index: int) -> np.random.SFC64:
    # Equal to SeedSequence(seed).spawn(index + 1)[index], built directly so chunks can be added later.
    return np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(index,)))


def chunk_generator(seed: int, index: int) -> np.random.Generator:
    """Chunk j's stream as a numpy Generator, for the numpy paths (user expressions, spatial maps)."""
    return np.random.Generator(_chunk_bit_generator(seed, index))


def chunk_states(seed: int, first: int, count: int) -> np.ndarray:
    """The SFC64 states of chunks first, ..., first + count - 1, one row each: what the kernels draw from."""
    states = np.empty((count, 4), dtype=np.uint64)
    for i in range(count):
        states[i] = normals.state_of(_chunk_bit_generator(seed, first + i))
    return states


def generators(seed: int, first: int, count: int) -> list[np.random.Generator]:
    """The numpy Generators of chunks first, ..., first + count - 1."""
    return [chunk_generator(seed, first + i) for i in range(count)]


# --- the thread pool -------------------------------------------------------------------


def threads() -> int:
    return max(1, numba.get_num_threads())


def use_threads(count: int) -> None:
    """Run this thread's Monte Carlo on `count` threads (tables' worker processes share the CPUs out)."""
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))


@cache
def _pool(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="momentcalc-mc")


def in_order(tasks: Sequence[Callable[[], Any]], parallel: bool = True) -> Iterator:
    """Start the tasks on the shared pool now; iterate over their results in task order.

    Threads run in parallel because the work releases the GIL: the numba
    kernels are nogil, numpy and scipy release it in their array loops. On one
    thread (or with parallel=False, for user code that may not be thread-safe)
    each task runs in the caller's thread when its result is asked for.
    """
    count = threads()
    if not parallel or count == 1 or len(tasks) == 1:
        return (task() for task in tasks)
    return _Submitted([_pool(count).submit(task) for task in tasks])


def anywhere_in_order(tasks: Sequence[Callable[[], Any]], done: Callable[[int], None] | None = None) -> Iterable:
    """Pure tasks on the executor where one is set (executing()), else on the pool; results in task order.

    done(i), if given, is called as task i finishes: on an executor in the order the tasks finish (progress
    while the others run), on the pool in task order.
    """
    executor = _executor.get()
    if executor is not None:
        return executor.in_order(tasks, done)
    return _each_done(in_order(tasks), done)


def _each_done(results: Iterable, done: Callable[[int], None] | None) -> Iterator:
    for i, result in enumerate(results):
        if done is not None:
            done(i)
        yield result


class _Submitted:
    """Results of tasks on the pool, in task order; cancel() drops the tasks not yet started."""

    def __init__(self, futures: list):
        self.futures = futures

    def __iter__(self) -> Iterator:
        return (f.result() for f in self.futures)

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()


# --- where chunk tasks run: this process's threads, or an executor such as a Dask cluster (cluster.py) ---------


class Executor(Protocol):
    """Runs chunk tasks elsewhere; results come back in task order, so the rows and their bits do not change."""

    slots: int  # tasks that run at once
    min_task_s: float  # the shortest task worth its cost: chunks whose seconds are known are grouped to at least this

    def batch_scale(self, folded: bool) -> int:
        """Batches this many times longer than on threads: fewer, larger tasks pay its overhead per task.
        folded: rows folded as they come in (maps: a row per chunk is a whole map's moments)."""

    def in_order(
        self, tasks: Sequence[Callable[[], np.ndarray]], done: Callable[[int], None] | None = None
    ) -> Iterable[np.ndarray]:
        """Start the tasks now; their results in task order (an object with cancel(), for Ctrl-C, if it can).
        done(i), if given, is called as task i finishes, in whatever order they finish."""


_executor: ContextVar[Executor | None] = ContextVar("momentcalc_executor", default=None)


@contextmanager
def executing(executor: Executor | None):
    """Within this block, parallel chunk tasks run on `executor` (None: on this process's threads)."""
    token = _executor.set(executor)
    try:
        yield executor
    finally:
        _executor.reset(token)


def current_executor() -> Executor | None:
    """The executor set by executing(), if any."""
    return _executor.get()


def slots() -> int:
    """Tasks that run at once: the executor's (set by executing()), else this process's threads."""
    executor = _executor.get()
    return executor.slots if executor is not None else threads()


def _elsewhere(chunks: Chunks) -> Executor | None:
    return _executor.get() if chunks.parallel else None


def _run_slice(streams: Streams, launch: Launch, first: int, counts: np.ndarray) -> np.ndarray:
    """One task: rows of chunks first, ..., seeded where the task runs (a worker seeds its own chunks)."""
    return launch(streams(first, len(counts)), counts)


# -----------------------------------------------------------------------------------------------------------------


def report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


class _Tally:
    """Progress of one run_chunks: an executor's tasks add their samples as they finish (in any order, while the
    rows still merge in chunk order); on threads, reach() after each batch."""

    def __init__(self, progress: Progress | None, total: int, done: int):
        self.progress, self.total, self.done = progress, total, done

    def add(self, samples: int) -> None:
        self.done += samples
        report(self.progress, self.done, self.total)

    def reach(self, done: int) -> None:
        if done != self.done:
            self.add(done - self.done)


# --- chunks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunks:
    """How to run chunks: samples per full chunk, their streams, and the launch that turns them into rows."""

    size: int
    streams: Streams  # e.g. partial(chunk_states, seed) for the kernels, partial(generators, seed) for numpy
    launch: Launch
    batch: int = 32  # chunks per thread between progress reports: about 0.1 s of kernel work
    parallel: bool = True  # False: in the caller's thread only
    fold: Callable[[np.ndarray], np.ndarray] | None = None  # rows -> one row, applied as batches come in (memory)
    seconds: float = 0.0  # about what a full chunk's kernel work takes (0: unknown), so tasks can be sized on it


def run_chunks(
    chunks: Chunks, first: int, sizes: list[int], progress: Progress | None = None, total: int = 0, done: int = 0
) -> np.ndarray:
    """Rows of chunks first, first + 1, ..., in chunk order (stacked on axis 0).

    Batches exist only so that progress can be reported: the next batch is
    seeded and queued before the current one is waited for, so the threads
    never wait on the caller between batches.
    """
    executor, tally = _elsewhere(chunks), _Tally(progress, total, done)
    if executor is not None:
        batch = chunks.batch * executor.slots * executor.batch_scale(chunks.fold is not None)
    else:
        batch = chunks.batch * (threads() if chunks.parallel else 1)
    rows, pending = [], _start(chunks, first, sizes[:batch], tally)
    current = pending
    try:
        for start in range(0, len(sizes), batch):
            current, following = pending, start + batch
            if following < len(sizes):
                pending = _start(chunks, first + following, sizes[following : following + batch], tally)
            rows.extend(current)  # waits for this batch, in chunk order
            if chunks.fold is not None:
                rows = [chunks.fold(np.concatenate(rows))]
            done += sum(sizes[start:following])
            tally.reach(done)  # on threads: once a batch; an executor's tasks have already added theirs
    except BaseException:  # Ctrl-C (KeyboardInterrupt) above all: leave the pool idle, not busy with queued batches
        for queued in (current, pending):
            if hasattr(queued, "cancel"):  # the pool's _Submitted, or an executor's futures
                queued.cancel()
        raise
    return np.concatenate(rows)


def _task_count(executor: Executor, chunks: Chunks, count: int) -> int:
    """How many tasks `count` chunks make on `executor`: TASKS_PER_THREAD a slot, but fewer and longer where a
    task would last less than executor.min_task_s (a short run: its tasks would cost more than they compute).
    Tasks are consecutive slices of chunks, so this changes no bit."""
    tasks = min(count, executor.slots * TASKS_PER_THREAD)
    if chunks.seconds > 0:
        tasks = min(tasks, max(1, int(count * chunks.seconds / executor.min_task_s)))
    return tasks


def _start(chunks: Chunks, first: int, sizes: list[int], tally: _Tally) -> Iterator[np.ndarray]:
    """Start the launch over consecutive slices of these chunks; iterate over the slices' rows."""
    executor, counts = _elsewhere(chunks), np.array(sizes, dtype=np.int64)
    if executor is not None:  # each task seeds its own chunks: on many workers, seeding here would hold them up
        bounds = np.linspace(0, len(sizes), _task_count(executor, chunks, len(sizes)) + 1).astype(int)
        pieces = list(zip(bounds[:-1], bounds[1:]))
        return executor.in_order(
            [partial(_run_slice, chunks.streams, chunks.launch, first + lo, counts[lo:hi]) for lo, hi in pieces],
            lambda i: tally.add(int(counts[pieces[i][0] : pieces[i][1]].sum())),
        )
    streams = chunks.streams(first, len(sizes))
    slices = min(len(sizes), threads() * TASKS_PER_THREAD) if chunks.parallel and threads() > 1 else 1
    bounds = np.linspace(0, len(sizes), slices + 1).astype(int)
    tasks = [partial(chunks.launch, streams[lo:hi], counts[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return in_order(tasks, chunks.parallel)


# --- what a run may cost ------------------------------------------------------------------


def within_budget(settings: RunSettings, per_sample: int, default: int) -> tuple[RunSettings, tuple[str, ...]]:
    """The settings a run of outputs costing per_sample normals each may go ahead with, and notes on any cut.

    Checked before anything runs (issue 13: maxpool(n=1000000) drew 4e12 normals for an hour, unannounced):
    samples given: refused past MAX_SAMPLES normals; tol: its run may reach MAX_SAMPLES normals; neither: the
    default count, cut to DEFAULT_WORK normals (at least MIN_CUT_SAMPLES outputs) with a note that says so.
    """
    if settings.samples is not None:
        draws = settings.samples * per_sample
        if draws > MAX_SAMPLES:
            raise MomentcalcError(
                f"samples={settings.samples} outputs of {per_sample} normals each is {draws:.2g} "
                f"normal draws, more than the {MAX_SAMPLES:.2g} one run may make; use samples <= "
                f"{MAX_SAMPLES // per_sample}, or an exact method (certified, closed or quadrature)"
            )
        return settings, ()
    if settings.tol is not None:
        return replace(settings, max_samples=min(settings.max_samples, max(1, MAX_SAMPLES // per_sample))), ()
    if default * per_sample <= DEFAULT_WORK:
        return settings, ()
    cut = max(MIN_CUT_SAMPLES, DEFAULT_WORK // per_sample)
    cut += cut % 2  # antithetic pairs
    note = (
        f"{cut} samples instead of the default {default}: each draws {per_sample} normals, and the default run "
        f"would draw {default * per_sample:.2g}; give samples (or tol) for more"
    )
    return replace(settings, samples=cut), (note,)


# --- fixed runs and the tolerance loop ------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """What a kind of chunk row means: its summary (with .within(tol)) and the samples that bring all SEs to tol."""

    summarize: Callable[[np.ndarray], Any]
    samples_for: Callable[[np.ndarray, float], int]
    limit: int = MAX_SAMPLES  # the most samples a tol run may ask for
    unit: str = "samples"  # what a sample is, for the message past the limit


def drive(chunks: Chunks, kind: Rows, settings: RunSettings, default: int):
    """Run whole chunks: settings.samples (default if None), or until every standard error is <= settings.tol."""
    if settings.tol is None:
        sizes = chunk_sizes(settings.samples or default, chunks.size)
        return kind.summarize(run_chunks(chunks, 0, sizes, settings.progress, sum(sizes), 0))
    kind = replace(kind, limit=min(kind.limit, settings.max_samples))
    return _GrowingRows(chunks, kind, settings.progress).to_tolerance(settings.tol)


class _GrowingRows:
    """The rows of chunks 0, 1, ... so far, from a pilot of at least MIN_CUT_SAMPLES, extended to what tol needs."""

    def __init__(self, chunks: Chunks, kind: Rows, progress: Progress | None):
        self.chunks, self.kind, self.progress = chunks, kind, progress
        # One chunk, or more where chunks are tiny (a wide window: 2 outputs of maxpool(n=1000000) gave SE 0,
        # "within" any tol). The pilot reports no progress: its total is unknown.
        pilot = max(1, math.ceil(MIN_CUT_SAMPLES / chunks.size))
        self.rows = run_chunks(chunks, 0, [chunks.size] * pilot)

    def to_tolerance(self, tol: float):
        def need(summary) -> int:
            return self.kind.samples_for(self.rows, tol)

        return until_within(self.kind.summarize(self.rows), tol, need, self.grow, self.kind.limit, self.kind.unit)

    def grow(self, need: int):
        """Add chunks until about `need` samples are in (at least one chunk); the summary of all rows."""
        size, have = self.chunks.size, len(self.rows)
        extra = max(1, math.ceil(need / size) - have)
        more = run_chunks(self.chunks, have, [size] * extra, self.progress, (have + extra) * size, have * size)
        self.rows = np.concatenate([self.rows, more])
        if self.chunks.fold is not None:
            self.rows = self.chunks.fold(self.rows)
        return self.kind.summarize(self.rows)


def until_within(summary, tol: float, need: Callable[[Any], int], grow: Callable[[int], Any], limit: int, unit: str):
    """The tolerance loop: while summary.within(tol) fails, grow the run to need(summary) samples (at most limit)."""
    while not summary.within(tol):
        wanted = need(summary)
        if wanted > limit:
            raise MomentcalcError(
                f"tol={tol:g} would need about {wanted:.2g} {unit}, more than the {limit:.2g} "
                "allowed; use a larger tol or an exact method"
            )
        summary = grow(wanted)
    return summary

"""Monte Carlo with fused Numba kernels, reproducible to the bit.

The samples are split into chunks of about CHUNK_NORMALS normal draws
(fewer outputs per chunk for wider windows) whose boundaries depend only
on the spec and the sample count. Chunk j draws from its own SFC64 stream
(seeded with SeedSequence(seed).spawn()[j]; normals.py turns its words into
normals), slices of chunks run on numba.get_num_threads() threads in jitted
nogil batch kernels, and their rows are combined in chunk order. So the
result has the same bits on 1 thread or many, and a run with ``tol`` that
stops after m chunks equals a run of exactly those m chunks.

Pipelines with max pooling run in antithetic pairs (antithetic.py, with its
own rows and standard errors). The others sample plainly: chunk moments are
merged with the pairwise update of Chan et al. / Pebay, and standard errors
come from the delta method on the merged central moments:
SE(mean) = sqrt(m2 / N) and SE(std) = sqrt((m4 - m2^2) / N) / (2 std).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

import numba
import numpy as np

from .. import catalog
from ..errors import MomentcalcError
from ..ops import dropout as dropout_op
from ..spec import Spec
from . import NotApplicable, mc_kernels, normals
from .dispatch import CODES

CHUNK_NORMALS = 1 << 18  # about 1.5 ms of drawing: set-up per chunk costs a few percent
DEFAULT_SAMPLES = 1 << 22
MAX_SAMPLES = 1 << 36

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Program:
    mu: float
    sigma: float
    codes: np.ndarray
    params: np.ndarray
    seg: np.ndarray
    win_kind: np.ndarray
    win_n: np.ndarray

    def kernel_args(self):
        return (self.mu, self.sigma, self.codes, self.params, self.seg, self.win_kind, self.win_n)

    @property
    def normals_per_output(self) -> int:
        return int(np.prod(self.win_n)) if self.win_n.size else 1

    @property
    def antithetic(self) -> bool:
        """Runs in antithetic pairs (estimators/antithetic.py): pipelines with max pooling, where they pay."""
        return bool(np.any(self.win_kind == mc_kernels.MAX))

    @property
    def chunk(self) -> int:
        """Outputs per chunk: enough work per chunk that its set-up costs little."""
        return max(1, CHUNK_NORMALS // self.normals_per_output)


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    mean_se: float
    std_se: float
    samples: int
    grad_sq: float | None = None  # E[f'(X)^2] and its SE, for chains without window ops
    grad_sq_se: float | None = None
    notes: tuple[str, ...] = ()


def compile_program(spec: Spec, mu: float, sigma: float, norms: tuple | None = None) -> Program:
    """Flatten a spec into the arrays the kernel interprets; norms: the constants of its normalize ops, as
    quadrature.normalize_constants gives them (worked out there when not given)."""
    if norms is None and any(op.kind == catalog.NORMALIZE for op in spec.ops):
        from . import quadrature  # scipy: only pipelines with normalize need it

        norms = quadrature.normalize_constants(spec, mu, sigma)
    codes, params, seg, win_kind, win_n = [], [], [0], [], []
    for depth, op in enumerate(spec.ops):
        if op.kind == catalog.WINDOW:
            seg.append(len(codes))
            win_kind.append(_window_code(op))
            win_n.append(op.window_size)
            continue
        codes_params = _stage(op, norms[depth] if norms else None)
        codes.append(codes_params[0])
        params.append(codes_params[1:])
    seg.append(len(codes))
    return Program(
        float(mu),
        float(sigma),
        np.array(codes, dtype=np.int64),
        np.array(params, dtype=np.float64).reshape(len(codes), 2),
        np.array(seg, dtype=np.int64),
        np.array(win_kind, dtype=np.int64),
        np.array(win_n, dtype=np.int64),
    )


def _window_code(op) -> int:
    if op.info.reduction not in mc_kernels.REDUCTION_CODES:
        raise NotApplicable(f"the Monte Carlo kernels do not know the reduction {op.info.reduction!r} of {op}")
    return mc_kernels.REDUCTION_CODES[op.info.reduction]


def _stage(op, norm: tuple | None) -> tuple[int, float, float]:
    if op.kind == catalog.ELEMENTWISE:
        if op.name not in CODES:
            raise NotApplicable(f"the Monte Carlo kernels have no compiled function for {op}")
        return (CODES[op.name], *op.info.args(op))
    if op.kind == catalog.DROPOUT:
        p = op.get("p")
        return (mc_kernels.DROPOUT, p, 1.0 / dropout_op.divisor(p, op.get("scale")))
    if op.kind == catalog.NORMALIZE:
        mean, std = norm[:2]
        return (mc_kernels.AFFINE, -mean / std, 1.0 / std)
    raise NotApplicable(f"Monte Carlo does not know ops of kind {op.kind!r} ({op})")


def chunk_sizes(samples: int, chunk: int) -> list[int]:
    full, rest = divmod(samples, chunk)
    return [chunk] * full + ([rest] if rest else [])


def _chunk_bit_generator(seed: int, index: int) -> np.random.SFC64:
    # Equal to SeedSequence(seed).spawn(index + 1)[index], built directly so chunks can be added later.
    return np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(index,)))


def chunk_generator(seed: int, index: int) -> np.random.Generator:
    """Chunk j's stream as a numpy Generator, for the numpy paths (user expressions, spatial ops)."""
    return np.random.Generator(_chunk_bit_generator(seed, index))


def chunk_states(seed: int, first: int, count: int) -> np.ndarray:
    """The SFC64 states of chunks first, ..., first + count - 1, one row each: what the kernels draw from."""
    states = np.empty((count, 4), dtype=np.uint64)
    for i in range(count):
        states[i] = normals.state_of(_chunk_bit_generator(seed, first + i))
    return states


Launch = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (chunk states, chunk sizes) -> one row per chunk


def run_chunks(program: Program, seed: int, first: int, sizes: list[int], progress: Progress | None = None, total: int = 0, done: int = 0, launch: Launch | None = None) -> np.ndarray:
    """Rows of chunks first, first+1, ..., in chunk order, from `launch` (plain moments by default).

    A plain row is [n, mean, M2, M3, M4] of the output, followed for chains
    without windows by the same for the squared derivative. A batch of chunks
    is cut into slices that run on the threads (one jitted call per slice, no
    Python between its chunks); batches exist only so that progress can be
    reported.
    """
    launch = launch or _plain_launch(program)
    batch = 32 * max(1, numba.get_num_threads())  # about 0.1 s of work between progress reports
    rows = []
    states = chunk_states(seed, first, min(batch, len(sizes)))
    for start in range(0, len(sizes), batch):
        counts = np.array(sizes[start : start + batch], dtype=np.int64)
        pending = _in_threads(launch, states, counts)
        following = start + batch
        if following < len(sizes):  # seeded while the threads run this batch (the kernels release the GIL)
            states = chunk_states(seed, first + following, min(batch, len(sizes) - following))
        rows.append(pending())
        done += int(counts.sum())
        if progress is not None:
            progress(done, total)
    return np.vstack(rows)


TASKS_PER_THREAD = 4  # slices per thread: a thread slowed by a neighbour on the machine holds up less


def _in_threads(launch: Launch, states: np.ndarray, counts: np.ndarray) -> Callable[[], np.ndarray]:
    """Start launch over consecutive slices of the chunks on the threads; the function returned
    waits for their rows, in chunk order."""
    threads = max(1, numba.get_num_threads())
    if threads == 1 or len(states) == 1:
        rows = launch(states, counts)
        return lambda: rows
    bounds = np.linspace(0, len(states), min(len(states), threads * TASKS_PER_THREAD) + 1).astype(int)
    futures = [_pool(threads).submit(launch, states[lo:hi], counts[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return lambda: np.vstack([f.result() for f in futures])


@lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="momentcalc-mc")


def _plain_launch(program: Program) -> Launch:
    p = program
    if p.win_n.size == 0 and p.codes.size == 1 and p.codes[0] > 0:
        code, a, b = int(p.codes[0]), float(p.params[0, 0]), float(p.params[0, 1])
        return lambda states, counts: mc_kernels.activation_rows(states, counts, p.mu, p.sigma, code, a, b)
    if p.win_n.size == 0:
        return lambda states, counts: mc_kernels.chain_rows(states, counts, p.mu, p.sigma, p.codes, p.params)
    return lambda states, counts: mc_kernels.window_rows(states, counts, *p.kernel_args())


def merge(rows: np.ndarray) -> np.ndarray:
    """Fold chunk moments left to right with Pebay's pairwise update (Chan et al. for M2)."""
    n, mean, m2, m3, m4 = rows[0]
    for nb, mb, m2b, m3b, m4b in rows[1:]:
        na, tot = n, n + nb
        d = mb - mean
        dn = d / tot
        m4 = (m4 + m4b + d * dn**3 * na * nb * (na * na - na * nb + nb * nb)
              + 6.0 * dn * dn * (na * na * m2b + nb * nb * m2) + 4.0 * dn * (na * m3b - nb * m3))
        m3 = m3 + m3b + d * dn * dn * na * nb * (na - nb) + 3.0 * dn * (na * m2b - nb * m2)
        m2 = m2 + m2b + d * dn * na * nb
        mean = mean + dn * nb
        n = tot
    return np.array([n, mean, m2, m3, m4])


def summarize_rows(rows: np.ndarray) -> Summary:
    """The summary of chunk rows: output moments, and the squared derivative's where the rows carry them."""
    summary = summarize(merge(rows[:, :5]))
    if rows.shape[1] == 10:
        grad = summarize(merge(rows[:, 5:]))
        summary = replace(summary, grad_sq=grad.mean, grad_sq_se=grad.mean_se)
    return summary


def summarize(merged: np.ndarray) -> Summary:
    n, mean, m2, _, m4 = merged
    var = m2 / n
    std = math.sqrt(var)
    kurt_term = max(m4 / n - var * var, 0.0)
    std_se = math.sqrt(kurt_term / n) / (2.0 * std) if std > 0.0 else 0.0
    return Summary(float(mean), std, math.sqrt(var / n), std_se, int(n))


def _samples_for(merged: np.ndarray, tol: float) -> int:
    """Samples that bring both standard errors down to tol, from moments so far."""
    n, _, m2, _, m4 = merged
    var = m2 / n
    need_mean = var / tol**2
    need_std = (m4 / n - var * var) / (4.0 * var * tol**2) if var > 0.0 else 0.0
    return int(math.ceil(max(need_mean, need_std, 1.0)))


def run(program: Program, samples: int | None = None, tol: float | None = None, seed: int = 0, progress: Progress | None = None) -> Summary:
    if program.antithetic:
        from . import antithetic

        return antithetic.run(program, samples, tol, seed, progress)

    def chunk_rows(first, sizes, progress=None, total=0, done=0):
        return run_chunks(program, seed, first, sizes, progress, total, done)

    return drive(chunk_rows, program.chunk, samples, tol, progress)


ChunkRows = Callable[..., np.ndarray]  # (first, sizes, progress, total, done) -> one row per chunk


@dataclass(frozen=True)
class Rows:
    """What a kind of chunk row means: its summary, and the samples that bring both SEs to tol."""

    summarize: Callable[[np.ndarray], Summary]
    samples_for: Callable[[np.ndarray, float], int]


PLAIN_ROWS = Rows(summarize_rows, lambda rows, tol: _samples_for(merge(rows[:, :5]), tol))


def drive(chunk_rows: ChunkRows, chunk: int, samples: int | None = None, tol: float | None = None, progress: Progress | None = None, rows: Rows = PLAIN_ROWS) -> Summary:
    """Run whole chunks: a fixed number of samples, or until both standard errors are <= tol.

    chunk_rows gives the rows of chunks first, first+1, ... (plain: 5 columns,
    or 10 with the squared derivative's moments); any Monte Carlo path uses this.
    """
    if tol is None:
        sizes = chunk_sizes(samples or DEFAULT_SAMPLES, chunk)
        return rows.summarize(chunk_rows(0, sizes, progress, sum(sizes), 0))
    return _run_to_tolerance(chunk_rows, chunk, tol, progress, rows)


def _run_to_tolerance(chunk_rows: ChunkRows, chunk: int, tol: float, progress: Progress | None, kind: Rows) -> Summary:
    rows = chunk_rows(0, [chunk])  # pilot: one chunk
    while True:
        summary = kind.summarize(rows)
        if summary.mean_se <= tol and summary.std_se <= tol:
            return summary
        need = kind.samples_for(rows, tol)
        if need > MAX_SAMPLES:
            raise MomentcalcError(f"tol={tol:g} would need about {need:.2g} samples, more than the {MAX_SAMPLES:.2g} allowed; use a larger tol or an exact method")
        extra = max(1, math.ceil(need / chunk) - len(rows))
        more = chunk_rows(len(rows), [chunk] * extra, progress, (len(rows) + extra) * chunk, len(rows) * chunk)
        rows = np.vstack([rows, more])

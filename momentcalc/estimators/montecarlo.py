"""Monte Carlo with fused Numba kernels, reproducible to the bit.

The samples are split into chunks of about CHUNK_NORMALS normal draws
(fewer outputs per chunk for wider windows) whose boundaries depend only
on the spec and the sample count. driver.py runs them: chunk j draws from
its own SFC64 stream (normals.py turns its words into normals), slices of
chunks run on numba.get_num_threads() threads in jitted nogil batch kernels,
and their rows are combined in chunk order. So the result has the same bits
on 1 thread or many, and a run with ``tol`` that stops after m chunks equals
a run of exactly those m chunks.

Pipelines with max pooling run in antithetic pairs (antithetic.py, with its
own rows and standard errors). The others sample plainly: chunk moments are
merged with the pairwise update of Chan et al. / Pebay, and standard errors
come from the delta method on the merged central moments:
SE(mean) = sqrt(m2 / N) and SE(std) = sqrt((m4 - m2^2) / N) / (2 std).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from .. import catalog
from ..ops import dropout as dropout_op
from ..settings import MAX_SAMPLES, Progress, RunSettings  # noqa: F401 (MAX_SAMPLES, Progress: re-exported)
from ..spec import Spec
from . import NotApplicable, driver, mc_kernels
from .dispatch import CODES
from .driver import chunk_generator, chunk_sizes, chunk_states  # noqa: F401 (re-exported: tests)

CHUNK_NORMALS = 1 << 18  # about 1.5 ms of drawing: set-up per chunk costs a few percent
DEFAULT_SAMPLES = 1 << 22


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

    def within(self, tol: float) -> bool:
        """Both standard errors at most tol: where a tol run stops."""
        return self.mean_se <= tol and self.std_se <= tol


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


def program_chunks(program: Program, seed: int, launch: driver.Launch | None = None,
                   size: int | None = None) -> driver.Chunks:
    """The program's chunks for the driver: kernel streams of `seed`, plain moments unless another launch is given."""
    return driver.Chunks(size or program.chunk, partial(driver.chunk_states, seed), launch or _plain_launch(program))


def run_chunks(program: Program, seed: int, first: int, sizes: list[int],
               launch: driver.Launch | None = None) -> np.ndarray:
    """Rows of chunks first, first+1, ..., in chunk order, from `launch` (plain moments by default).

    A plain row is [n, mean, M2, M3, M4] of the output, followed for chains
    without windows by the same for the squared derivative.
    """
    return driver.run_chunks(program_chunks(program, seed, launch), first, sizes)


def _plain_launch(program: Program) -> driver.Launch:
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
    mean, std, mean_se, std_se = moment_stats(merged)
    return Summary(float(mean), float(std), float(mean_se), float(std_se), int(merged[0]))


def moment_stats(merged: np.ndarray) -> tuple:
    """(mean, std, SE(mean), SE(std)) of merged [n, mean, M2, M3, M4]: elementwise, so also per map position."""
    n, mean, m2, _, m4 = merged
    var = m2 / n
    std = np.sqrt(var)
    kurt = np.maximum(m4 / n - var * var, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_se = np.where(std > 0.0, np.sqrt(kurt / n) / (2.0 * std), 0.0)
    return mean, std, np.sqrt(var / n), std_se


def samples_needed(merged: np.ndarray, tol: float) -> int:
    """Samples that bring both standard errors down to tol (at every position), from the moments so far."""
    n, _, m2, _, m4 = merged
    var = m2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        need_std = np.where(var > 0.0, (m4 / n - var * var) / (4.0 * var * tol**2), 0.0)
    return int(math.ceil(max(float(np.max(var / tol**2)), float(np.max(need_std)), 1.0)))


PLAIN_ROWS = driver.Rows(summarize_rows, lambda rows, tol: samples_needed(merge(rows[:, :5]), tol))


def run(program: Program, settings: RunSettings = RunSettings()) -> Summary:
    """Plain (or, with max pooling, antithetic) Monte Carlo of the program, as settings say."""
    if program.antithetic:
        from . import antithetic

        return antithetic.run(program, settings)
    return driver.drive(program_chunks(program, settings.seed), PLAIN_ROWS, settings, DEFAULT_SAMPLES)

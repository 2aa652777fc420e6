"""Randomized quasi-Monte Carlo: scrambled Sobol points through the normal quantile.

Each output needs d standard normals (the product of the window sizes), so
one output is one point of a d-dimensional Sobol sequence mapped through
ndtri. The error comes from REPLICAS independent scramblings seeded from
SeedSequence(seed): the replicas' means are iid, so SE(mean) is their
standard deviation over sqrt(REPLICAS); SE(std) follows from the replicas'
variances by the delta method. Dropout masks, if any, are drawn by a plain
generator per replica, which keeps the replicas independent.

Points per replica are powers of two (where Sobol nets are balanced); a run
with ``tol`` doubles them, extending each replica's sequence, until both
standard errors are met.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from scipy import special

from ..errors import MomentcalcError
from . import NotApplicable, mc_kernels, normals
from .montecarlo import MAX_SAMPLES, Program, Progress, Summary, merge

REPLICAS = 16
DEFAULT_SAMPLES = 1 << 20
MAX_DIMENSION = 1024
_BLOCK = 1 << 16  # points generated at once, to bound memory


class _Replica:
    """One scrambled Sobol sequence and the merged moments of its outputs so far."""

    def __init__(self, program: Program, seed: int, index: int, dim: int):
        self.program = program
        from scipy.stats import qmc  # scipy.stats costs 0.7 s to import: only when qmc runs

        scramble = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index, 0))))
        self.sobol = qmc.Sobol(dim, scramble=True, rng=scramble)
        self.masks = normals.state_of(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(index, 1))))  # dropout masks
        self.rows = np.zeros((0, 5))

    def extend(self, count: int) -> "_Replica":
        while count > 0:
            block = min(count, _BLOCK)
            points = special.ndtri(self.sobol.random(block))
            row = mc_kernels.run_points(self.masks, points, *self.program.kernel_args())
            self.rows = np.vstack([self.rows, row])
            count -= block
        return self

    @property
    def moments(self) -> np.ndarray:
        return merge(self.rows)


def dimension(program: Program) -> int:
    d = program.normals_per_output
    if d > MAX_DIMENSION:
        raise NotApplicable(f"qmc needs {d} normals per output; it handles at most {MAX_DIMENSION}: use montecarlo")
    return d


def summarize(replicas: list[_Replica]) -> Summary:
    moments = np.array([r.moments for r in replicas])
    n, means, variances = moments[:, 0], moments[:, 1], moments[:, 2] / moments[:, 0]
    r = len(replicas)
    std = math.sqrt(variances.mean())
    mean_se = means.std(ddof=1) / math.sqrt(r)
    std_se = variances.std(ddof=1) / math.sqrt(r) / (2.0 * std) if std > 0.0 else 0.0
    return Summary(float(means.mean()), std, float(mean_se), float(std_se), int(n.sum()))


def run(program: Program, samples: int | None = None, tol: float | None = None, seed: int = 0, progress: Progress | None = None) -> Summary:
    dim = dimension(program)
    replicas = [_Replica(program, seed, i, dim) for i in range(REPLICAS)]
    per_replica = _power_of_two(max(1, (samples or (DEFAULT_SAMPLES if tol is None else 1 << 14)) // REPLICAS))
    with ThreadPoolExecutor(max_workers=max(1, numba.get_num_threads())) as pool:
        done = 0
        while True:
            list(pool.map(lambda r: r.extend(per_replica - done), replicas))
            summary = summarize(replicas)
            if progress is not None:
                progress(summary.samples, summary.samples)
            if tol is None or (summary.mean_se <= tol and summary.std_se <= tol):
                return summary
            if 2 * summary.samples > MAX_SAMPLES:
                raise MomentcalcError(f"qmc could not reach tol={tol:g} within {MAX_SAMPLES:.2g} points; use a larger tol")
            done, per_replica = per_replica, 2 * per_replica


def _power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))

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
standard errors are met (driver.until_within, with doubling as the policy).
The replicas are the tasks on the driver's thread pool.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import special

from .._lazy import lazy_module
from ..settings import MAX_SAMPLES, RunSettings
from . import NotApplicable, driver, mc_kernels, normals
from .moments import Summary, merge
from .program import Program

stats = lazy_module("scipy.stats")  # costs 0.7 s to import: only when a replica is made

REPLICAS = 16
DEFAULT_SAMPLES = 1 << 20
MAX_DIMENSION = 1024
_BLOCK = 1 << 16  # points generated at once, to bound memory


class _Replica:
    """One scrambled Sobol sequence and the merged moments of its outputs so far."""

    def __init__(self, program: Program, seed: int, index: int, dim: int):
        self.program = program

        scramble = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index, 0))))
        self.sobol = stats.qmc.Sobol(dim, scramble=True, rng=scramble)
        self.masks = normals.state_of(
            np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(index, 1)))
        )  # dropout masks
        self.rows = np.zeros((0, 5))
        self.points = 0

    def extend_to(self, points: int) -> _Replica:
        """Draw the next points of the sequence until it has `points` (in blocks, to bound memory)."""
        count, self.points = points - self.points, points
        while count > 0:
            block = min(count, _BLOCK)
            z = special.ndtri(self.sobol.random(block))
            row = mc_kernels.run_points(self.masks, z, *self.program.kernel_args())
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


def run(program: Program, settings: RunSettings = RunSettings()) -> Summary:
    """REPLICAS scrambled Sobol sequences of a power-of-two length each, doubled until within settings.tol."""
    dim = dimension(program)
    replicas = [_Replica(program, settings.seed, i, dim) for i in range(REPLICAS)]
    start = settings.samples or (DEFAULT_SAMPLES if settings.tol is None else 1 << 14)
    grow = partial(_grow, replicas, settings.progress)
    summary = grow(REPLICAS * _power_of_two(max(1, start // REPLICAS)))
    if settings.tol is None:
        return summary
    double = lambda s: 2 * s.samples  # noqa: E731 (powers of two per replica, where Sobol nets are balanced)
    return driver.until_within(summary, settings.tol, double, grow, MAX_SAMPLES, "qmc points")


def _grow(replicas: list[_Replica], progress, points: int) -> Summary:
    """Extend every replica to points / REPLICAS points, the replicas on the driver's pool; their summary."""
    list(driver.in_order([partial(r.extend_to, points // REPLICAS) for r in replicas]))
    driver.report(progress, points, points)
    return summarize(replicas)


def _power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))

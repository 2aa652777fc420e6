"""The max of n iid copies of any tracked distribution, through its CDF.

Max pooling commutes with a monotone chain; when the chain is not monotone
(gelu, silu, abs ...) or the input is a mixture (after dropout), we compute
the CDF of one input, F(y) = P(Y <= y), and integrate the max's survival
function: with c the least value Y takes,

    E[M] = c + int_c^inf (1 - F^n) dy,   E[(M - c)^2] = int_c^inf 2 (y - c)(1 - F^n) dy.

Atoms (dropped values at 0, relu's mass at 0) are jumps of F and need no
special care there. F comes from splitting each branch's chain into
monotone pieces over the base variable and inverting each piece with brentq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._lazy import lazy_module
from . import quadpack
from .tracked import QUAD, Branch, MomentsOnly, Transformed, log_ndtr, support

_GRID = 4001
optimize = lazy_module("scipy.optimize")  # brentq, minimize_scalar: only where a max is taken through a CDF


@dataclass(frozen=True)
class Piece:
    lo: float  # base-variable interval where the chain is monotone
    hi: float
    g_lo: float
    g_hi: float


class BranchCdf:
    """P(chain(mu + sigma B) <= y) for one branch, B the max of base_n standard normals."""

    def __init__(self, dist: Transformed, branch: Branch):
        self.n = dist.base_n
        self.g = lambda b: branch.value(dist.mu + dist.sigma * b)
        lo, hi = support(self.n)
        self.pieces = _monotone_pieces(self.g, lo, hi)

    def base_cdf(self, b: float) -> float:
        return math.exp(self.n * log_ndtr(b))

    def __call__(self, y: float) -> float:
        return sum(self._piece_mass(p, y) for p in self.pieces)

    def _piece_mass(self, p: Piece, y: float) -> float:
        rising = p.g_hi >= p.g_lo
        low_value, high_value = (p.g_lo, p.g_hi) if rising else (p.g_hi, p.g_lo)
        if y >= high_value:
            return self.base_cdf(p.hi) - self.base_cdf(p.lo)
        if y < low_value:
            return 0.0
        t = optimize.brentq(lambda b: self.g(b) - y, p.lo, p.hi, xtol=1e-15, rtol=1e-15)
        return self.base_cdf(t) - self.base_cdf(p.lo) if rising else self.base_cdf(p.hi) - self.base_cdf(t)

    @property
    def turning_values(self) -> list[float]:
        return [p.g_lo for p in self.pieces] + [self.pieces[-1].g_hi]


def _monotone_pieces(g, lo: float, hi: float) -> list[Piece]:
    """Split [lo, hi] where g turns, found on a grid and refined by bounded minimization."""
    grid = np.linspace(lo, hi, _GRID)
    values = np.array([g(b) for b in grid])
    slope = np.sign(np.diff(values))
    cuts = [lo]
    for i in range(1, len(slope)):
        if slope[i] * slope[i - 1] < 0:  # a strict turn between grid[i-1] and grid[i+1]
            sign = 1.0 if slope[i - 1] < 0 else -1.0  # a minimum or a maximum
            found = optimize.minimize_scalar(
                lambda b, sign=sign: sign * g(b),
                bounds=(grid[i - 1], grid[i + 1]),
                method="bounded",
                options={"xatol": 1e-13},
            )
            cuts.append(float(found.x))
    cuts.append(hi)
    return [Piece(a, c, g(a), g(c)) for a, c in zip(cuts[:-1], cuts[1:])]


def max_moments(dist: Transformed, n: int) -> MomentsOnly:
    """Mean and variance of the max of n iid copies of `dist`, with the integration error."""
    cdfs = [(b.weight, BranchCdf(dist, b)) for b in dist.branches]

    def cdf(y: float) -> float:
        mass = sum(w * f(y) for w, f in cdfs) + sum(w for w, v in dist.atoms if v <= y)
        return min(mass, 1.0)

    marks = sorted(set([v for _, f in cdfs for v in f.turning_values] + [v for _, v in dist.atoms]))
    c, top = marks[0], marks[-1]
    cuts = sorted(set(np.linspace(c, top, 33).tolist() + marks))
    survival = lambda y: 1.0 - cdf(y) ** n  # noqa: E731
    first = _integrate(survival, cuts)
    mean = c + first[0]
    # The variance about the mean, E[(M - m)^2] = int_c^m 2 (m - y) F^n dy + int_m^top 2 (y - m) (1 - F^n) dy:
    # two positive integrals, where E[(M - c)^2] - (m - c)^2 would cancel when m - c >> std.
    below = [y for y in cuts if y < mean] + [mean]
    above = [mean] + [y for y in cuts if y > mean]
    low = _integrate(lambda y: 2.0 * (mean - y) * cdf(y) ** n, below) if mean > c else (0.0, 0.0)
    high = _integrate(lambda y: 2.0 * (y - mean) * survival(y), above) if mean < top else (0.0, 0.0)
    var = max(low[0] + high[0], 0.0)
    # Roundoff: 16 eps of the values that the integrals add up (|c|, |top| and the spread), in the mean and,
    # through the 2 (y - m) factor, in the variance.
    eta = 16.0 * 2.0**-52 * (abs(c) + abs(top) + (top - c))
    mean_err = first[1] + eta
    return MomentsOnly(mean, var, mean_err + low[1] + high[1] + 2.0 * math.sqrt(var) * mean_err + mean_err**2)


def _integrate(f, cuts) -> tuple[float, float]:
    total = err = 0.0
    # Roundoff near 1e-15 is expected here; the error bound we return says how good it is.
    for a, b in zip(cuts[:-1], cuts[1:]):
        value, bound = quadpack.quad(f, a, b, QUAD["epsabs"], QUAD["epsrel"], QUAD["limit"])
        total += value
        err += bound
    return total, err

"""Distributions that quadrature can integrate against, and the integration itself.

``Transformed``: Y = chain(mu + sigma * B), B the max of ``base_n`` iid
standard normals (B ~ N(0, 1) when base_n == 1), with branches (weights
sharing the same B, after dropout) and atoms (e.g. dropped values at 0).
``MomentsOnly``: only E[Y] and E[Y^2] are known (after averaging a
non-Gaussian input). quadrature.py propagates these through ops;
max_by_cdf.py takes the max of copies of any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, special

from . import NotApplicable

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TAIL_LOG = 80.0  # integrate where the density is above exp(-80) of its peak
PIECES = 16
QUAD = dict(epsabs=1e-15, epsrel=1e-13, limit=200)


@dataclass(frozen=True)
class Stage:
    f: Callable[[float], float]
    kinks: tuple[float, ...] = ()  # where f has a kink or jump, in f's input
    monotone: bool = True  # non-decreasing
    df: Callable[[float], float] | None = None  # f', for the backward constant E[f'(X)^2]


@dataclass(frozen=True)
class Branch:
    weight: float
    chain: tuple[Stage, ...] = ()

    def value(self, x: float) -> float:
        for stage in self.chain:
            x = stage.f(x)
        return x


@dataclass(frozen=True)
class Transformed:
    mu: float
    sigma: float
    base_n: int = 1
    branches: tuple[Branch, ...] = (Branch(1.0),)
    atoms: tuple[tuple[float, float], ...] = ()  # (weight, value)


@dataclass(frozen=True)
class MomentsOnly:
    mean: float
    var: float
    err: float


@dataclass(frozen=True)
class Integral:
    value: float
    err: float


# --- the base density -------------------------------------------------------


def log_density(b: float, n: int) -> float:
    log_phi = -0.5 * b * b - _LOG_SQRT_2PI
    if n == 1:
        return log_phi
    return math.log(n) + log_phi + (n - 1) * float(special.log_ndtr(b))


def support(n: int) -> tuple[float, float]:
    """Where the density of the max of n standard normals is not negligible."""
    grid = np.linspace(-40.0, 40.0, 8001)
    log_pdf = -0.5 * grid**2 + (n - 1) * special.log_ndtr(grid)
    keep = np.nonzero(log_pdf > log_pdf.max() - _TAIL_LOG)[0]
    step = grid[1] - grid[0]
    return float(grid[keep[0]] - step), float(grid[keep[-1]] + step)


def kinks_in_base(dist: Transformed, branch: Branch, lo: float, hi: float) -> list[float]:
    """Base points b where some stage of the chain meets one of its kinks."""
    grid = np.linspace(lo, hi, 1601)
    points: list[float] = []
    for depth, stage in enumerate(branch.chain):
        prefix = Branch(1.0, branch.chain[:depth])
        for kink in stage.kinks:
            g = lambda b, prefix=prefix, kink=kink: prefix.value(dist.mu + dist.sigma * b) - kink  # noqa: E731
            values = np.array([g(b) for b in grid])
            points += _crossings(g, grid, values)
    return sorted(set(p for p in points if lo < p < hi))


def _crossings(g, grid, values) -> list[float]:
    found = []
    sign = np.sign(values)
    for i in range(len(grid) - 1):
        if sign[i] == 0.0 and (i == 0 or sign[i - 1] != 0.0 or sign[i + 1] != 0.0):
            found.append(float(grid[i]))  # an edge of a flat run at the kink, e.g. relu(relu(x))
        elif sign[i] * sign[i + 1] < 0.0:
            found.append(optimize.brentq(g, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-15))
    return found


def expect(dist: Transformed, h: Callable[[float], float]) -> Integral:
    """E[h(Y)] with the summed error bounds of every piece."""
    lo, hi = support(dist.base_n)
    total, err = 0.0, 0.0
    for branch in dist.branches:
        cuts = sorted(set(np.linspace(lo, hi, PIECES + 1).tolist() + kinks_in_base(dist, branch, lo, hi)))

        def integrand(b, branch=branch):
            return h(branch.value(dist.mu + dist.sigma * b)) * math.exp(log_density(b, dist.base_n))

        for a, c in zip(cuts[:-1], cuts[1:]):
            value, bound = integrate.quad(integrand, a, c, **QUAD)
            total += branch.weight * value
            err += branch.weight * bound
    for weight, value in dist.atoms:
        total += weight * h(value)
    return Integral(total, err)


def moments(dist) -> tuple[float, float, float, float]:
    """(mean, var, mean error bound, var error bound) of a tracked distribution."""
    if isinstance(dist, MomentsOnly):
        return dist.mean, dist.var, dist.err, dist.err
    first = expect(dist, lambda y: y)
    # The variance as a central integral, not E[Y^2] - E[Y]^2: no cancellation when |mean| >> std.
    second = expect(dist, lambda y: (y - first.value) ** 2)
    return first.value, max(second.value, 0.0), first.err, second.err


def grad_sq(dist) -> Integral:
    """E[(product of the stage derivatives)^2] over a tracked distribution; dropped values (atoms) carry none."""
    if not isinstance(dist, Transformed) or dist.base_n != 1:
        raise NotApplicable("E[f'(X)^2] by quadrature needs a chain without window ops")
    lo, hi = support(1)
    total, err = 0.0, 0.0
    for branch in dist.branches:
        if any(stage.df is None for stage in branch.chain):
            raise NotApplicable("a stage of this chain has no derivative")
        cuts = sorted(set(np.linspace(lo, hi, PIECES + 1).tolist() + kinks_in_base(dist, branch, lo, hi)))

        def integrand(b, chain=branch.chain):
            x, g = dist.mu + dist.sigma * b, 1.0
            for stage in chain:
                g *= stage.df(x)
                x = stage.f(x)
            return g * g * math.exp(log_density(b, 1))

        for a, c in zip(cuts[:-1], cuts[1:]):
            value, bound = integrate.quad(integrand, a, c, **QUAD)
            total += branch.weight * value
            err += branch.weight * bound
    return Integral(total, err)

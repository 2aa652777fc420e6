"""Exact moments by numerical integration (scipy.integrate.quad).

The output of a pipeline prefix is tracked as a distribution we can
integrate against:

* ``Transformed``: Y = chain(mu + sigma * B), where B is the max of
  ``base_n`` iid standard normals (B ~ N(0, 1) when base_n == 1) and
  chain is a list of elementwise stages. Dropout turns it into a mixture:
  branches with weights sharing the same B, plus atoms (e.g. dropped
  values at 0).
* ``MomentsOnly``: only E[Y] and E[Y^2] are known (after averaging a
  non-Gaussian input); average pooling, dropout and normalize still apply.

Max pooling after a monotone non-decreasing chain commutes with it:
max_i g(X_i) = g(max_i X_i), so B becomes the max of n * base_n normals,
whose density n * phi * Phi^(n-1) is evaluated in logs (log_ndtr) so that
global pooling over 10,000 values works. Any other input to a max goes
through its numerically computed CDF (max_by_cdf.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy import integrate, optimize, special

from .. import catalog
from ..ops import dropout as dropout_op
from ..spec import Op, Spec
from . import NotApplicable

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TAIL_LOG = 80.0  # integrate where the density is above exp(-80) of its peak
_PIECES = 16
_QUAD = dict(epsabs=1e-15, epsrel=1e-13, limit=200)


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


def _log_density(b: float, n: int) -> float:
    log_phi = -0.5 * b * b - _LOG_SQRT_2PI
    if n == 1:
        return log_phi
    return math.log(n) + log_phi + (n - 1) * float(special.log_ndtr(b))


def _support(n: int) -> tuple[float, float]:
    """Where the density of the max of n standard normals is not negligible."""
    grid = np.linspace(-40.0, 40.0, 8001)
    log_pdf = -0.5 * grid**2 + (n - 1) * special.log_ndtr(grid)
    keep = np.nonzero(log_pdf > log_pdf.max() - _TAIL_LOG)[0]
    step = grid[1] - grid[0]
    return float(grid[keep[0]] - step), float(grid[keep[-1]] + step)


def _kinks_in_base(dist: Transformed, branch: Branch, lo: float, hi: float) -> list[float]:
    """Base points b where some stage of the chain meets one of its kinks."""
    grid = np.linspace(lo, hi, 1601)
    points: list[float] = []
    for depth, stage in enumerate(branch.chain):
        prefix = Branch(1.0, branch.chain[:depth])
        for kink in stage.kinks:
            g = lambda b: prefix.value(dist.mu + dist.sigma * b) - kink  # noqa: E731
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
    lo, hi = _support(dist.base_n)
    total, err = 0.0, 0.0
    for branch in dist.branches:
        cuts = sorted(set(np.linspace(lo, hi, _PIECES + 1).tolist() + _kinks_in_base(dist, branch, lo, hi)))

        def integrand(b, branch=branch):
            return h(branch.value(dist.mu + dist.sigma * b)) * math.exp(_log_density(b, dist.base_n))

        for a, c in zip(cuts[:-1], cuts[1:]):
            value, bound = integrate.quad(integrand, a, c, **_QUAD)
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


# --- propagating through ops ---------------------------------------------------


def _map_chain(dist, stage: Stage):
    branches = tuple(replace(b, chain=b.chain + (stage,)) for b in dist.branches)
    atoms = tuple((w, stage.f(v)) for w, v in dist.atoms)
    return replace(dist, branches=branches, atoms=atoms)


def _affine(dist, shift: float, scale: float):
    if isinstance(dist, MomentsOnly):
        return MomentsOnly((dist.mean - shift) * scale, dist.var * scale * scale, dist.err * scale * scale)
    return _map_chain(dist, Stage(lambda x: (x - shift) * scale, df=lambda x: scale))


def _elementwise(dist, op: Op):
    if isinstance(dist, MomentsOnly):
        raise NotApplicable(f"{op} after an average of non-Gaussian values has no exact method here")
    info = op.info
    if info.vectorized is not None:
        from .. import userfn

        return _map_chain(dist, userfn.expr_stage(op.get("f")))
    if info.f is None or info.df is None:
        raise NotApplicable(f"quadrature needs a scalar function and derivative of {op}; it has none")
    a, b = info.args(op)
    f, df = info.f, info.df
    stage = Stage(lambda x: f(x, a, b), tuple(info.kinks(a, b)), info.monotone, lambda x: df(x, a, b))
    return _map_chain(dist, stage)


def _dropout(dist, op: Op):
    p, scale = op.get("p"), op.get("scale")
    c = dropout_op.divisor(p, scale)
    if isinstance(dist, MomentsOnly):
        mean, second = dropout_op.moments_after(p, scale, dist.mean, dist.var + dist.mean**2)
        return MomentsOnly(mean, second - mean * mean, dist.err)
    kept = _map_chain(dist, Stage(lambda x: x / c, df=lambda x: 1.0 / c))
    branches = tuple(replace(b, weight=b.weight * p) for b in kept.branches)
    dropped = ((1.0 - p, 0.0),) if p < 1.0 else ()
    atoms = tuple((w * p, v) for w, v in kept.atoms) + dropped
    return replace(kept, branches=branches, atoms=atoms)


def _window(dist, op: Op):
    n = op.window_size
    reduction = op.info.reduction
    if reduction not in (catalog.MAX, catalog.MEAN):
        raise NotApplicable(f"quadrature does not know the reduction {reduction!r} of {op}")
    if reduction == catalog.MAX:
        if n == 1:
            return dist
        if isinstance(dist, Transformed) and _is_monotone_single(dist):
            return replace(dist, base_n=dist.base_n * n)
        if isinstance(dist, MomentsOnly):
            raise NotApplicable(f"{op} after an average of non-Gaussian values has no exact method here")
        from .max_by_cdf import max_moments  # imports this module

        return max_moments(dist, n)
    if isinstance(dist, Transformed) and dist.base_n == 1 and _is_monotone_single(dist) and not dist.branches[0].chain:
        return replace(dist, sigma=dist.sigma / math.sqrt(n))  # the mean of normals is normal
    mean, var, mean_err, var_err = moments(dist)
    return MomentsOnly(mean, var / n, max(mean_err, var_err / n))


def _is_monotone_single(dist: Transformed) -> bool:
    return not dist.atoms and len(dist.branches) == 1 and all(s.monotone for s in dist.branches[0].chain)


def propagate(spec: Spec, mu: float, sigma: float):
    """The tracked distribution of the spec's output for X ~ N(mu, sigma^2)."""
    dist = Transformed(mu, sigma)
    for op in spec.ops:
        kind = op.kind
        if kind == catalog.ELEMENTWISE:
            dist = _elementwise(dist, op)
        elif kind == catalog.DROPOUT:
            dist = _dropout(dist, op)
        elif kind == catalog.WINDOW:
            dist = _window(dist, op)
        elif kind == catalog.NORMALIZE:
            mean, var, _, _ = moments(dist)
            dist = _affine(dist, mean, 1.0 / math.sqrt(var))
        else:
            raise NotApplicable(f"quadrature does not know ops of kind {kind!r} ({op})")
    return dist


def estimate_moments(spec: Spec, mu: float, sigma: float) -> tuple[float, float, float, float]:
    """(mean, std, mean error bound, std error bound)."""
    mean, var, mean_err, var_err = moments(propagate(spec, mu, sigma))
    std = math.sqrt(var)
    std_err = var_err / (2.0 * std) if std > 0.0 else math.sqrt(var_err)
    return mean, std, mean_err, std_err

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
from functools import lru_cache

import numpy as np
from scipy import special

from .._lazy import lazy_module
from . import NotApplicable, max_normal, quadpack

optimize = lazy_module("scipy.optimize")  # brentq: only where a chain's kinks lie past its first stage

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TAIL_LOG = 80.0  # integrate where the density is above exp(-80) of its peak
_REACH = 37.5  # a kink beyond the support but within this many base units still gets its tail integrated
PIECES = 16
QUAD = dict(epsabs=1e-15, epsrel=1e-13, limit=200)
_EPS = 2.0**-52
# Where an activation changes character, in its input: the features of x * sigmoid(x), tanh, softplus(beta) ...
# lie between 1e-3 and 1e3 in scale, softsign's 1 / x tail at every scale up to the domain's 1e6. Each that falls
# inside the integration range becomes a breakpoint, so that at sigma = 1e4 the window |x| < 40 (width 0.008 in
# the base coordinate) is resolved, not sampled past.
FEATURES = (0.0,) + tuple(
    sign * v
    for v in (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4, 1e5, 1e6)
    for sign in (-1.0, 1.0)
)


@dataclass(frozen=True)
class Stage:
    f: Callable[[float], float]
    kinks: tuple[float, ...] = ()  # where f has a kink or jump, in f's input
    monotone: bool = True  # non-decreasing
    df: Callable[[float], float] | None = None  # f', for the backward constant E[f'(X)^2]
    features: tuple[float, ...] = ()  # where f changes scale (not kinks), in f's input: breakpoints only


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


def log_ndtr(b: float) -> float:
    """log Phi(b) for a float, as scipy.special.log_ndtr computes it (log of 0.5 erfc(-b / sqrt 2), log1p of the
    upper tail above 0, its asymptotic series far below), on the math module: scipy's ufunc on one float costs
    about 1 us, most of a maxpool(n) integrand's time. tests/test_quadrature_speed.py holds it to mpmath."""
    if b > 0.0:
        return math.log1p(-0.5 * math.erfc(b * _SQRT_HALF))
    if b > -30.0:  # erfc(21) is 1e-194: far from underflow, relative accuracy as scipy's (cephes's) ndtr
        return math.log(0.5 * math.erfc(-b * _SQRT_HALF))
    return float(special.log_ndtr(b))


_SQRT_HALF = math.sqrt(0.5)


def log_density(b: float, n: int) -> float:
    log_phi = -0.5 * b * b - _LOG_SQRT_2PI
    if n == 1:
        return log_phi
    return math.log(n) + log_phi + (n - 1) * log_ndtr(b)


@lru_cache(maxsize=16)
def density(n: int) -> Callable[[float], float]:
    """b -> exp(log_density(b, n)), remembered for n > 1: the passes of one estimate over the same cuts (the rough
    scale, the integral, the input's rounding, the second moment) evaluate QUADPACK's same nodes, and log Phi was
    most of their time. The same values, bit for bit, as computing each afresh."""
    if n == 1:
        return lambda b: math.exp(-0.5 * b * b - _LOG_SQRT_2PI)
    seen: dict[float, float] = {}

    def at(b: float) -> float:
        found = seen.get(b)
        if found is None:
            if len(seen) >= _REMEMBERED:
                seen.clear()
            found = seen[b] = math.exp(log_density(b, n))
        return found

    return at


_REMEMBERED = 1 << 16  # values per n; a few estimates' worth


@lru_cache(maxsize=64)
def support(n: int) -> tuple[float, float]:
    """Where the density of the max of n standard normals is not negligible."""
    grid = np.linspace(-40.0, 40.0, 8001)
    log_pdf = -0.5 * grid**2 + (n - 1) * special.log_ndtr(grid)
    keep = np.nonzero(log_pdf > log_pdf.max() - _TAIL_LOG)[0]
    step = grid[1] - grid[0]
    return float(grid[keep[0]] - step), float(grid[keep[-1]] + step)


def kinks_in_base(dist: Transformed, branch: Branch, lo: float, hi: float, features: bool = False) -> list[float]:
    """Base points b in (lo, hi) where some stage of the chain meets one of its kinks (and features, if asked)."""
    points: list[float] = []
    grid = values = None
    reached = 0  # values: the grid's after the first `reached` stages, advanced one stage at a time (linear, not n^2)
    for depth, stage in enumerate(branch.chain):
        marks = stage.kinks + (stage.features if features else ())
        if not marks:
            continue
        if depth == 0:  # the stage's input is mu + sigma b itself
            points += [(m - dist.mu) / dist.sigma for m in marks]
            continue
        prefix = Branch(1.0, branch.chain[:depth])
        if grid is None:
            grid = np.linspace(lo, hi, 1601)
            values = [dist.mu + dist.sigma * b for b in grid]
        for step in branch.chain[reached:depth]:
            values = [step.f(x) for x in values]
        reached = depth
        inputs = np.array(values)
        for mark in marks:
            g = lambda b, prefix=prefix, mark=mark: prefix.value(dist.mu + dist.sigma * b) - mark  # noqa: E731
            points += _crossings(g, grid, inputs - mark)
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


def _cuts(dist: Transformed, branch: Branch, n: int) -> list[float]:
    """Breakpoints in the base coordinate: an even grid over the support, the kinks and the features.

    A kink beyond the support (relu at mu = -30: the kink at b = 30) carries all that is not constant: the range
    grows to take in its tail, out to where the density has fallen by another exp(-80).
    """
    lo, hi = support(n)
    reach = kinks_in_base(dist, branch, -_REACH, _REACH)
    if reach and reach[-1] > hi:
        hi = min(math.sqrt(reach[-1] ** 2 + 2.0 * _TAIL_LOG), _REACH + 1.0)
    if reach and reach[0] < lo:
        lo = max(-math.sqrt(reach[0] ** 2 + 2.0 * _TAIL_LOG), -_REACH - 1.0)
    inner = kinks_in_base(dist, branch, lo, hi, features=True)
    return sorted(set(np.linspace(*support(n), PIECES + 1).tolist() + [lo, hi] + inner))


@lru_cache(maxsize=64)
def _center(n: int) -> float:
    """The median of the max of n standard normals."""
    return float(special.ndtri(0.5 ** (1.0 / n)))


def _quad_pieces(integrand, cuts: list[float], epsabs: float) -> tuple[float, float]:
    total = err = 0.0
    # A piece that cannot reach the tolerance says so in its error bound, which is what we report.
    for a, c in zip(cuts[:-1], cuts[1:]):
        value, bound = quadpack.quad(integrand, a, c, epsabs, QUAD["epsrel"], QUAD["limit"])
        total += value
        err += bound
    return total, err


def _integrate(integrand, cuts: list[float]) -> Integral:
    """The integral over the pieces, with a bound that adds quad's own, the difference from the same integral on
    pieces half as wide (a second resolution), and roundoff: 16 eps times the integral of |integrand|, plus
    3 b^2 eps times it, the rounding of the density's exponent -b^2 / 2 (1e-13 relative at b = 30)."""
    size, pieces = _rough_abs(integrand, cuts)
    # int 3 b^2 |integrand| <= the sum over pieces of 3 max(a^2, c^2) int_a^c |integrand|: a bound from the pass
    # above, where a second pass over 3 b^2 |integrand| cost a third of the whole integral's time.
    amplified = sum(3.0 * max(a * a, c * c) * part for (a, c), part in zip(zip(cuts[:-1], cuts[1:]), pieces))
    epsabs = max(_EPS * size * 1e-2, 1e-300)
    coarse, _ = _quad_pieces(integrand, cuts, epsabs)
    fine_cuts = sorted(set(cuts + [0.5 * (a + c) for a, c in zip(cuts[:-1], cuts[1:])]))
    fine, bound = _quad_pieces(integrand, fine_cuts, epsabs)
    # Never 0: an integral is not exact by construction, and what lies below the subnormals is still there.
    return Integral(fine, max(bound + abs(fine - coarse) + _EPS * (16.0 * size + amplified), _TINY))


def _rough_abs(integrand, cuts: list[float]) -> tuple[float, list[float]]:
    """int |integrand| to three digits: the scale for tolerances and roundoff; and its part on each piece."""
    parts = [quadpack.quad(lambda b: abs(integrand(b)), a, c, 0.0, 1e-3, 50)[0] for a, c in zip(cuts[:-1], cuts[1:])]
    return sum(parts), parts


def expect(dist: Transformed, h: Callable[[float], float], center: bool = False, with_input: bool = False) -> Integral:
    """E[h(Y)] with the summed error bounds of every branch.

    center: integrate h(Y) - h(Y at the median of B) and add that value back, so that a large |E[h(Y)]| costs
    no digits to the integrator (the bound then carries 16 eps of the added value). with_input: the roundoff
    bound also covers the rounding of the input mu + sigma b (eps |x| |dh/dx|, with dh/dx through the chain's
    derivatives; 8 eps (|mu| + |sigma b|) where a stage has none).
    """
    total, err = 0.0, 0.0
    weight = density(dist.base_n)
    for branch in dist.branches:
        cuts = _cuts(dist, branch, dist.base_n)
        shift = h(branch.value(dist.mu + dist.sigma * _center(dist.base_n))) if center else 0.0

        # The same arithmetic as h(branch.value(mu + sigma b)), with fewer calls where the chain is empty (a max of
        # normals): quadrature spends most of its time in these calls.
        value, mu, sigma = (branch.value if branch.chain else None), dist.mu, dist.sigma
        if value is None:

            def integrand(b, mu=mu, sigma=sigma, shift=shift):
                return (h(mu + sigma * b) - shift) * weight(b)

        else:

            def integrand(b, value=value, mu=mu, sigma=sigma, shift=shift):
                return (h(value(mu + sigma * b)) - shift) * weight(b)

        found = _integrate(integrand, cuts)
        total += branch.weight * (found.value + shift)
        err += branch.weight * (found.err + 16.0 * _EPS * abs(shift))
        err += branch.weight * _truncation(
            lambda b, branch=branch, shift=shift: h(branch.value(dist.mu + dist.sigma * b)) - shift, cuts, dist.base_n
        )
        if with_input:
            err += branch.weight * 16.0 * _EPS * _input_rounding(dist, branch, cuts)
    for weight, value in dist.atoms:
        total += weight * h(value)
    return Integral(total, err)


def _truncation(h, cuts: list[float], n: int) -> float:
    """A bound on what the integral leaves out beyond its range: the base mass there times the largest |h| seen at
    the edge, halfway out and at b = +-38; beyond 38 (where the density underflows, but h need not be 0: relu at
    mu = -50 has its kink at b = 50) unit steps out to _FAR, each its mass times the larger |h| at its ends."""
    out = 0.0
    for edge, far in ((cuts[0], -38.0), (cuts[-1], 38.0)):
        if abs(edge) < abs(far):
            out += _tail_part(h, n, edge, far, (edge, 0.5 * (edge + far), far))
        side = math.copysign(1.0, far)
        start = max(abs(edge), abs(far))
        for k in range(int(math.ceil(start)), _FAR):
            out += _tail_part(h, n, side * k, side * _FAR, (side * k, side * (k + 1)))
    return out


_FAR = 64  # beyond 64 the tail's mass (exp(-2048)) is below any double times any |h| of the domain


def _tail_part(h, n: int, edge: float, far: float, points) -> float:
    """The base mass beyond edge (towards far) times the largest |h| at points; a positive part too small for a
    double counts as the smallest subnormal, so that a bound never claims 0 for what is only tiny."""
    # P(B < edge) = Phi(edge)^n; P(B > edge) <= n Q(edge)
    log_mass = n * log_ndtr(edge) if far < 0 else math.log(n) + log_ndtr(-edge)
    sizes = []
    for b in points:
        try:
            sizes.append(abs(h(b)))
        except (OverflowError, ValueError, ZeroDivisionError):
            sizes.append(math.inf)
    size = max(sizes)
    if size == 0.0:
        return 0.0
    if math.isinf(size) or math.isnan(size):
        return math.inf
    # 2^-20 of margin: log_ndtr and exp round, and the mass can be the whole truth (relu's E[f'^2] at mu = -38).
    return max(math.exp(log_mass + math.log(size)) * (1.0 + 2.0**-20), _TINY)


_TINY = 2.0**-1074


def _input_rounding(dist: Transformed, branch: Branch, cuts: list[float]) -> float:
    """int (|mu| + |sigma b|) |d chain / dx| density db, x = mu + sigma b: how far rounding x moves the integral
    (over eps)."""
    if any(stage.df is None for stage in branch.chain):
        return abs(dist.mu) + 8.0 * abs(dist.sigma)
    weight = density(dist.base_n)

    def slope(b):
        # x = mu + sigma b is rounded relative to its terms, not to x: near a kink at mu = -30 that is 30 eps
        # on an x of 1e-2.
        x = dist.mu + dist.sigma * b
        g, y = 1.0, x
        for stage in branch.chain:
            g *= stage.df(y)
            y = stage.f(y)
        return (abs(dist.mu) + abs(dist.sigma * b)) * abs(g) * weight(b)

    return _rough_abs(slope, cuts)[0]


def moments(dist) -> tuple[float, float, float, float]:
    """(mean, var, mean error bound, var error bound) of a tracked distribution."""
    mean, std, mean_err, std_err = std_moments(dist)
    return mean, std * std, mean_err, std_err * (2.0 * std + std_err)


def std_moments(dist) -> tuple[float, float, float, float]:
    """(mean, std, mean error bound, std error bound) of a tracked distribution.

    The variance is a central integral, not E[Y^2] - E[Y]^2 (no cancellation when |mean| >> std), of
    ((y - mean) / scale)^2 with scale a power of two near the largest |y - mean| at the breakpoints, so that
    it neither underflows (gelu at mu = -30: std 4e-201) nor overflows.
    """
    if isinstance(dist, MomentsOnly):
        std = math.sqrt(dist.var)
        return dist.mean, std, dist.err, _sqrt_err(std, dist.err)
    if _plain_max(dist):
        return max_normal.std_moments(dist.mu, dist.sigma, dist.base_n)
    first = expect(dist, lambda y: y, center=True, with_input=True)
    m = first.value
    spread = [abs(v - m) for _, v in dist.atoms]
    for branch in dist.branches:
        for b in _cuts(dist, branch, dist.base_n):
            spread.append(abs(branch.value(dist.mu + dist.sigma * b) - m))
    spread = [v for v in spread if math.isfinite(v) and v > 0.0]
    scale = 2.0 ** math.frexp(max(spread))[1] if spread else 1.0
    second = expect(dist, lambda y: ((y - m) / scale) ** 2)
    std = scale * math.sqrt(max(second.value, 0.0))
    # Rounding each value y by eta (the mean's roundoff, which covers the input's) moves the std by up to eta;
    # the error of the mean itself moves a central second moment only to second order (+ mean_err^2).
    e = second.err + (first.err / scale) ** 2
    return m, std, first.err, scale * _sqrt_err(std / scale, e) + first.err


def _plain_max(dist: Transformed) -> bool:
    """mu + sigma B and nothing else, B the max of two or more normals: max_normal.py's vectorised rule."""
    plain = not dist.atoms and len(dist.branches) == 1 and dist.branches[0] == Branch(1.0)
    return plain and dist.base_n > 1 and dist.sigma != 0.0 and math.isfinite(dist.mu) and math.isfinite(dist.sigma)


def _smooth_rounding(dist: Transformed, h, cuts: list[float]) -> float:
    """int (|mu| + |sigma b|) |dh/dx| density db (over eps), dh/dx by central differences in b: how far rounding
    x = mu + sigma b moves the integral of a smooth h (sigmoid's f'^2 at N(1000, 1e12): 5e-14 of it)."""
    step = 1e-4 * min(1.0, 1.0 / abs(dist.sigma))

    def slope(b):
        x_size = abs(dist.mu) + abs(dist.sigma * b)
        return x_size * abs(h(b + step) - h(b - step)) / (2.0 * step * abs(dist.sigma)) * math.exp(log_density(b, 1))

    return _rough_abs(slope, cuts)[0]


def _kink_rounding(dist: Transformed, branch: Branch, h) -> float:
    """How far rounding moves the integral of h where h jumps: at each kink b_k = (k - mu) / sigma, rounded by up to
    2 eps (|k| + |mu|) / sigma, the jump of h times the density there. f'^2 jumps at every kink of f; where the
    kinks lie 2e-6 sigma apart around 0.001 sigma (hardtanh at N(1000, 1e12)) that is 500 eps of the result."""
    out = 0.0
    for b in kinks_in_base(dist, branch, -_REACH, _REACH):
        step = 1e-9 * max(1.0, abs(b))
        try:
            jump = abs(h(b + step) - h(b - step))
        except (OverflowError, ValueError, ZeroDivisionError):
            return math.inf
        x = dist.mu + dist.sigma * b
        out += jump * math.exp(log_density(b, 1)) * 2.0 * _EPS * (abs(x) + abs(dist.mu)) / abs(dist.sigma)
    return out


def _sqrt_err(root: float, e: float) -> float:
    """|sqrt(v + e) - sqrt(v)| <= min(e / (2 sqrt v), sqrt e) for root = sqrt(v)."""
    return min(e / (2.0 * root), math.sqrt(e)) if root > 0.0 else math.sqrt(e)


def grad_sq(dist) -> Integral:
    """E[(product of the stage derivatives)^2] over a tracked distribution; dropped values (atoms) carry none."""
    if not isinstance(dist, Transformed) or dist.base_n != 1:
        raise NotApplicable("E[f'(X)^2] by quadrature needs a chain without window ops")
    total, err = 0.0, 0.0
    for branch in dist.branches:
        if any(stage.df is None for stage in branch.chain):
            raise NotApplicable("a stage of this chain has no derivative")
        cuts = _cuts(dist, branch, 1)

        def slope_sq(b, chain=branch.chain):
            x, g = dist.mu + dist.sigma * b, 1.0
            for stage in chain:
                g *= stage.df(x)
                x = stage.f(x)
            return g * g

        found = _integrate(lambda b, h=slope_sq: h(b) * math.exp(log_density(b, 1)), cuts)
        total += branch.weight * found.value
        err += branch.weight * (
            found.err
            + _truncation(slope_sq, cuts, 1)
            + _kink_rounding(dist, branch, slope_sq)
            + 2.0 * _EPS * _smooth_rounding(dist, slope_sq, cuts)
        )
    return Integral(total, err)

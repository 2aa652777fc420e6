"""E[h(Y)] as a ball, for Y = g(mu + s B) (a Chain): acb.integral over |b| <= L, where the integrand is evaluated
on complex balls piece by piece, plus a PROVEN bound on the tails |b| > L from the ops' declared growth; L grows
until the tail is small next to the value. Every integrand evaluation counts against a budget."""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass

from .._lazy import lazy_module
from ..ops import pooling
from .certified_balls import LIBS, Stage

flint = lazy_module("flint")

L_MAX = 48.0  # exp(-L_MAX^2 / 2) < 1e-500: beyond every double
EVAL_LIMIT = 20_000  # integrand evaluations per piece: beyond it the enclosure comes back wide
EVALS = 200_000  # integrand evaluations one quantity may use, all precisions together: then NotApplicable

# The budget is counted in evaluations, not seconds, so that what is certified (and so the value of record, the
# tables and the README's examples) does not depend on how busy the machine is. 200,000 evaluations take about
# 3 s here (15-70 us each); a quantity at an ordinary input needs 1,000 to 6,000. The integrand checks the budget
# on every call, so one slow integral cannot overrun it (acb.integral cannot be interrupted from Python: an
# exception raised in the integrand is only reported after the integration ends, as a SystemError).
BUDGET: ContextVar[list[int]] = ContextVar("certified_budget")


class OutOfBudget(Exception):
    """The budget ran out during an integral: its ball is meaningless and must not be cached."""


@dataclass(frozen=True)
class Chain:
    """Y = chain(mu + s B), B the max of n iid standard normals (s < 0: a min)."""

    mu: float
    s: object  # arb
    n: int = 1
    stages: tuple[Stage, ...] = ()
    windows: bool = False  # a window op was applied: no E[f'^2]
    standardized: bool = False  # the last stage is a normalize: mean 0 and variance 1 exactly
    center: object = None  # a ball c with Y - c odd in B (mu = 0, n = 1, odd stages), else None


def upper(x) -> float:
    """A double >= |x| for an arb x."""
    return math.nextafter(float(abs(x).upper()), math.inf)


def _growth(chain: Chain) -> tuple[float, float, float]:
    """(A, B, D): |g(mu + s b)| <= A + B |b| and |g'| <= D for every real b."""
    c0, c1, d = 0.0, 1.0, 1.0
    for stage in chain.stages:  # every double operation rounded up: the bounds stay bounds
        s0, s1, sd = stage.growth
        c0, c1, d = up(s0 + up(s1 * c0)), up(s1 * c1), up(sd * d)
    return up(c0 + up(c1 * abs(chain.mu))), up(c1 * upper(chain.s)), d


def up(v: float) -> float:
    """A double >= v, for v the rounded-to-nearest result of one double operation."""
    return math.nextafter(v, math.inf)


def _cuts(chain: Chain, lim: float) -> list[float]:
    """-lim, lim and where a stage meets a kink (hints only: each piece is checked on every ball anyway)."""
    points = {-lim, lim}
    s = float(chain.s.mid())
    shift, scale = 0.0, 1.0  # the affine prefix so far, as doubles
    for stage in chain.stages:
        if stage.scale is not None:
            shift, scale = shift + float(stage.shift.mid()) / scale, scale * float(stage.scale.mid())
            continue
        for kink in stage.kinks:
            b = ((kink / scale + shift) - chain.mu) / s
            if -lim < b < lim:
                points.add(b)
        break  # kinks after a non-affine stage: no hint
    return sorted(points)


def _integral(chain: Chain, what: str, m0, lim: float, prec: int):
    """The integral over |b| <= lim of what ('mean': g, 'var': (g - m0)^2, 'grad': g'^2) against p_n."""
    inv_sqrt_2pi = 1 / (2 * flint.arb.pi()).sqrt()
    mu, s, n, stages = flint.acb(chain.mu), flint.acb(chain.s), chain.n, chain.stages
    density = None if n == 1 else pooling.max_density_ball
    m0 = None if m0 is None else flint.acb(m0)

    budget = BUDGET.get([EVALS])  # [evaluations left]: shared by every integral of this quantity
    unknown = flint.acb(flint.arb("nan"))

    def integrand(b, analytic):
        if budget[0] <= 0:
            return unknown  # an indeterminate ball: acb.integral bisects to eval_limit cheaply and returns
        budget[0] -= 1
        lib = LIBS[1 if analytic else 0]
        x = mu + s * b
        d = 1
        for stage in stages:
            if what == "grad":
                d = d * stage.value(x, 1, lib)
            x = stage.value(x, 0, lib)
        h = x if what == "mean" else (x - m0) ** 2 if what == "var" else d * d
        p = (-b * b / 2).exp() * inv_sqrt_2pi if density is None else density(b, n, lib)
        return h * p

    tol = _tail_scale(lim, n) / 16
    total = flint.arb(0)
    cuts = _cuts(chain, lim)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += flint.acb.integral(integrand, lo, hi, abs_tol=tol, eval_limit=EVAL_LIMIT).real
        if budget[0] <= 0:
            raise OutOfBudget  # raised, so that the lru_caches above never keep a ball cut short
    return total


def _tail_scale(lim: float, n: int):
    return n * (-(flint.arb(lim) ** 2) / 2).exp()


def _tail(chain: Chain, what: str, m0, lim: float):
    """A ball holding the integral over |b| > lim, from the growth bounds and p_n <= n phi."""
    big_a, big_b, big_d = (flint.arb(v) for v in _growth(chain))
    L = flint.arb(lim)
    phi = (-L * L / 2).exp() / (2 * flint.arb.pi()).sqrt()
    mass = chain.n * (L / flint.arb(2).sqrt()).erfc()  # n P(|Z| > L)
    first = chain.n * 2 * phi  # n E[|Z|; |Z| > L]
    second = chain.n * (2 * L * phi + (L / flint.arb(2).sqrt()).erfc())  # n E[Z^2; |Z| > L]
    if what == "mean":
        r = big_a * mass + big_b * first
        return flint.arb(0, r.upper())
    if what == "var":
        a = big_a + abs(flint.arb(m0))
        r = 2 * a * a * mass + 2 * big_b * big_b * second
    else:
        r = big_d * big_d * mass
    r = r.upper()
    return flint.arb(r / 2, r / 2)  # [0, r]: the integrand is >= 0


def expect(chain: Chain, what: str, prec: int, m0=None):
    """The ball of E[...] over all b: the range |b| <= L grows until its tail is small next to the value."""
    lim = min(L_MAX, math.sqrt(2.0 * math.log(2.0) * (prec + 10 + math.log2(chain.n))))
    while True:
        inner = _integral(chain, what, m0, lim, prec)
        tail = _tail(chain, what, m0, lim)
        value = inner + tail
        size = abs(inner.mid())
        if lim >= L_MAX or tail.rad() <= size * flint.arb(2) ** (-prec - 4):
            return value
        if inner.rad() < size:  # resolved: the L that makes the tail small enough
            big = sum(_growth(chain)) + 1.0
            need = 2.0 * (math.log(big * chain.n) - float(size.log()) + (prec + 8) * math.log(2.0))
            lim = min(L_MAX, max(lim * 1.1, math.sqrt(max(need, 1.0))))
        else:
            lim = min(L_MAX, lim * 1.5)

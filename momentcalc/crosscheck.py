"""Compare every pair of estimates of the same quantity.

Each estimate states its uncertainty in mean_se / std_se / grad_sq_se: a bound for an exact
method (0 for a closed form, the integration error bound for quadrature, an interval's
half-width for any exact method that gives one), one standard error for (quasi-)Monte Carlo.
A pair agrees when

    |a - b| <= EXACT_ULPS ulps of the scale + the exact methods' bounds + z * hypot(the SEs)

so two exact methods are compared relatively, to a few ulps plus what they state (the same at
1e-100 as at 1e8). The scale is max(|a|, |b|), and for a mean also the stds: a mean near 0 is
a sum of terms of the size of the std (selu's mean at N(0, 1) is 1.2e-32 with the paper's
32-digit constants, about 3e-17 with their doubles, and 0.0 in a closed form), so a few ulps of
the std is what two exact evaluations of it can differ by. Where a statistical estimate is
involved the test is a z-score bound, as strict as the samples allow. A statistical quantity
without a usable SE (too few samples, or all samples equal: result.informative) is not
compared: its estimate carries a note saying so. Disagreement is reported, never averaged away.

z is a normal quantile. An SE estimated from few replicas (quasi-Monte Carlo: the spread of REPLICAS
scramblings, so its z-score follows Student's t with REPLICAS - 1 degrees of freedom) is weighed by the t
quantile of the same two-sided tail probability instead (4.5 -> 6.73 at 15 degrees of freedom), so that a pair
is called in disagreement as rarely as the normal bound promises.
"""

from __future__ import annotations

import itertools
import math

from .result import Check, Estimate, informative

EXACT_ULPS = 4  # rounding of two exact evaluations of the same number
DEFAULT_Z = 4.5
QUANTITIES = ("mean", "std", "grad_sq")


def compare(estimates: tuple[Estimate, ...], z: float = DEFAULT_Z) -> tuple[Check, ...]:
    checks = []
    for a, b in itertools.combinations(estimates, 2):
        for quantity in QUANTITIES:
            if not (informative(a, quantity) and informative(b, quantity)):
                continue
            va, vb = getattr(a, quantity), getattr(b, quantity)
            tolerance = pair_tolerance(a, b, quantity, z)
            diff = va - vb
            checks.append(Check(a.method, b.method, quantity, diff, tolerance, abs(diff) <= tolerance))
    return tuple(checks)


def pair_tolerance(a: Estimate, b: Estimate, quantity: str, z: float = DEFAULT_Z) -> float:
    """How far a's and b's values of quantity may lie apart: rounding, plus stated bounds, plus z combined SEs."""
    va, vb = getattr(a, quantity), getattr(b, quantity)
    scale = max(abs(va), abs(vb))
    if quantity == "mean":
        scale = max(scale, a.std or 0.0, b.std or 0.0)
    rounding = EXACT_ULPS * math.ulp(scale)
    bounds, ses = 0.0, []
    for e in (a, b):
        u = abs(getattr(e, quantity + "_se") or 0.0)
        if e.exact:
            bounds += u
        else:
            ses.append(u * quantile(z, e.dof))
    return rounding + bounds + (math.hypot(*ses) if ses else 0.0)


def quantile(z: float, dof: int | None) -> float:
    """The quantile of Student's t with dof degrees of freedom whose two-sided tail is that of the normal
    beyond z (z itself for dof None: a normal SE)."""
    if dof is None:
        return z
    tail = math.erfc(z / math.sqrt(2.0))
    lo, hi = z, 2.0 * z
    while t_tail(hi, dof) > tail:
        hi *= 2.0
    for _ in range(100):  # bisection: t_tail falls monotonically
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_tail(mid, dof) > tail else (lo, mid)
    return hi


def t_tail(t: float, dof: int) -> float:
    """P(|T| > t) for Student's t with a whole number dof of degrees of freedom, by its finite series in
    theta = atan(t / sqrt(dof)) (Abramowitz & Stegun 26.7.3-4): no scipy in this core module."""
    theta = math.atan(t / math.sqrt(dof))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if dof % 2 == 1:
        term, total = math.cos(theta), 0.0 if dof == 1 else math.cos(theta)
        for k in range(3, dof - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        inside = 2.0 / math.pi * (theta + s * total)
    else:
        term, total = 1.0, 1.0
        for k in range(2, dof - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        inside = s * total
    return max(1.0 - inside, 0.0)

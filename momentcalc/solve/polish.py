"""Each root found, polished and bounded: Newton steps on the certified residual, a linearized error bound, and
the Krawczyk test's box where it proves one (krawczyk.py)."""

from __future__ import annotations

import math
from dataclasses import replace

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..estimators import NotApplicable
from ..spec import parse
from . import krawczyk
from .results import Solution

certified = lazy_module("momentcalc.estimators.certified")
np = lazy_module("numpy")
mpmath = lazy_module("mpmath")

PREC = krawczyk.PREC
CERTIFY_EVALS = 2_000_000  # integrand evaluations per quantity and solution: ten times an ordinary budget, for 192 bits
_NEWTON_STEPS = 4


def polish(problem, p, certify: bool) -> Solution:
    _, bounds, method = problem.moments(p)
    jac = problem.jacobian(p)
    cert = certified_residual(problem, p) if certify else None
    if cert is not None:
        method = "certified residual"
        for _ in range(_NEWTON_STEPS):  # Newton on the certified residual; each step rounds to the nearest double
            with mpmath.workdps(PREC // 3):
                delta = mpmath.lu_solve(mpmath.matrix(jac), mpmath.matrix(cert[0]))
                new = [float(mpmath.mpf(x) - delta[i]) for i, x in enumerate(p)]
            if new == p:
                break
            p = new
            cert = certified_residual(problem, p)
            if cert is None:
                break
    if cert is not None:
        residual, halfwidth = [float(x) for x in cert[0]], [float(h) for h in cert[1]]
    else:
        residual = problem.residual(p)
        halfwidth = [bounds[k] for k in problem.targets]
    inverse = np.linalg.inv(np.array(jac))
    # Linearized bound, doubled for the Jacobian's own error and the neglected quadratic term.
    err = [
        2.0 * sum(float(abs(inverse[i][j])) * (abs(residual[j]) + halfwidth[j]) for j in range(len(p)))
        for i in range(len(p))
    ]
    labels = [u.label for u in problem.unknowns]
    found = Solution(
        str(parse(problem.spec_at(p))),
        dict(zip(labels, p)),
        dict(zip(labels, err)),
        dict(zip(labels, (bool(_within_rounding(x, e)) for x, e in zip(p, err)))),
        dict(zip(problem.targets, residual)),
        method,
    )
    return _proven(problem, found, p, labels) if certify else found


def _proven(problem, found: Solution, p, labels) -> Solution:
    """found with the Krawczyk test's box and bounds where it proves a root, else with why not."""
    try:
        box = krawczyk.prove(problem, p)
    except (NotApplicable, MomentcalcError, ZeroDivisionError) as why:
        return replace(found, proof=f"interval Newton not applied: {why}; the bound is the linearization")
    if box is None:
        return replace(found, proof="the Krawczyk test did not prove a root in its box; the bound is the linearization")
    # The box holds exactly one root: its distance to the double, and the double is the root's nearest one
    # when the box lies within the double's rounding interval. With the input's variance as posed (input_var)
    # the float methods' root was that of sqrt(var) rounded: the box's midpoint, rounded, replaces it.
    if problem.input_var is not None:
        p = box.midpoints()
        found = replace(found, values=dict(zip(labels, p)), spec=str(parse(problem.spec_at(p))))
    return replace(
        found,
        errors=dict(zip(labels, box.distances(p))),
        last_double=dict(zip(labels, box.rounds_to(p))),
        method="certified (Krawczyk)",
        box={name: [lo, hi] for name, (lo, hi) in zip(labels, box.outward())},
        proof="Krawczyk test in ball arithmetic: exactly one root in the box",
    )


def certified_residual(problem, p):
    """(residual, its half-width) as mpf from the certified method's enclosures at PREC bits; None where it does
    not apply (no ball functions, or out of time)."""
    if "q_slope" in problem.targets:
        return None  # the certified method has no Q-map slope (interval Newton encloses it: certified_box)
    spec = parse(problem.spec_at(p))
    a, b, d, mu, sigma = problem.wrap_at(p)
    # f's input N(b mu + c, (b sigma)^2) in doubles: exact at the default input N(0, 1), rounded otherwise.
    values, halfwidths = [], []
    with mpmath.workdps(PREC // 3):
        a, b, d = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(d)
        for k, t in problem.targets.items():
            try:
                lo, hi = certified.enclosure(spec, mu, sigma, _quantity(k), PREC, CERTIFY_EVALS)
            except NotApplicable:
                return None
            lo, hi = (mpmath.mpf(q.numerator) / q.denominator for q in (lo, hi))
            if k == "var":  # std >= 0: its square's enclosure
                lo, hi = max(lo, 0) ** 2, hi**2
            scale = {"mean": a, "var": a * a, "grad_sq": a * a * b * b}[k]
            shift = d if k == "mean" else 0
            lo, hi = sorted((scale * lo + shift, scale * hi + shift))
            values.append((lo + hi) / 2 - mpmath.mpf(t))
            halfwidths.append((hi - lo) / 2)
    return values, halfwidths


def _quantity(target: str) -> str:
    return "std" if target == "var" else target


def _within_rounding(x: float, err: float) -> bool:
    """Is every number within err of x rounded to x (the true root's nearest double is x)?"""
    return err < min(x - math.nextafter(x, -math.inf), math.nextafter(x, math.inf) - x) / 2

"""Compare every pair of estimates of the same quantity.

Two exact methods must agree to EXACT_TOL (relative to the value's size,
at least absolute). Where a (quasi-)Monte Carlo estimate is involved, the
pair agrees when |diff| <= z * sqrt(se_a^2 + se_b^2): a z-score bound, so
the test is as strict as the samples allow. Disagreement is reported,
never averaged away.
"""

from __future__ import annotations

import itertools
import math

from .result import Check, Estimate

EXACT_TOL = 1e-10
DEFAULT_Z = 4.5


def compare(estimates: tuple[Estimate, ...], z: float = DEFAULT_Z) -> tuple[Check, ...]:
    checks = []
    for a, b in itertools.combinations(estimates, 2):
        for quantity in ("mean", "std", "grad_sq"):
            va, vb = getattr(a, quantity), getattr(b, quantity)
            if va is None or vb is None:
                continue
            se_a, se_b = getattr(a, quantity + "_se") or 0.0, getattr(b, quantity + "_se") or 0.0
            tolerance = EXACT_TOL * max(1.0, abs(va))
            if not (a.exact and b.exact):
                tolerance = max(tolerance, z * math.hypot(se_a, se_b))
            diff = va - vb
            checks.append(Check(a.method, b.method, quantity, diff, tolerance, abs(diff) <= tolerance))
    return tuple(checks)

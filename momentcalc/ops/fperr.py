"""Error bounds of the closed forms' floating-point evaluation.

A closed form is a formula evaluated in doubles, so its value is not exact: each correctly rounded
operation (and each libm call, within one ulp) adds a relative error of at most U, and an argument of
exp or erfc that carries a relative error d turns into a relative error of about |arg| d in the
result (exp(-z^2 / 2) with z = (k - mu) / sigma: z^2 / 2 is rounded three times, so a relative error
of 6 U (z^2 / 2) after a factor 2 of margin; erfc(x): 2 x^2 d, the same size). A sum whose terms
cancel loses in proportion to the sum of their magnitudes ("size"), not to its result. So each closed
form states

    error <= U * (ops * size + 6 * exponent * size) + ops * TINY

with ops a count of its roundings (with a factor 2 of margin), size the sum of the magnitudes of the
terms it adds, and exponent the largest |argument| of exp (or x^2 of erfc(x)) that carries input
rounding. TINY covers results that are subnormal (rounded to 2^-1074). tests/test_closed_bounds.py checks
these against mpmath across the domain.
"""

from __future__ import annotations

import math

U = 2.0**-53  # unit roundoff of a double
TINY = 2.0**-1074  # spacing of the subnormals


def bound(size: float, ops: float = 16.0, exponent: float = 0.0) -> float:
    """Error bound of a result whose terms add up to `size` in magnitude (see the module's docstring)."""
    return U * (ops + 6.0 * abs(exponent)) * abs(size) + ops * TINY


def std_bound(std: float, var_err: float) -> float:
    """Error of sqrt(var) from an error var_err of var: |sqrt(v + e) - sqrt(v)| <= min(e / (2 sqrt v), sqrt e),
    plus the rounding of the sqrt."""
    spread = math.sqrt(var_err) if std <= 0.0 else min(var_err / (2.0 * std), math.sqrt(var_err))
    return spread + 2.0 * U * std + TINY

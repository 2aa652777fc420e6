"""From a ball to certified doubles: the correctly rounded double of every number in it and its ends as outward
doubles, or N correctly rounded significant digits; None where the ends round apart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from .._lazy import lazy_module

flint = lazy_module("flint")


@dataclass(frozen=True)
class Certified:
    """A certified quantity: its correctly rounded double and an interval of doubles that holds the true value."""

    value: float  # the correctly rounded double
    lo: float  # [lo, hi] (doubles, rounded outward) holds the true value
    hi: float
    digits: str | None = None  # the requested significant digits, correctly rounded
    prec: int = 0  # the working precision that certified it


def _exact(x) -> Fraction:
    man, exp = x.man_exp()
    man, exp = int(man), int(exp)
    return Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2**-exp)


def ends(ball) -> tuple[Fraction, Fraction] | None:
    """The ball's ends as exact Fractions, [lo, hi] holding it; None if it is not finite."""
    if not ball.is_finite():
        return None
    with flint.ctx.workprec(ball.bits() + 128):  # lower() and upper() round outward at the working precision
        return _exact(ball.lower()), _exact(ball.upper())


def _nearest(q: Fraction) -> float | None:
    try:
        return float(q)  # int / int: correctly rounded, ties to even
    except OverflowError:
        return None


def round_ball(ball) -> Certified | None:
    """The correctly rounded double of every number in the ball, with the ball as outward doubles; None if the
    ends round apart."""
    bounds = ends(ball)
    if bounds is None:
        return None
    lo, hi = bounds
    a, b = _nearest(lo), _nearest(hi)
    if a is None or b is None or a != b:
        return None
    lo_d = a if Fraction(a) <= lo else math.nextafter(a, -math.inf)
    hi_d = b if Fraction(b) >= hi else math.nextafter(b, math.inf)
    return Certified(0.0 if a == 0.0 else a, lo_d, hi_d)


def decimal_digits(q: Fraction, digits: int) -> str:
    """q to `digits` significant digits, correctly rounded (ties to even)."""
    if q == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits
        ctx.rounding = ROUND_HALF_EVEN
        ctx.Emax, ctx.Emin = 10**9, -(10**9)
        found = Decimal(q.numerator) / Decimal(q.denominator)
        return f"{found:.{digits - 1}e}"

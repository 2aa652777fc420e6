"""Certified enclosures by ball arithmetic (python-flint / Arb): the correctly rounded double and [lo, hi].

For X ~ N(mu, sigma^2) the output of a spec is tracked, as in quadrature, as
Y = g(mu + s B): g a chain of elementwise stages (activations, and the affine
map of a normalize), B the max of n iid standard normals (n = 1: B ~ N(0, 1);
s < 0 for a min), or, after dropout or an average of non-Gaussian values,
only as balls of its mean and variance. Each quantity is an integral over B:

    E[h(g(mu + s b))] = int_{-L}^{L} h(g(mu + s b)) p_n(b) db + (the tails |b| > L),

computed by ``acb.integral`` (a rigorous error bound: the integrand is
evaluated on complex balls, each piece of a piecewise op only where it is
analytic, split at the kinks) plus a PROVEN bound on the tails: every op
declares |f(x)| <= c0 + c1 |x| and |f'(x)| <= d (catalog.OpInfo.growth), so
|h| <= A + B |b| beyond L, and p_n(b) <= n phi(b). L grows until the tail is
below the precision relative to the value (up to L_MAX, where it is below
every double).

Each quantity (mean, std from the central second moment, E[f'(X)^2]) is
certified by raising the working precision until both ends of its enclosure
round to the same double (or, with digits, the same N significant digits).
What this module cannot certify raises NotApplicable, so that another method
is the value of record.

The balls the ops' declarations compute with are certified_balls.py's, the
propagation of a spec op by op certified_chain.py's, the integrals with their
tail bounds certified_integral.py's, and the rounding of a ball to doubles or
digits certified_rounding.py's.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from .._lazy import lazy_module
from ..spec import Spec
from . import NotApplicable
from .certified_chain import propagate, state_grad, state_moments
from .certified_integral import BUDGET, EVALS, OutOfBudget
from .certified_rounding import Certified, decimal_digits, ends, round_ball

flint = lazy_module("flint")

PRECS = (64, 128, 256, 512, 1024, 2048)  # working precisions tried, in bits
DIGITS_MAX = 600  # the most significant digits one may ask for


@lru_cache(maxsize=512)
def _moments(spec: Spec, mu: float, sigma: float, prec: int):
    with flint.ctx.workprec(prec):
        state = propagate(spec, mu, sigma, prec)
        mean, var = state_moments(state, prec)
        return state, mean, var


@lru_cache(maxsize=512)
def _quantity(spec: Spec, mu: float, sigma: float, prec: int, quantity: str):
    """The ball of one quantity of the spec's output at this working precision."""
    state, mean, var = _moments(spec, mu, sigma, prec)
    with flint.ctx.workprec(prec):
        if quantity == "mean":
            return mean
        if quantity == "std":
            return var.sqrt() if var >= 0 else flint.arb(0).union(var.upper().sqrt())
        return state_grad(state, prec)


def certify(spec: Spec, mu: float, sigma: float, quantity: str, digits: int | None = None) -> Certified:
    """The quantity ('mean', 'std' or 'grad_sq') certified: raise the precision until the enclosure's ends round
    to the same double (and to the same `digits` significant digits, if given)."""
    if digits is not None and not (1 <= digits <= DIGITS_MAX):
        raise NotApplicable(f"digits must be between 1 and {DIGITS_MAX}, got {digits}")
    need = 0 if digits is None else int(digits * 3.33) + 16
    token = BUDGET.set([EVALS])
    try:
        return _certify(spec, mu, sigma, quantity, digits, need)
    finally:
        BUDGET.reset(token)


def enclosure(spec: Spec, mu: float, sigma: float, quantity: str, prec: int, evals: int = EVALS):
    """[lo, hi] (exact Fractions) that holds the quantity, from the ball at one working precision: for callers that
    need an absolute accuracy (momentcalc.solve's residuals near 0) rather than correctly rounded digits."""
    token = BUDGET.set([evals])
    try:
        bounds = ends(_quantity(spec, mu, sigma, prec, quantity))
    except OutOfBudget:
        raise NotApplicable(
            f"the {quantity} of '{spec}' could not be enclosed in {evals} integrand evaluations"
        ) from None
    finally:
        BUDGET.reset(token)
    if bounds is None:
        raise NotApplicable(f"the {quantity} of '{spec}' has no finite enclosure at {prec} bits")
    return bounds


def _certify(spec: Spec, mu: float, sigma: float, quantity: str, digits: int | None, need: int) -> Certified:
    for prec in (p for p in _precs(need) if p >= min(need, PRECS[-1])):
        try:
            ball = _quantity(spec, mu, sigma, prec, quantity)
        except OutOfBudget:
            raise NotApplicable(
                f"the {quantity} of '{spec}' could not be certified in {EVALS} integrand evaluations (< {prec} bits)"
            ) from None
        found = round_ball(ball)
        if found is None:
            continue
        if digits is None:
            return replace(found, prec=prec)
        lo, hi = ends(ball)
        text = decimal_digits(lo, digits)
        if text == decimal_digits(hi, digits):
            return replace(found, digits=text, prec=prec)
    raise NotApplicable(f"the {quantity} of '{spec}' could not be certified up to {_precs(need)[-1]} bits")


def _precs(need: int) -> tuple[int, ...]:
    precs = PRECS
    while precs[-1] < need + 64:
        precs += (precs[-1] * 2,)
    return precs


def estimate(spec: Spec, mu: float, sigma: float, digits: int | None = None) -> dict:
    """Each quantity certified, as {quantity: Certified}; grad_sq absent where it is not defined (window ops).

    Raises NotApplicable if the mean or the std cannot be certified."""
    found = {q: certify(spec, mu, sigma, q, digits) for q in ("mean", "std")}
    try:
        found["grad_sq"] = certify(spec, mu, sigma, "grad_sq", digits)
    except NotApplicable:
        pass
    return found

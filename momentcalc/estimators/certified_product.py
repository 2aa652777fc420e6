"""The certified moments of a product of independent factors (estimators.product_moments) in ball arithmetic.

Each factor's mean, variance and E[f'^2] are the certified method's own balls of that one-input op; the product's
are formed from them in balls at the same working precision, which rises until every quantity rounds to one
double, as for any certified quantity.
"""

from __future__ import annotations

from ..spec import Spec
from . import NotApplicable, certified
from .certified_integral import BUDGET, EVALS, OutOfBudget
from .certified_rounding import round_ball
from .product_moments import Factor, combine


def _factor(spec: Spec, mu: float, sigma: float, prec: int) -> Factor:
    _, mean, var = certified._moments(spec, mu, sigma, prec)
    return Factor(mean, var, certified._quantity(spec, mu, sigma, prec, "grad_sq"))


def estimate(factors: tuple[Spec, ...], wrt: int, mu: float, sigma: float) -> dict:
    """{quantity: Certified} for the product of the factors' outputs, each factor on its own input."""
    token = BUDGET.set([EVALS])
    try:
        for prec in certified.PRECS:
            try:
                with certified.flint.ctx.workprec(prec):
                    mean, var, grad = combine(tuple(_factor(s, mu, sigma, prec) for s in factors), wrt)
                    std = var.sqrt() if var >= 0 else None
            except OutOfBudget:
                raise NotApplicable(f"the product of {', '.join(map(str, factors))} ran out of evaluations") from None
            balls = {"mean": mean, "std": std, "grad_sq": grad}
            found = {q: round_ball(b) for q, b in balls.items() if b is not None}
            if len(found) == 3 and all(found.values()):
                return found
    finally:
        BUDGET.reset(token)
    raise NotApplicable(f"the product of {', '.join(map(str, factors))} could not be certified")

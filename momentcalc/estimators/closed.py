"""Closed forms: exact expressions for single ops applied to N(mu, sigma^2), as their declarations give them."""

from __future__ import annotations

from ..result import Moments
from ..spec import Spec
from . import NotApplicable


def declines(info) -> str | None:
    """Why no closed form is known for any use of the op (its declaration has none); None where one may be."""
    return None if info.closed is not None else "no closed form is declared"


def estimate_moments(spec: Spec, mu: float, sigma: float) -> Moments:
    if len(spec.ops) != 1:
        raise NotApplicable(
            f"closed forms exist for single ops, not for the pipeline '{spec}'; use quadrature or montecarlo"
        )
    op = spec.last
    found = op.info.closed(op, mu, sigma) if op.info.closed is not None else None
    if found is None:
        raise NotApplicable(
            f"no closed form is known for '{spec}' at mu={mu:g}, sigma={sigma:g}; use quadrature or montecarlo"
        )
    return found


def grad_sq(spec: Spec, mu: float, sigma: float) -> float:
    """E[f'(X)^2] of a single op with a closed form for it."""
    op = spec.last
    value = op.info.grad_closed(op, mu, sigma) if len(spec.ops) == 1 and op.info.grad_closed is not None else None
    if value is None:
        raise NotApplicable(f"no closed form of E[f'(X)^2] is known for '{spec}'")
    return value

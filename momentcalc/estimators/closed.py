"""Closed forms: exact expressions for single ops applied to N(mu, sigma^2), as their declarations give them.

Each value comes with a bound on its floating-point error (ops/fperr.py), derived for its formula by the
op's declaration; a form that states none gets a generic one of GENERIC_OPS roundings.
"""

from __future__ import annotations

from dataclasses import replace

from ..ops import fperr
from ..result import Moments
from ..spec import Spec
from . import NotApplicable

GENERIC_OPS = 64.0  # a bound for a form that derives none: a short formula of well-conditioned terms


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
    if found.mean_err is None:
        found = replace(found, mean_err=fperr.bound(found.mean, GENERIC_OPS))
    if found.std is not None and found.std_err is None:
        found = replace(found, std_err=fperr.bound(found.std, GENERIC_OPS))
    return found


def grad_sq(spec: Spec, mu: float, sigma: float) -> tuple[float, float]:
    """E[f'(X)^2] of a single op with a closed form for it, and the bound on its error.

    A declaration's grad_closed gives the value, or (value, bound)."""
    op = spec.last
    value = op.info.grad_closed(op, mu, sigma) if len(spec.ops) == 1 and op.info.grad_closed is not None else None
    if value is None:
        raise NotApplicable(f"no closed form of E[f'(X)^2] is known for '{spec}'")
    if isinstance(value, tuple):
        return value
    return value, fperr.bound(value, GENERIC_OPS)

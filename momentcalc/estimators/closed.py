"""Closed forms: exact expressions for single ops applied to N(mu, sigma^2)."""

from __future__ import annotations

from .. import catalog
from ..ops import dropout, pooling
from ..ops.activations import ACTIVATIONS, Moments
from ..spec import Spec
from . import NotApplicable


def estimate_moments(spec: Spec, mu: float, sigma: float) -> Moments:
    if len(spec.ops) != 1:
        raise NotApplicable(f"closed forms exist for single ops, not for the pipeline '{spec}'; use quadrature or montecarlo")
    op = spec.last
    found = None
    if op.kind == catalog.ELEMENTWISE:
        act = ACTIVATIONS.get(op.name)  # None for expr(...)
        found = act.closed(*act.args(op), mu, sigma) if act is not None and act.closed else None
    elif op.kind == catalog.DROPOUT:
        found = dropout.closed(op.get("p"), op.get("scale"), mu, sigma)
    elif op.name == "maxpool":
        found = pooling.max_closed(op.window_size, mu, sigma)
    elif op.name == "avgpool":
        found = pooling.avg_closed(op.window_size, mu, sigma)
    if found is None:
        raise NotApplicable(f"no closed form is known for '{spec}' at mu={mu:g}, sigma={sigma:g}; use quadrature or montecarlo")
    return found

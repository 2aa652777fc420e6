"""The backward constant E[f'(X)^2]: how an elementwise chain scales the gradient variance.

For a chain y = f_n(... f_1(x)) of elementwise ops (with normalize and
dropout allowed in between: an affine map and a random mask times 1/c)
the input gradient is the product of the stage derivatives (chain rule),
and E[(dy/dx)^2] under X ~ N(mu, sigma^2) is what keeps gradients at unit
scale. Three methods, as for the moments:

* closed: single activations whose E[f'(X)^2] has a closed form
  (e.g. relu: Phi(mu / sigma); piecewise ones by truncated-normal moments);
* quadrature: integrate the squared product of derivatives over the same
  tracked distribution as the moments (kinks as breakpoints);
* Monte Carlo: a fused Numba kernel (``mc_kernels.run_chain_chunk``, which draws once for the
  moments and the derivative) with the same chunk streams (``montecarlo.chunk_states``) and merge.

Specs with window ops have no grad_sq here (None).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from . import catalog
from ._lazy import lazy_module
from .estimators import NotApplicable, closed as closed_forms
from .result import Estimate
from .spec import Spec

quadrature = lazy_module("momentcalc.estimators.quadrature")
integrate = lazy_module("scipy.integrate")



def applies(spec: Spec) -> bool:
    """grad_sq is defined for chains of elementwise ops, normalize and dropout."""
    return all(op.kind != catalog.WINDOW for op in spec.ops)


def quadrature_from_dist(dist) -> quadrature.Integral:
    """E[(product of the stage derivatives)^2] over a tracked distribution; dropped values (atoms) carry none."""
    if not isinstance(dist, quadrature.Transformed) or dist.base_n != 1:
        raise NotApplicable("E[f'(X)^2] by quadrature needs a chain without window ops")
    lo, hi = quadrature._support(1)
    total, err = 0.0, 0.0
    for branch in dist.branches:
        if any(stage.df is None for stage in branch.chain):
            raise NotApplicable("a stage of this chain has no derivative")
        cuts = sorted(set(np.linspace(lo, hi, quadrature._PIECES + 1).tolist() + quadrature._kinks_in_base(dist, branch, lo, hi)))

        def integrand(b, chain=branch.chain):
            x, g = dist.mu + dist.sigma * b, 1.0
            for stage in chain:
                g *= stage.df(x)
                x = stage.f(x)
            return g * g * math.exp(quadrature._log_density(b, 1))

        for a, c in zip(cuts[:-1], cuts[1:]):
            value, bound = integrate.quad(integrand, a, c, **quadrature._QUAD)
            total += branch.weight * value
            err += branch.weight * bound
    return quadrature.Integral(total, err)


def by_quadrature(spec: Spec, mu: float, sigma: float) -> tuple[float, float]:
    """(E[f'(X)^2], error bound)."""
    if not applies(spec):
        raise NotApplicable(f"'{spec}' has window ops: no grad_sq")
    found = quadrature_from_dist(quadrature.propagate(spec, mu, sigma))
    return found.value, found.err


def attach(estimate: Estimate, spec: Spec, mu: float, sigma: float) -> Estimate:
    """The estimate with grad_sq by the same method, where that method gives one; unchanged otherwise."""
    if estimate.grad_sq is not None or not applies(spec):
        return estimate
    try:
        if estimate.method == "closed":
            return replace(estimate, grad_sq=closed_forms.grad_sq(spec, mu, sigma), grad_sq_se=0.0)
        if estimate.method == "quadrature":
            value, err = by_quadrature(spec, mu, sigma)
            return replace(estimate, grad_sq=value, grad_sq_se=err)
    except NotApplicable:
        pass
    return estimate

"""Exact moments by numerical integration (QUADPACK's qagse as scipy.integrate.quad runs it: quadpack.py).

The output of a pipeline prefix is tracked as a distribution we can
integrate against:

* ``Transformed``: Y = chain(mu + sigma * B), where B is the max of
  ``base_n`` iid standard normals (B ~ N(0, 1) when base_n == 1) and
  chain is a list of elementwise stages. Dropout turns it into a mixture:
  branches with weights sharing the same B, plus atoms (e.g. dropped
  values at 0).
* ``MomentsOnly``: only E[Y] and E[Y^2] are known (after averaging a
  non-Gaussian input); average pooling, dropout and normalize still apply.

Max pooling after a monotone non-decreasing chain commutes with it:
max_i g(X_i) = g(max_i X_i), so B becomes the max of n * base_n normals,
whose density n * phi * Phi^(n-1) is evaluated in logs (log_ndtr) so that
global pooling over 10,000 values works; where no stage follows (maxpool(n)
of a normal input), max_normal.py integrates it with one vectorised rule. Any other input to a max goes
through its numerically computed CDF (max_by_cdf.py).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np

from .. import catalog
from ..errors import MomentcalcError
from ..ops import dropout as dropout_op
from ..ops import pooling
from ..spec import Op, Spec
from . import NotApplicable, support, tracked, vectorized
from .max_by_cdf import max_moments
from .tracked import FEATURES, MomentsOnly, Stage, Transformed, moments, std_moments

# --- propagating through ops ---------------------------------------------------


def _map_chain(dist, stage: Stage):
    branches = tuple(replace(b, chain=b.chain + (stage,)) for b in dist.branches)
    atoms = tuple((w, stage.f(v)) for w, v in dist.atoms)
    return replace(dist, branches=branches, atoms=atoms)


def _affine(dist, shift: float, scale: float):
    if isinstance(dist, MomentsOnly):
        return MomentsOnly((dist.mean - shift) * scale, dist.var * scale * scale, dist.err * scale * scale)
    return _map_chain(dist, Stage(lambda x: (x - shift) * scale, df=lambda x: scale))


def _elementwise(dist, op: Op):
    if isinstance(dist, MomentsOnly):
        raise NotApplicable(f"{op} after an average of non-Gaussian values has no exact method here")
    info = op.info
    if info.vectorized is not None:
        return _map_chain(dist, scalar_stage(vectorized.op_stage(op)))
    if info.f is None or info.df is None:
        raise NotApplicable(f"quadrature needs a scalar function and derivative of {op}; it has none")
    a, b = info.args(op)
    f, df = info.f, info.df
    stage = Stage(lambda x: f(x, a, b), tuple(info.kinks(a, b)), info.monotone, lambda x: df(x, a, b), FEATURES)
    return _map_chain(dist, stage)


def _dropout(dist, op: Op):
    p, scale = op.get("p"), op.get("scale")
    c = dropout_op.divisor(p, scale)
    if isinstance(dist, MomentsOnly):
        mean, second = dropout_op.moments_after(p, scale, dist.mean, dist.var + dist.mean**2)
        return MomentsOnly(mean, second - mean * mean, dist.err)
    kept = _map_chain(dist, Stage(lambda x: x / c, df=lambda x: 1.0 / c))
    branches = tuple(replace(b, weight=b.weight * p) for b in kept.branches)
    dropped = ((1.0 - p, 0.0),) if p < 1.0 else ()
    atoms = tuple((w * p, v) for w, v in kept.atoms) + dropped
    return replace(kept, branches=branches, atoms=atoms)


_REDUCTIONS = support.QUADRATURE_REDUCTIONS  # the window reductions _window treats


declines = support.quadrature  # read from the declaration alone (`momentcalc list` asks without loading scipy)


def _window(dist, op: Op):
    n = op.window_size
    reduction = op.info.reduction
    if reduction not in _REDUCTIONS:
        raise NotApplicable(f"quadrature does not know the reduction {reduction!r} of {op}")
    if reduction == pooling.MIN:
        return _min_window(dist, op, n)
    if reduction == pooling.MAX:
        if n == 1:
            return dist
        if isinstance(dist, Transformed) and _is_monotone_single(dist) and dist.sigma > 0.0:
            return replace(dist, base_n=dist.base_n * n)  # max_i g(X_i) = g(max_i X_i) for non-decreasing g
        if isinstance(dist, MomentsOnly):
            raise NotApplicable(f"{op} after an average of non-Gaussian values has no exact method here")
        return max_moments(dist, n)
    if isinstance(dist, Transformed) and dist.base_n == 1 and _is_monotone_single(dist) and not dist.branches[0].chain:
        return replace(dist, sigma=dist.sigma / math.sqrt(n))  # the mean of normals is normal
    mean, var, mean_err, var_err = moments(dist)
    return MomentsOnly(mean, var / n, max(mean_err, var_err / n))


def _min_window(dist, op: Op, n: int):
    """The min of n iid copies: min_i g(mu + sigma Z_i) = g(mu - sigma max_i(-Z_i)) for non-decreasing g,
    else -max(-Y) through the CDF."""
    if n == 1:
        return dist
    if isinstance(dist, MomentsOnly):
        raise NotApplicable(f"{op} after an average of non-Gaussian values has no exact method here")
    if _is_monotone_single(dist) and dist.base_n == 1 and dist.sigma > 0.0:
        return replace(dist, sigma=-dist.sigma, base_n=n)
    top = max_moments(_map_chain(dist, Stage(lambda x: -x, monotone=False, df=lambda x: -1.0)), n)
    return MomentsOnly(-top.mean, top.var, top.err)


def _is_monotone_single(dist: Transformed) -> bool:
    return not dist.atoms and len(dist.branches) == 1 and all(s.monotone for s in dist.branches[0].chain)


Norms = tuple  # per op: (mean, std, mean error, std error) of what precedes a normalize, else None


def propagate(spec: Spec, mu: float, sigma: float, norms: Norms | None = None):
    """The tracked distribution of the spec's output for X ~ N(mu, sigma^2); norms as normalize_constants gives."""
    for op in spec.ops:  # before normalize_constants, which would refuse with less to say
        why = declines(op.info)
        if why is not None:
            raise NotApplicable(f"quadrature does not treat {op}: {why}")
    norms = normalize_constants(spec, mu, sigma) if norms is None else norms
    dist = Transformed(mu, sigma)
    for depth, op in enumerate(spec.ops):
        kind = op.kind
        if kind == catalog.ELEMENTWISE:
            dist = _elementwise(dist, op)
        elif kind == catalog.DROPOUT:
            dist = _dropout(dist, op)
        elif kind == catalog.WINDOW:
            dist = _window(dist, op)
        elif kind == catalog.NORMALIZE:
            mean, std = norms[depth][:2]
            dist = _affine(dist, mean, 1.0 / std)
        else:
            raise NotApplicable(f"quadrature does not know ops of kind {kind!r} ({op})")
    return dist


@lru_cache(maxsize=256)
def estimate_moments(spec: Spec, mu: float, sigma: float) -> tuple[float, float, float, float]:
    """(mean, std, mean error bound, std error bound)."""
    return std_moments(propagate(spec, mu, sigma))


def normalize_constants(spec: Spec, mu: float, sigma: float) -> Norms:
    """The one place normalize's constants are worked out: per op, the exact moments of what precedes a
    normalize (mean, std and their error bounds), None for other ops. The engine passes them to every method."""
    try:
        return tuple(
            _checked_norm(Spec(spec.ops[:depth]), mu, sigma) if op.kind == catalog.NORMALIZE else None
            for depth, op in enumerate(spec.ops)
        )
    except NotApplicable as why:
        raise NotApplicable(f"normalize needs the exact moments of what precedes it: {why}") from None


# normalize divides by the std of what precedes it: that std must be known to this relative accuracy.
NORMALIZE_STD_RTOL = 1e-6


def _checked_norm(prefix: Spec, mu: float, sigma: float) -> tuple[float, float, float, float]:
    """The moments of prefix, refused (MomentcalcError) when prefix is constant to double precision.

    relu at N(-40, 1) has a std below the smallest double (it comes out 0), relu6 at N(30, 1) one of 2e-65
    with a bound of 4e-14: dividing by either divides by rounding noise, so the answer would be noise too.
    """
    # A user expression is checked (finite, |y| <= 1e150) before its moments are integrated, as the quadrature
    # method checks a whole spec: expr(1e308) | normalize overflowed while squaring 1e308.
    vectorized.check_spec_finite(prefix, mu, sigma, normalize_constants(prefix, mu, sigma))
    found = estimate_moments(prefix, mu, sigma)
    mean, std, _, std_err = found
    if not (math.isfinite(std) and std > 0.0 and std_err <= NORMALIZE_STD_RTOL * std):
        known = f"{std:.3g} +/- {std_err:.2g}" if math.isfinite(std) and std > 0.0 else f"{std:g}"
        raise MomentcalcError(
            f"normalize after '{prefix}' at N({mu:g}, {sigma:g}^2): what it would normalize is constant to double "
            f"precision (mean {mean:.6g}, std {known}, not known to 6 digits); normalize an input that varies, "
            f"e.g. with mu nearer the op's kinks or a larger sigma"
        )
    return found


def grad_sq(spec: Spec, mu: float, sigma: float, norms: Norms | None = None) -> tuple[float, float]:
    """(E[f'(X)^2], error bound) for a chain of elementwise ops, normalize and dropout."""
    if any(op.kind == catalog.WINDOW for op in spec.ops):
        raise NotApplicable(f"'{spec}' has window ops: no grad_sq")
    found = tracked.grad_sq(propagate(spec, mu, sigma, norms))
    return found.value, found.err


def scalar_stage(stage: vectorized.VecStage) -> Stage:
    """A numpy stage as a quadrature stage (scalar in, scalar out); it declares no kinks and no monotonicity."""

    def f(x):
        return float(stage.f(np.float64(x)))

    def df(x):
        return float(stage.df(np.float64(x)))

    return Stage(f, (), False, df, FEATURES)


def callable_moments(stage: vectorized.VecStage, mu: float, sigma: float) -> tuple[float, ...]:
    """(mean, std, mean error, std error, E[f'(X)^2], its error) of one numpy stage applied to N(mu, sigma^2)."""
    dist = Transformed(mu, sigma, branches=(tracked.Branch(1.0, (scalar_stage(stage),)),))
    mean, std, mean_err, std_err = std_moments(dist)
    grad = tracked.grad_sq(dist)
    if not all(math.isfinite(v) for v in (mean, std, mean_err, std_err, grad.value, grad.err)):
        raise MomentcalcError(
            f"{stage.label} gave a non-finite integral: the function must be finite on the whole line"
        )
    return mean, std, mean_err, std_err, grad.value, grad.err

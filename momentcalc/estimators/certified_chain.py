"""A spec's output in balls, op by op: a Chain while it is g(mu + s B) with B the max (or min) of iid standard
normals, else (after dropout or an average of non-Gaussian values) MomentsOnly, the balls of its mean and variance;
and the mean, variance and E[f'(X)^2] balls of either. What is not certified raises NotApplicable."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import catalog
from .._lazy import lazy_module
from ..ops import pooling
from ..spec import Spec
from . import NotApplicable, support
from .certified_balls import LIBS, Stage
from .certified_integral import Chain, expect, up, upper

flint = lazy_module("flint")

MAX_N = 10**6  # the largest window (max or min of n) certified


@dataclass(frozen=True)
class MomentsOnly:
    """Only the balls of E[Y] and Var[Y] are known; E[f'^2] is grad_factor times that of grad_chain (or None)."""

    mean: object
    var: object
    grad_chain: Chain | None
    grad_factor: object


def _elementwise(state, op) -> Chain:
    info = op.info
    if isinstance(state, MomentsOnly):
        raise NotApplicable(f"{op} after dropout or an average of non-Gaussian values is not certified")
    if info.ball is None or info.growth is None:
        raise NotApplicable(f"{op} declares no ball arithmetic; the certified method does not treat it")
    a, b = info.args(op)
    stage = Stage(
        info.ball, tuple(info.kinks(a, b)), a, b, tuple(info.growth(a, b)), info.monotone, info.odd_center(a, b)
    )
    center = flint.arb(stage.odd_center) if state.center is not None and state.center == 0 else None
    if stage.odd_center is None:
        center = None
    return replace(state, stages=state.stages + (stage,), standardized=False, center=center)


def _normalize(state, prec: int):
    mean, var = state_moments(state, prec)
    if not var > 0:
        raise NotApplicable("normalize of a value whose variance is not certified positive")
    std = var.sqrt()
    if isinstance(state, MomentsOnly):
        factor = None if state.grad_chain is None else state.grad_factor / var
        return MomentsOnly(flint.arb(0), flint.arb(1), state.grad_chain, factor)
    scale = 1 / std
    c0, c1 = up(upper(mean) * upper(scale)), upper(scale)
    stage = Stage(growth=(c0, c1, c1), shift=mean, scale=scale)
    center = None if state.center is None else (state.center - mean) * scale
    return replace(state, stages=state.stages + (stage,), standardized=True, center=center)


def _dropout(state, op, prec: int) -> MomentsOnly:
    if op.info.ball_moments is None:
        raise NotApplicable(f"{op} declares no ball arithmetic")
    mean, var = state_moments(state, prec)
    lib = LIBS[0]
    new_mean, new_var, factor = op.info.ball_moments(op, mean, var, lib)
    if isinstance(state, MomentsOnly):
        grad_chain = state.grad_chain
        factor = None if grad_chain is None else state.grad_factor * factor
    else:
        grad_chain = None if state.windows else state
    return MomentsOnly(_real(new_mean), _real(new_var), grad_chain, None if factor is None else _real(factor))


_REDUCTIONS = support.CERTIFIED_REDUCTIONS  # this method's own list (support.py says why)


def _window(state, op, prec: int):
    n, reduction = op.window_size, op.info.reduction
    if reduction not in _REDUCTIONS:  # before n == 1: a reduction of one value need not be that value (|x|)
        raise NotApplicable(f"the certified method does not know the reduction {reduction!r} of {op}")
    if n == 1:
        return state
    if reduction == pooling.MEAN:
        if isinstance(state, Chain) and not state.stages and state.n == 1:
            return replace(state, s=state.s / flint.arb(n).sqrt(), windows=True, center=None)  # normal again
        mean, var = state_moments(state, prec)
        return MomentsOnly(mean, var / n, None, None)
    if isinstance(state, MomentsOnly):
        raise NotApplicable(f"{op} after dropout or an average of non-Gaussian values is not certified")
    if op.info.ball_density is None:
        raise NotApplicable(f"{op} declares no density in balls")
    if not all(stage.monotone for stage in state.stages):
        raise NotApplicable(f"{op} after a chain that is not non-decreasing (it does not commute) is not certified")
    total = state.n * n
    if total > MAX_N:
        raise NotApplicable(f"windows of more than {MAX_N} values are not certified ({total})")
    if reduction == pooling.MAX and state.s > 0:
        return replace(state, n=total, windows=True, standardized=False, center=None)  # max_i g(X_i) = g(max_i X_i)
    if reduction == pooling.MIN and state.s > 0 and state.n == 1:
        return replace(
            state, s=-state.s, n=n, windows=True, standardized=False, center=None
        )  # min_i X_i = mu - sigma max_i(-Z_i)
    raise NotApplicable(f"{op} after a max or min of the other kind is not certified")


def _real(x):
    return x.real if isinstance(x, flint.acb) else x


declines = support.certified  # read from the declaration alone (`momentcalc list`); propagate refuses by it


def propagate(spec: Spec, mu: float, sigma: float, prec: int):
    """The spec's output for X ~ N(mu, sigma^2), op by op: a Chain or MomentsOnly, at this working precision."""
    state = Chain(mu, flint.arb(sigma), center=flint.arb(0) if mu == 0.0 else None)
    for op in spec.ops:
        why = declines(op.info)
        if why is not None:
            raise NotApplicable(f"{op} is not certified: {why}")
        kind = op.kind
        if kind == catalog.ELEMENTWISE:
            state = _elementwise(state, op)
        elif kind == catalog.NORMALIZE:
            state = _normalize(state, prec)
        elif kind == catalog.DROPOUT:
            state = _dropout(state, op, prec)
        elif kind == catalog.WINDOW:
            state = _window(state, op, prec)
        else:
            raise NotApplicable(f"the certified method does not know ops of kind {kind!r} ({op})")
    return state


def state_moments(state, prec: int):
    """(mean, var) balls of the state's output at this precision."""
    if isinstance(state, MomentsOnly):
        return state.mean, state.var
    if state.standardized:
        return flint.arb(0), flint.arb(1)
    if not state.stages and state.n == 1:
        return flint.arb(state.mu), state.s * state.s
    if state.center is not None and state.n == 1:
        mean = state.center
    else:
        mean = expect(state, "mean", prec)
    m0 = mean.mid()
    r = mean.rad()
    second = expect(state, "var", prec, m0)  # E[(Y - m0)^2] = Var + (mean - m0)^2
    var = second - flint.arb(r * r / 2, r * r / 2)
    return mean, flint.arb(0).union(var) if not var > 0 else var


def state_grad(state, prec: int):
    """The ball of E[f'(X)^2] of the state's output at this precision (chains of elementwise ops, normalize and
    dropout)."""
    if isinstance(state, MomentsOnly):
        if state.grad_chain is None:
            raise NotApplicable("E[f'(X)^2] is certified for chains of elementwise ops, normalize and dropout")
        return state_grad(state.grad_chain, prec) * state.grad_factor
    if state.windows:
        raise NotApplicable("E[f'(X)^2] is not defined here for specs with window ops")
    if not state.stages:
        return flint.arb(1)
    return expect(state, "grad", prec)

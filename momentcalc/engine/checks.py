"""What estimate() refuses before any work: an input outside the domain, and a spec whose ops of several inputs
stand where no method treats them (or that asks for a feature map of one)."""

from __future__ import annotations

from .. import catalog
from ..errors import MomentcalcError
from ..settings import MU_MAX, SIGMA_MAX, SIGMA_MIN, is_finite, shown
from ..spec import Spec

SEVERAL = (catalog.PRODUCT, catalog.JOINT, catalog.RESIDUAL)  # the kinds of ops of several inputs


def check_input(mu, sigma) -> tuple[float, float]:
    """mu and sigma as floats (numpy scalars too), within the input domain; else one line saying what is wrong."""
    if not is_finite(mu):
        raise MomentcalcError(f"mu must be a finite number, got {shown(mu)}")
    if not is_finite(sigma) or sigma <= 0:
        raise MomentcalcError(f"sigma must be a finite number > 0, got {shown(sigma)}")
    mu, sigma = float(mu), float(sigma)  # numpy scalars too (a float16 would overflow comparing with 1e6)
    if abs(mu) > MU_MAX:
        raise MomentcalcError(f"mu must be within [-{MU_MAX:g}, {MU_MAX:g}] (the input domain), got {mu!r}")
    if not SIGMA_MIN <= sigma <= SIGMA_MAX:
        raise MomentcalcError(f"sigma must be within [{SIGMA_MIN:g}, {SIGMA_MAX:g}] (the input domain), got {sigma!r}")
    return mu, sigma


def check_no_map(spec: Spec) -> None:
    """Feature maps (size=) are of window ops over elementwise ones; an op of several inputs has none here."""
    several = [op for op in spec.ops if op.kind in (catalog.PRODUCT, catalog.JOINT, catalog.RESIDUAL)]
    if several:
        raise MomentcalcError(
            f"size= maps a spec of window and elementwise ops over a feature map; {several[0]} (an op of several "
            f"inputs) has no map here: estimate it without size"
        )


def _several_first(spec: Spec) -> bool:
    """The spec is an op of several inputs, then only normalize ops (each by the exact moments before it)."""
    return spec.ops[0].kind in SEVERAL and all(op.kind == catalog.NORMALIZE for op in spec.ops[1:])


def _takes_after(op) -> bool:
    """An op that may come last after elementwise ops and normalize: an op of iid inputs that declares its sampler
    (catalog.JOINT: lppool, a norm, softmax; each input the same function of its own Gaussian, sampled as such), or a
    residual mix (one function of the one input)."""
    return (op.kind == catalog.JOINT and op.info.sample is not None) or op.kind == catalog.RESIDUAL


def sampled_after(spec: Spec) -> bool:
    """The spec is elementwise ops and normalize, then last an op _takes_after allows."""
    *prefix, last = spec.ops
    return (
        bool(prefix)
        and _takes_after(last)
        and all(op.kind in (catalog.ELEMENTWISE, catalog.NORMALIZE) for op in prefix)
    )


def check_products(spec: Spec) -> None:
    """An op of several inputs takes Gaussian inputs: it comes first, followed by normalize ops at most; an op of
    iid inputs that declares its sampler may also come last after elementwise ops and normalize (Monte Carlo)."""
    several = [op for op in spec.ops if op.kind in SEVERAL]
    if several and not _several_first(spec) and not sampled_after(spec):
        op = several[0]
        inputs = ", ".join(op.info.inputs) or "iid"
        after = "; after elementwise ops and normalize it comes last" if _takes_after(op) else ""
        raise MomentcalcError(
            f"{op} takes independent Gaussian inputs ({inputs}): it comes first, followed by normalize at most{after}, "
            f"not as in '{spec}'; estimate '{op}' or '{op} | normalize'"
        )

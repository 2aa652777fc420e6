"""The constants a torch layer needs, from the packaged table or, once, from momentcalc's exact methods.

``moments(spec, mu, sigma)`` is the one lookup every module of this package uses: the tabulated
constant (momentcalc.constants) when the spec is in the table at that input, otherwise an estimate
by the exact methods only (certified, closed form, quadrature: no Monte Carlo), which must agree
with each other, cached for the life of the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from .. import constants
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..spec import canonical
from . import checks

engine = lazy_module("momentcalc.engine")  # numba and scipy: only for a spec the table does not hold

EXACT_METHODS = ("certified", "closed", "quadrature")


@dataclass(frozen=True)
class LayerMoments:
    """Mean and std of a spec's output for X ~ N(mu, sigma^2), E[f'(X)^2] where defined, and their origin."""

    spec: str
    mu: float
    sigma: float
    mean: float
    std: float
    grad_sq: float | None  # E[f'(X)^2]: chains of elementwise ops only
    method: str  # method of record of the std
    source: str  # the table file, or "computed"

    @property
    def second_moment(self) -> float:
        """E[f(X)^2] = std^2 + mean^2."""
        return self.std * self.std + self.mean * self.mean


def moments(spec: str, mu: float = 0.0, sigma: float = 1.0) -> LayerMoments:
    """The constants of spec (any spelling) at N(mu, sigma^2): tabulated, else exact and cached."""
    mu, sigma = checks.normal_input(mu, sigma)
    return _moments(canonical(checks.text("spec", spec)), mu, sigma)


@lru_cache(maxsize=256)
def _moments(key: str, mu: float, sigma: float) -> LayerMoments:
    try:
        c = constants.get(key, mu, sigma)
    except constants.UnknownConstantError:
        return _computed(key, mu, sigma)
    if c.std is None:
        raise MomentcalcError(f"the table holds no std for {key!r}; it cannot be normalized")
    return LayerMoments(key, mu, sigma, c.mean, c.std, c.grad_sq, c.method, c.source)


def _computed(key: str, mu: float, sigma: float) -> LayerMoments:
    result = engine.estimate(key, mu, sigma, methods=EXACT_METHODS)
    if not result.agree:
        raise MomentcalcError(
            f"the exact methods disagree on {key!r} at N({mu:g}, {sigma:g}^2) ({', '.join(result.disagreements)}); "
            f"run `momentcalc estimate '{key}' --method all` to see why"
        )
    if result.std is None or not math.isfinite(result.std) or result.std <= 0:
        raise MomentcalcError(f"{key!r} has no positive std at N({mu:g}, {sigma:g}^2): nothing to normalize by")
    return LayerMoments(key, mu, sigma, result.mean, result.std, result.grad_sq, result.method, "computed")

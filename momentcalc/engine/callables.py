"""estimate(fn): the moments and E[f'(X)^2] of a user's vectorized Python callable, by quadrature and numpy Monte
Carlo, cross-checked."""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import crosscheck
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..result import Estimate, Result
from ..settings import RunSettings
from .runner import since

quadrature = lazy_module("momentcalc.estimators.quadrature")  # scipy
vectorized = lazy_module("momentcalc.estimators.vectorized")  # numpy


def label_of(fn: Callable) -> str:
    return f"callable:{getattr(fn, '__qualname__', None) or getattr(fn, '__name__', None) or type(fn).__name__}"


def estimate_callable(fn, grad, mu, sigma, settings: RunSettings) -> Result:
    """Moments and E[f'(X)^2] of fn(X), X ~ N(mu, sigma^2), by quadrature and numpy Monte Carlo, cross-checked."""
    if grad is not None and not callable(grad):
        raise MomentcalcError(f"grad must be a callable (the derivative of fn), got {grad!r}")
    label = label_of(fn)
    stage = vectorized.callable_stage(fn, grad, label)
    vectorized.check_finite_on_grid([stage], mu, sigma)
    wanted = ("quadrature", "montecarlo") if settings.method in ("auto", "all") else (settings.method,)
    if "closed" in wanted:
        raise MomentcalcError(f"no closed form is known for a user function ({label}); use quadrature or montecarlo")
    notes = vectorized.notes([stage])
    estimates = []
    for name in wanted:
        start = time.perf_counter()
        if name == "quadrature":
            mean, std, mean_err, std_err, grad_sq, grad_err = quadrature.callable_moments(stage, mu, sigma)
            estimates.append(
                Estimate(
                    "quadrature",
                    mean,
                    std,
                    mean_err,
                    std_err,
                    seconds=since(start),
                    grad_sq=grad_sq,
                    grad_sq_se=grad_err,
                    notes=notes,
                )
            )
        elif name == "montecarlo":
            summary = vectorized.run_numpy([stage], mu, sigma, settings)
            estimates.append(summary.estimate("montecarlo", settings.seed, since(start), notes=notes))
        else:
            raise MomentcalcError(
                f"method {name!r} does not apply to a user function; use auto, all, quadrature or montecarlo"
            )
    return Result(label, mu, sigma, tuple(estimates), crosscheck.compare(tuple(estimates), settings.z))

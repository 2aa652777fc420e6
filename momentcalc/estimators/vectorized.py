"""Functions only numpy can evaluate: a user's vectorized callable, or an op with a vectorized form (``expr``).

Quadrature calls such a function one value at a time (quadrature.scalar_stage). Monte Carlo
cannot jit it, so it runs in numpy through the same driver as ``montecarlo``
(in the caller's thread: user code need not be thread-safe): chunk j draws
from ``driver.chunk_generator(seed, j)``, chunk moments are merged in order
with ``moments.merge``. The same pass gives E[f'(X)^2] (chain rule), with
the user's derivative where given and central differences otherwise (the
estimate then notes 'numerical derivative').

A function that gives NaN or inf anywhere on mu +- 12 sigma (or on any
Monte Carlo draw) is an error: a result never carries a NaN.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import catalog
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..ops import dropout as dropout_op
from ..result import Estimate
from ..settings import DEFAULT_SAMPLES, RunSettings
from ..spec import Spec
from . import NotApplicable

# numba: only the numpy Monte Carlo path and jitted activations in an expr pipeline need the kernels' modules;
# quadrature reads needs_numpy and check_spec_finite here, and a --method quadrature run never imports numba.
dispatch = lazy_module("momentcalc.estimators.dispatch")
dispatch_gen = lazy_module("momentcalc.estimators.dispatch_gen")
driver = lazy_module("momentcalc.estimators.driver")
moments = lazy_module("momentcalc.estimators.moments")

CHUNK = 1 << 16
GRID_SIGMAS = 12.0
GRID_POINTS = 4001

TAIL_TOL = 1e-12  # of the peak of (f - f(mu))^2 phi, at the edge of the region quadrature integrates
NUMERICAL = "numerical derivative"


@dataclass(frozen=True)
class VecStage:
    """One vectorized stage: y = f(x), dy/dx = df(x); keep < 1 is dropout (a kept value is f(x), a dropped one 0)."""

    label: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    keep: float = 1.0
    numerical: bool = False


def numerical_derivative(f: Callable) -> Callable:
    """Central differences with a step ~ eps^(1/3) scaled to |x|: about 10 correct digits for smooth f."""

    def df(x):
        x = np.asarray(x, dtype=np.float64)
        h = 2.0**-17 * np.maximum(1.0, np.abs(x))
        with np.errstate(all="ignore"):
            return (np.asarray(f(x + h), dtype=np.float64) - np.asarray(f(x - h), dtype=np.float64)) / (2.0 * h)

    return df


def _as_array_fn(fn: Callable, label: str) -> Callable:
    def wrapped(x):
        x = np.asarray(x, dtype=np.float64)
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(fn(x), dtype=np.float64)
        except Exception as why:  # the user's code: whatever it raises is bad input, said in one line
            raise MomentcalcError(
                f"{label} failed on a numpy array ({type(why).__name__}: {why}): a callable spec must be vectorized, "
                "numpy array in, float array out (numpy.exp, not math.exp)"
            ) from None
        if out.shape != x.shape:
            try:
                out = np.broadcast_to(out, x.shape).copy()
            except ValueError:
                raise MomentcalcError(
                    f"{label} returned shape {out.shape} for input of shape {x.shape}: it must work elementwise on "
                    "numpy arrays"
                ) from None
        return out

    return wrapped


def callable_stage(fn: Callable, grad: Callable | None, label: str) -> VecStage:
    f = _as_array_fn(fn, label)
    df = _as_array_fn(grad, f"the derivative of {label}") if grad is not None else numerical_derivative(f)
    return VecStage(label, f, df, numerical=grad is None)


def op_stage(op) -> VecStage:
    """The stage of an op that has only a vectorized form (expr); its derivative is numerical."""
    f = op.info.vectorized(op)
    return VecStage(str(op), f, numerical_derivative(f), numerical=True)


# --- the numpy program of a spec --------------------------------------------------


def needs_numpy(spec: Spec) -> bool:
    """Some op has only a vectorized (numpy) form: Monte Carlo must run in numpy."""
    return any(op.info.vectorized is not None for op in spec.ops)


def vector_program(spec: Spec, norms: tuple | None) -> list[VecStage]:
    """The spec as numpy stages; norms: the constants of its normalize ops, as the engine passes them
    (quadrature.normalize_constants)."""
    stages = []
    for depth, op in enumerate(spec.ops):
        if op.kind == catalog.WINDOW:
            raise NotApplicable(f"the numpy Monte Carlo path takes elementwise ops, normalize and dropout, not {op}")
        if op.info.vectorized is not None:
            stages.append(op_stage(op))
        elif op.kind == catalog.ELEMENTWISE:
            stages.append(VecStage(str(op), *jitted_arrays(op)))
        elif op.kind == catalog.DROPOUT:
            c = dropout_op.divisor(op.get("p"), op.get("scale"))
            stages.append(
                VecStage(str(op), lambda x, c=c: x / c, lambda x, c=c: np.full_like(x, 1.0 / c), keep=op.get("p"))
            )
        elif op.kind == catalog.NORMALIZE:  # the exact moments of what precedes it
            mean, std = norms[depth][:2]
            stages.append(
                VecStage(str(op), lambda x, m=mean, s=std: (x - m) / s, lambda x, s=std: np.full_like(x, 1.0 / s))
            )
        else:
            raise NotApplicable(f"the numpy Monte Carlo path does not know ops of kind {op.kind!r} ({op})")
    return stages


def jitted_arrays(op) -> tuple[Callable, Callable]:
    """f and f' of a jitted activation over numpy arrays, through the kernels' dispatch."""
    dispatch_gen.require_fresh(dispatch.CODES)
    if op.name not in dispatch.CODES:
        raise NotApplicable(f"{op} has no compiled scalar function")
    code, (a, b) = dispatch.CODES[op.name], op.info.args(op)

    def f(x, grad=False):
        return dispatch.activation_array(code, a, b, np.ascontiguousarray(x, dtype=np.float64).reshape(-1), grad)

    return (lambda x: f(x).reshape(np.shape(x))), (lambda x: f(x, True).reshape(np.shape(x)))


# The largest |value| a user function may give: moments square it (and sum squares), which must stay finite.
VALUE_MAX = 1e150


def check_finite_on_grid(stages: list[VecStage], mu: float, sigma: float) -> None:
    """MomentcalcError where some stage gives NaN, inf or |y| > VALUE_MAX on mu +- 12 sigma (what quadrature
    integrates over)."""
    x = np.concatenate([mu + sigma * np.linspace(-GRID_SIGMAS, GRID_SIGMAS, GRID_POINTS), [mu]])
    for stage in stages:
        inputs = x
        y, dy = stage.f(inputs), stage.df(inputs)
        for name, values in (("value", y), ("derivative", dy)):
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(values) <= VALUE_MAX)  # NaN and inf too
            if bad.any():
                at = float(inputs[np.argmax(bad)])
                where = " in its derivative" if name == "derivative" else ""
                raise MomentcalcError(
                    f"{stage.label} gives NaN or inf (or |value| > {VALUE_MAX:g}){where} at x = {at:.6g} "
                    f"(checked on mu +- {GRID_SIGMAS:g} sigma of its input); "
                    "change the expression so it is finite on the whole line"
                )
        x = np.concatenate([y, [0.0]]) if stage.keep < 1.0 else y
    _check_tails(stages, x[:GRID_POINTS], x[GRID_POINTS], " | ".join(s.label for s in stages))


def _check_tails(stages, y: np.ndarray, y_mu: float, label: str) -> None:
    """MomentcalcError where (y - y(mu))^2 phi is not negligible at 12 sigma: the variance may not exist
    (e.g. exp(x^2/4))."""
    b = np.linspace(-GRID_SIGMAS, GRID_SIGMAS, GRID_POINTS)
    with np.errstate(all="ignore"):
        weight = (y - y_mu) ** 2 * np.exp(-0.5 * b * b)
    edge = np.abs(b) >= GRID_SIGMAS - 0.5
    peak = weight.max()
    if not np.isfinite(peak) or (peak > 0.0 and weight[edge].max() > TAIL_TOL * peak):
        raise MomentcalcError(
            f"{label} grows too fast for a normal input: (f - f(mu))^2 times the normal density is not negligible "
            f"at {GRID_SIGMAS:g} sigma, where integration stops: its variance may not exist (e.g. exp(x^2/4)) "
            "or is too heavy-tailed to compute reliably; use a function that grows more slowly"
        )


def _chunk_rows(stages, mu, sigma, gens, sizes):
    """Rows [n, mean, M2, M3, M4] of the outputs, then the same of (dy/dx)^2, for chunks drawn from gens."""
    rows = []
    for gen, n in zip(gens, sizes):
        n = int(n)
        y = mu + sigma * gen.standard_normal(n)
        g = np.ones(n)
        for stage in stages:
            dy = stage.df(y)
            y = stage.f(y)
            if stage.keep < 1.0:
                kept = gen.random(n) < stage.keep
                y, dy = np.where(kept, y, 0.0), np.where(kept, dy, 0.0)
            g = g * dy
        g2 = g * g
        if not (np.isfinite(y).all() and np.isfinite(g2).all()):
            raise MomentcalcError(
                f"{' | '.join(s.label for s in stages)} gave NaN or inf on a Monte Carlo draw: "
                "the function must be finite on the whole line"
            )
        rows.append(_moments(y) + _moments(g2))
    return np.array(rows)


def _moments(v: np.ndarray) -> list[float]:
    m = v.mean()
    d = v - m
    d2 = d * d
    return [len(v), m, d2.sum(), (d2 * d).sum(), (d2 * d2).sum()]


def run_numpy(stages, mu, sigma, settings: RunSettings = RunSettings()) -> moments.Summary:
    """Summary of the outputs, with E[(dy/dx)^2] as grad_sq, by chunked numpy Monte Carlo."""
    if driver.current_executor() is not None:
        # Refused, not run here quietly: the user asked for a cluster. Shipping user code to workers (cloudpickle)
        # would fail there on whatever it imports that they lack, and a worker with several threads would run
        # code that need not be thread-safe in parallel.
        raise MomentcalcError(
            f"{' | '.join(s.label for s in stages)} runs in numpy in this process, not on a Dask scheduler "
            "(Python callables and expr(...) specs): run it without --scheduler (scheduler=None)"
        )
    launch = partial(_chunk_rows, stages, mu, sigma)
    chunks = driver.Chunks(CHUNK, partial(driver.generators, settings.seed), launch, parallel=False)
    return driver.drive(chunks, moments.PLAIN_ROWS, settings, DEFAULT_SAMPLES)


def notes(stages) -> tuple[str, ...]:
    return (NOTE_NUMERICAL,) if any(s.numerical for s in stages) else ()


NOTE_NUMERICAL = NUMERICAL + " (central differences) in E[f'(X)^2]"


def montecarlo_estimate(spec: Spec, mu, sigma, norms: tuple | None, settings: RunSettings) -> Estimate:
    """Monte Carlo of a spec that holds expr(...): the numpy path, grad_sq included."""
    start = time.perf_counter()
    stages = vector_program(spec, norms)
    check_finite_on_grid(stages, mu, sigma)
    summary = run_numpy(stages, mu, sigma, settings)
    grad = all(op.kind != catalog.WINDOW for op in spec.ops)
    return summary.estimate("montecarlo", settings.seed, time.perf_counter() - start, grad, notes(stages))


def quadrature_notes(spec: Spec) -> tuple[str, ...]:
    return (NOTE_NUMERICAL,) if needs_numpy(spec) else ()


def check_spec_finite(spec: Spec, mu: float, sigma: float, norms: tuple | None) -> None:
    if needs_numpy(spec):
        check_finite_on_grid(vector_program(spec, norms), mu, sigma)

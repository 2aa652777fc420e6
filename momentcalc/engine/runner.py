"""One method on one spec: load what the method needs (timed apart from its work), run it, and give its estimate
with E[f'(X)^2] where the same method has it, or decline (NotApplicable)."""

from __future__ import annotations

import math
import time
from dataclasses import replace

from .. import catalog
from .._lazy import lazy_module
from ..estimators import NotApplicable, closed
from ..result import Estimate, half_width
from ..settings import RunSettings
from ..spec import Spec
from .checks import SEVERAL, sampled_after

# scipy and scipy.stats cost most of a second to import: a Monte Carlo-only run never pays for them.
quadrature = lazy_module("momentcalc.estimators.quadrature")
qmc = lazy_module("momentcalc.estimators.qmc")
certified = lazy_module("momentcalc.estimators.certified")  # python-flint: only when certifying
# numba (0.5-0.7 s to import, and its kernels 0.3 s to load): only runs that sample load these.
driver = lazy_module("momentcalc.estimators.driver")
montecarlo = lazy_module("momentcalc.estimators.montecarlo")
products = lazy_module("momentcalc.products")
# numpy: a run of the exact methods (`estimate relu`) needs none.
vectorized = lazy_module("momentcalc.estimators.vectorized")
sampled_mc = lazy_module("momentcalc.estimators.sampled_mc")


def import_for(name: str, overheads: dict) -> None:
    """Load the modules the method needs (lazy modules load on their first attribute), timed as
    overheads["imports"]: an estimate's seconds are its own computation."""
    start = time.perf_counter()
    if name == "quadrature":
        quadrature.estimate_moments  # noqa: B018 (scipy.integrate)
    elif name == "certified":
        certified.flint.arb  # noqa: B018 (python-flint)
    elif name == "qmc":
        qmc.scipy_qmc  # noqa: B018 (scipy.stats, with the module)
    overheads["imports"] += since(start)


def load_kernel(name: str, spec: Spec, mu: float, sigma: float, norms: tuple | None, overheads: dict) -> None:
    """Monte Carlo: load its kernel from the disk cache (compile it on a first run), timed as overheads["kernels"]
    (with a Dask scheduler qmc's too: a first compile here fills the numba cache that local workers load from)."""
    declared = any(op.kind in SEVERAL for op in spec.ops) or products.law_route(spec, name)
    if name in ("montecarlo", "qmc") and not vectorized.needs_numpy(spec) and not declared:
        start = time.perf_counter()
        prepare = montecarlo.prepare if name == "montecarlo" else qmc.prepare
        prepare(montecarlo.compile_program(spec, mu, sigma, norms))
        overheads["kernels"] += since(start)


def run(
    name: str, spec: Spec, mu: float, sigma: float, norms: tuple | None, settings: RunSettings, digits: int | None
) -> Estimate:
    start = time.perf_counter()
    for op in spec.ops:  # an op that says why a method declines it is refused with its own reason
        why = op.info.declined_by(name)
        if why is not None:
            raise NotApplicable(f"{name} declines {op}: {why}")
    if sampled_after(spec):
        return _sampled_pipeline(name, spec, mu, sigma, norms, settings)
    if spec.ops[0].kind in SEVERAL and len(spec.ops) > 1:
        return _normalized(run(name, Spec(spec.ops[:1]), mu, sigma, None, settings, digits), norms)
    if spec.last.kind == catalog.PRODUCT:
        return products.estimate(name, spec.last, mu, sigma, settings, digits)
    if spec.last.kind == catalog.RESIDUAL:
        return products.residual_estimate(name, spec.last, mu, sigma, settings)
    if products.law_route(spec, name):
        return products.law_estimate(name, spec.last, mu, sigma, settings)
    if name == "certified":
        return _certified(spec, mu, sigma, digits, start)
    if name == "closed":
        m = closed.estimate_moments(spec, mu, sigma)
        return Estimate("closed", m.mean, m.std, m.mean_err, m.std_err, seconds=since(start))
    if name == "quadrature":
        vectorized.check_spec_finite(spec, mu, sigma, norms)
        mean, std, mean_err, std_err = quadrature.estimate_moments(spec, mu, sigma)
        notes = vectorized.quadrature_notes(spec)
        return Estimate("quadrature", mean, std, mean_err, std_err, seconds=since(start), notes=notes)
    if vectorized.needs_numpy(spec):  # expr(...) cannot be jitted: numpy Monte Carlo
        if name != "montecarlo":
            raise NotApplicable(f"{name} does not run user expressions; use quadrature or montecarlo")
        return vectorized.montecarlo_estimate(spec, mu, sigma, norms, settings)
    program = montecarlo.compile_program(spec, mu, sigma, norms)
    runner = qmc.run if name == "qmc" else montecarlo.run
    default = qmc.DEFAULT_SAMPLES if name == "qmc" else montecarlo.DEFAULT_SAMPLES
    settings, notes = driver.within_budget(settings, program.normals_per_output, default)  # cost, before the run
    return runner(program, settings).estimate(name, settings.seed, since(start), notes=notes)


def _sampled_pipeline(
    name: str, spec: Spec, mu: float, sigma: float, norms: tuple | None, settings: RunSettings
) -> Estimate:
    """An op of iid inputs after elementwise ops: its inputs are not Gaussian, so its declared laws do not apply;
    Monte Carlo samples it, each input drawn through the elementwise stages (numpy). A residual mix after them is one
    function of the Gaussian input, as alone (products.residual_estimate)."""
    op = spec.last
    if op.kind == catalog.RESIDUAL:
        return products.residual_estimate(name, op, mu, sigma, settings, Spec(spec.ops[:-1]))
    if name != "montecarlo":
        raise NotApplicable(
            f"{name} does not treat {op} after other ops: its declared law is for Gaussian inputs; only montecarlo "
            f"samples it after elementwise ops"
        )
    before = Spec(spec.ops[:-1])
    vectorized.vector_program(before, None if norms is None else norms[:-1])  # refuses what numpy cannot run
    return sampled_mc.run(op, mu, sigma, settings, (before, None if norms is None else norms[:-1]))


def _normalized(found: Estimate, norms: tuple) -> Estimate:
    """An estimate of an op of several inputs, through the normalize ops after it: (y - m) / s with the constants'
    errors added to the estimate's own; grad_sq / s^2. Certified declines: the constants are doubles, not balls."""
    if found.method == "certified":
        raise NotApplicable(
            "certified does not certify normalize after an op of several inputs (its constants are doubles)"
        )
    for m, s, m_err, s_err in (n for n in norms if n is not None):
        std = None if found.std is None else found.std / s
        found = replace(
            found,
            mean=(found.mean - m) / s,
            mean_se=(found.mean_se + m_err) / s + abs(found.mean - m) * s_err / s**2,
            std=std,
            std_se=None if std is None else found.std_se / s + std * s_err / s,
            grad_sq=None if found.grad_sq is None else found.grad_sq / (s * s),
            grad_sq_se=None if found.grad_sq is None else found.grad_sq_se / (s * s) + 2 * found.grad_sq * s_err / s**3,
        )
    return found


def _certified(spec: Spec, mu: float, sigma: float, digits: int | None, start: float) -> Estimate:
    """The certified estimate: correctly rounded values, half the enclosure's width as uncertainty, the intervals."""
    found = certified.estimate(spec, mu, sigma, digits)
    fields = {}
    for quantity in ("mean", "std", "grad_sq"):
        c = found.get(quantity)
        fields[quantity] = None if c is None else c.value
        fields[quantity + "_se"] = None if c is None else half_width(c.lo, c.hi)
        fields[quantity + "_interval"] = None if c is None else (c.lo, c.hi)
        fields[quantity + "_digits"] = None if c is None else c.digits
    return Estimate("certified", seconds=since(start), **fields)


def with_grad_sq(estimate: Estimate, spec: Spec, mu: float, sigma: float, norms: tuple | None) -> Estimate:
    """The estimate with E[f'(X)^2] by the same exact method where it has one (Monte Carlo kernels give their own)."""
    if estimate.grad_sq is not None or any(op.kind == catalog.WINDOW for op in spec.ops):
        return estimate
    try:
        if estimate.method == "closed":
            value, err = closed.grad_sq(spec, mu, sigma)
            return replace(estimate, grad_sq=value, grad_sq_se=err)
        if estimate.method == "quadrature":
            value, err = quadrature.grad_sq(spec, mu, sigma, norms)
            return replace(estimate, grad_sq=value, grad_sq_se=err)
    except NotApplicable:
        pass
    return estimate


def since(start: float) -> float:
    return time.perf_counter() - start


def finite(estimate: Estimate) -> Estimate:
    """The estimate, if every number in it is finite; a method that cannot give finite numbers declines.

    Without this a NaN or inf from some corner of a closed form would become the value of record,
    or reach --json (which JSON cannot carry). A non-finite E[f'^2] alone is dropped, not the estimate.
    """
    e = estimate
    grad = [e.grad_sq, e.grad_sq_se, *(e.grad_sq_interval or ())]
    if not all(v is None or math.isfinite(v) for v in grad):
        e = replace(e, grad_sq=None, grad_sq_se=None, grad_sq_interval=None, grad_sq_digits=None)
    moments = [e.mean, e.std, e.mean_se, e.std_se, *(e.mean_interval or ()), *(e.std_interval or ())]
    if not all(v is None or math.isfinite(v) for v in moments):
        raise NotApplicable(f"{e.method} gives a non-finite value here ({', '.join(map(repr, moments))})")
    return e

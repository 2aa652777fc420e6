"""Ops of several independent Gaussian inputs whose output is a product of one-input factors (catalog.PRODUCT).

A gated unit y = x * h(g), with value x and gate g independent N(mu, sigma^2), declares its inputs
("value", "gate") and one elementwise op per input (identity, and h). Every method derives the op's moments
and its backward constants from that declaration: the factors' one-input moments by the same method, combined
(estimators.product_moments), except Monte Carlo, which samples the op itself (estimators.product_mc).
"""

from __future__ import annotations

import time

from . import catalog
from ._lazy import lazy_module
from .errors import MomentcalcError
from .estimators import NotApplicable, closed
from .result import Estimate
from .settings import DEFAULT_SAMPLES, RunSettings
from .spec import Op, Spec, parse

quadrature = lazy_module("momentcalc.estimators.quadrature")
certified = lazy_module("momentcalc.estimators.certified")
certified_product = lazy_module("momentcalc.estimators.certified_product")
product_mc = lazy_module("momentcalc.estimators.product_mc")
program = lazy_module("momentcalc.estimators.program")
montecarlo = lazy_module("momentcalc.estimators.montecarlo")
driver = lazy_module("momentcalc.estimators.driver")
product_moments = lazy_module("momentcalc.estimators.product_moments")
certified_law = lazy_module("momentcalc.estimators.certified_law")
sampled_mc = lazy_module("momentcalc.estimators.sampled_mc")
vectorized = lazy_module("momentcalc.estimators.vectorized")

# The declared-law routes: which declaration each method reads for a lone op that declares its law.
LAW_ROUTES = {"certified": "ball_law", "quadrature": "quad_law", "montecarlo": "sample"}


def law_route(spec: Spec, method: str) -> bool:
    """The spec is one op that declares its law for this method (catalog.OpInfo.sample, ball_law, quad_law)."""
    field = LAW_ROUTES.get(method)
    return len(spec.ops) == 1 and field is not None and getattr(spec.last.info, field) is not None


def law_estimate(method: str, op: Op, mu: float, sigma: float, settings: RunSettings) -> Estimate:
    """The lone op's moments and backward constant by its declared law."""
    start = time.perf_counter()
    if method == "montecarlo":
        return sampled_mc.run(op, mu, sigma, settings)
    if method == "certified":
        return _certified(certified_law.estimate(op, mu, sigma), start)
    found = op.info.quad_law(op, mu, sigma)
    if found is None:
        raise NotApplicable(f"no quadrature of {op} is declared at mu={mu:g}, sigma={sigma:g}")
    if isinstance(found, str):
        raise NotApplicable(f"quadrature declines {op} at mu={mu:g}, sigma={sigma:g}: {found}")
    mean, std, mean_err, std_err, grad, grad_err = found
    return Estimate(
        "quadrature",
        mean,
        std,
        mean_err,
        std_err,
        seconds=time.perf_counter() - start,
        grad_sq=grad,
        grad_sq_se=grad_err,
    )


def factors(op: Op) -> tuple[Spec, ...]:
    """One parsed elementwise spec per input, as the op declares them."""
    specs = tuple(parse(text) for text in op.info.factors(op))
    bad = [str(s) for s in specs if len(s.ops) != 1 or s.last.kind != catalog.ELEMENTWISE]
    if bad or len(specs) != len(op.info.inputs):
        raise NotApplicable(f"{op} declares factors {bad or specs} that are not one elementwise op per input")
    return specs


def _wrt(op: Op) -> int:
    return op.info.inputs.index(op.get("wrt"))


def declines(info: catalog.OpInfo, method: str) -> str | None:
    """Why `method` treats no use of a product op, from its declaration; None where it does."""
    if info.factors is None or not info.inputs:
        return "it declares no factors"
    if method == "qmc":
        return "quasi-Monte Carlo does not sample ops of several inputs"
    if method == "closed":  # every factor (at the op's defaults) must declare closed moments and E[f'^2]
        try:
            infos = [s.last.info for s in factors(Op(info.name))]
        except (NotApplicable, MomentcalcError, TypeError):
            return "its factors at the op's defaults are not known"
        if not all(i.closed is not None and i.grad_closed is not None for i in infos):
            return "not every factor declares closed forms of its moments and E[f'^2]"
    return None


def estimate(method: str, op: Op, mu: float, sigma: float, settings: RunSettings, digits: int | None) -> Estimate:
    why = declines(op.info, method)
    if why is not None:
        raise NotApplicable(f"{method} does not treat {op}: {why}")
    start = time.perf_counter()
    specs, wrt = factors(op), _wrt(op)
    if method == "montecarlo":
        samples = settings.samples or DEFAULT_SAMPLES
        return product_mc.run(tuple(s.last for s in specs), wrt, mu, sigma, samples, settings.seed)
    if method == "certified":
        if digits is not None:
            raise NotApplicable(f"digits= is not certified for {op}, an op of several inputs")
        return _certified(certified_product.estimate(specs, wrt, mu, sigma), start)
    parts = tuple(_factor(method, s, mu, sigma) for s in specs)
    mean, var, grad = product_moments.combine(parts, wrt)
    mean_err, std_err, grad_err = product_moments.combine_errors(parts, wrt)
    return Estimate(
        method,
        mean,
        var**0.5,
        mean_err,
        std_err,
        seconds=time.perf_counter() - start,
        grad_sq=grad,
        grad_sq_se=grad_err,
    )


def _factor(method: str, spec: Spec, mu: float, sigma: float):
    """One factor's moments (floats with error bounds) by closed forms or quadrature."""
    if method == "closed":
        m = closed.estimate_moments(spec, mu, sigma)
        if m.std is None:
            raise NotApplicable(f"no closed form of the std of {spec}")
        grad, grad_err = closed.grad_sq(spec, mu, sigma)  # each closed form states its rounding bound
        std_err = m.std_err or 0.0
        return product_moments.Factor(
            m.mean, m.std**2, grad, m.mean_err or 0.0, 2 * m.std * std_err + std_err**2, grad_err
        )
    if method == "quadrature":
        mean, std, mean_err, std_err = quadrature.estimate_moments(spec, mu, sigma)
        grad, grad_err = quadrature.grad_sq(spec, mu, sigma, None)
        return product_moments.Factor(mean, std * std, grad, mean_err, 2 * std * std_err + std_err**2, grad_err)
    raise NotApplicable(f"{method} does not treat ops of several inputs")


def residual_estimate(
    method: str, op: Op, mu: float, sigma: float, settings: RunSettings, before: Spec | None = None
) -> Estimate:
    """y = sqrt(1 - tau) x + sqrt(tau) F(x) as one numpy function of the Gaussian input X ~ N(mu, sigma^2), with x = X
    or x = P(X) for elementwise ops P before the mix (`before`), F's normalize constants exact at F's input, by
    quadrature (which integrates x F(x) with F) or Monte Carlo (the chain kernel, F inside a skip connection, where
    nothing precedes the mix and F holds no expr; numpy otherwise); dy/dX by the chain rule."""
    if method not in ("quadrature", "montecarlo"):
        raise NotApplicable(f"{method} does not treat {op}: only quadrature and Monte Carlo integrate x F(x)")
    start = time.perf_counter()
    prefix = () if before is None else before.ops
    whole = Spec(prefix + parse(op.get("f")).ops)  # P then F: normalize's constants in F are those at P's output
    norms = quadrature.normalize_constants(whole, mu, sigma)
    staged = vectorized.vector_program(whole, norms)
    first, stages = staged[: len(prefix)], staged[len(prefix) :]
    a, b = (1 - op.get("tau")) ** 0.5, op.get("tau") ** 0.5

    def f(x):
        x = _through(first, x)[0]
        return a * x + b * _through(stages, x)[0]

    def df(x):
        x, slope = _through(first, x)
        return slope * (a + b * _through(stages, x)[1])

    if method == "montecarlo" and not prefix and not vectorized.needs_numpy(whole):
        # The chain kernel, F's stages inside a skip connection: y and dy/dx per draw, compiled.
        chain = program.skip_program(montecarlo.compile_program(whole, mu, sigma, norms), a, b)
        settings, notes = driver.within_budget(settings, 1, montecarlo.DEFAULT_SAMPLES)
        summary = montecarlo.run(chain, settings)
        return summary.estimate(method, settings.seed, time.perf_counter() - start, notes=notes)
    stage = vectorized.VecStage(str(op), f, df)
    if method == "quadrature":
        mean, std, mean_err, std_err, grad, grad_err = quadrature.callable_moments(stage, mu, sigma)
        return Estimate(
            method, mean, std, mean_err, std_err, seconds=time.perf_counter() - start, grad_sq=grad, grad_sq_se=grad_err
        )
    summary = vectorized.run_numpy([stage], mu, sigma, settings)
    return summary.estimate(method, settings.seed, time.perf_counter() - start)


def _through(stages, x):
    """(F(x), F'(x)) through the stages, the derivative by the chain rule."""
    grad = 1.0
    for s in stages:
        grad = grad * s.df(x)
        x = s.f(x)
    return x, grad


def _certified(found: dict, start: float) -> Estimate:
    fields = {}
    for quantity in ("mean", "std", "grad_sq"):
        c = found.get(quantity)
        if c is None:
            fields.update({quantity: None, quantity + "_se": None, quantity + "_interval": None})
            continue
        fields.update({quantity: c.value, quantity + "_se": (c.hi - c.lo) / 2.0, quantity + "_interval": (c.lo, c.hi)})
    return Estimate("certified", seconds=time.perf_counter() - start, **fields)

"""estimate(): run every method that applies to a spec and cross-check them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import replace
from types import SimpleNamespace

from . import catalog, crosscheck
from ._lazy import lazy_module
from .errors import MomentcalcError
from .estimators import NotApplicable, closed, support
from .result import Estimate, Result, half_width, informative
from .settings import (  # noqa: F401 (METHODS: re-exported)
    METHODS,
    MU_MAX,
    SIGMA_MAX,
    SIGMA_MIN,
    Progress,
    RunSettings,
    is_finite,
    is_int,
    shown,
)
from .spec import Spec, parse

# scipy and scipy.stats cost most of a second to import: a Monte Carlo-only run never pays for them.
quadrature = lazy_module("momentcalc.estimators.quadrature")
qmc = lazy_module("momentcalc.estimators.qmc")
certified = lazy_module("momentcalc.estimators.certified")  # python-flint: only when certifying
spatial = lazy_module("momentcalc.spatial")
# numba (0.5-0.7 s to import, and its kernels 0.3 s to load): only runs that sample load these.
driver = lazy_module("momentcalc.estimators.driver")
montecarlo = lazy_module("momentcalc.estimators.montecarlo")
jit = lazy_module("momentcalc.estimators.jit")
program = lazy_module("momentcalc.estimators.program")
products = lazy_module("momentcalc.products")
# numpy, asyncio: a run of the exact methods on one process (`estimate relu`) needs neither.
cluster = lazy_module("momentcalc.estimators.cluster")
vectorized = lazy_module("momentcalc.estimators.vectorized")
sampled_mc = lazy_module("momentcalc.estimators.sampled_mc")


def estimate(
    spec: str | Spec,
    mu: float = 0.0,
    sigma: float = 1.0,
    method: str = "auto",
    samples: int | None = None,
    tol: float | None = None,
    seed: int = 0,
    z: float = crosscheck.DEFAULT_Z,
    progress: Progress | None = None,
    grad=None,
    size: int | None = None,
    digits: int | None = None,
    methods: tuple[str, ...] | None = None,
    scheduler=None,
    timeout: float | None = None,
) -> Result:
    """Moments of the spec's output for X ~ N(mu, sigma^2), by every method asked for.

    method: 'auto' (certified and the closed form, then quadrature and Monte Carlo only
    while the estimates so far do not check each other: cross_checked; with samples or
    tol or a scheduler, every exact method and Monte Carlo), 'all' (every
    applicable method: the exact ones, Monte Carlo and quasi-Monte Carlo), or one of 'certified',
    'closed', 'quadrature', 'montecarlo', 'qmc'. certified (ball arithmetic) gives
    each quantity as the correctly rounded double with an interval that holds the
    true value; digits=N asks it for N correctly rounded significant digits too.
    methods, if given, is the exact list of methods to try (each skipped where it
    does not apply, as with 'auto'); it overrides method. samples/tol/seed steer (quasi-)Monte
    Carlo: a fixed sample count (default 2**22, 2**20 for qmc) or a target
    standard error for both mean and std.

    spec may also be a vectorized Python callable fn (numpy array in, array
    out): then quadrature uses it directly and Monte Carlo runs in numpy;
    grad, if given, is its derivative (otherwise central differences).
    The result carries E[f'(X)^2] as grad_sq for chains of elementwise ops.

    Without size, a window op means an interior window of n iid inputs: its
    stride s and padding p change nothing there. With size (the side of the
    input feature map: I x I for dims=2, I for dims=1, I^3 for dims=3) the
    answer is a spatial.SpatialResult: the mean and std of every output
    position, border windows included (see momentcalc.spatial); samples is
    then the number of simulated maps.

    scheduler: run the Monte Carlo chunks on a Dask cluster, with the same bits
    as here: an address ('tcp://host:8786'), 'local:N' (N worker processes on
    this machine) or a dask.distributed.Client (see estimators/cluster.py).
    timeout: with a scheduler, the longest wait in seconds for it to answer, for a first worker and for each
    next task to finish (default 10 s to connect, 30 s for a worker, 120 s for a task).
    """
    on_cluster = scheduler is not None or timeout is not None  # (a timeout alone is checked there)
    if scheduler is not None and method == "auto" and methods is None:
        methods = EVERY_EXACT_AND_MONTECARLO  # a cluster is for Monte Carlo: auto runs it, as with samples
    with cluster.running_on(scheduler, timeout) if on_cluster else nullcontext():
        return _estimate(spec, mu, sigma, method, samples, tol, seed, z, progress, grad, size, digits, methods)


def _estimate(spec, mu, sigma, method, samples, tol, seed, z, progress, grad, size, digits, methods) -> Result:
    user_fn = callable(spec) and not isinstance(spec, (str, Spec))
    if not user_fn and not isinstance(spec, (str, Spec)):
        hint = f"; decode it first: {spec.decode(errors='replace')!r}" if isinstance(spec, bytes) else ""
        raise MomentcalcError(
            f"spec must be text such as 'relu' or 'relu | maxpool(k=3)' (or a vectorized Python callable), "
            f"got {type(spec).__name__} {shown(spec)}{hint}"
        )
    if size is not None and user_fn:
        raise MomentcalcError("size= takes a text spec such as 'maxpool(k=3,s=1,p=1)', not a Python callable")
    if grad is not None and not user_fn:
        raise MomentcalcError("grad= is for a callable spec (its derivative); a text spec has its derivatives built in")
    parsed = parse(spec) if isinstance(spec, str) else spec
    settings = RunSettings(method, samples, tol, seed, z, progress)  # checks its fields, takes numpy scalars
    mu, sigma = _check_input(mu, sigma)
    if user_fn:
        return estimate_callable(spec, grad, mu, sigma, settings)
    if size is not None:
        _check_no_map(parsed)
        return spatial.estimate_map(parsed, int(size) if is_int(size) else size, mu, sigma, settings)
    if digits is not None and (not is_int(digits) or not 1 <= digits <= 600):
        raise MomentcalcError(f"digits must be a whole number from 1 to 600, got {shown(digits)}")
    digits = None if digits is None else int(digits)
    if methods is not None and not isinstance(methods, (list, tuple)):
        raise MomentcalcError(
            f"methods must be a list of method names such as ['closed', 'quadrature'], got {shown(methods)}"
        )
    wanted = AUTO.get(method, (method,)) if methods is None else tuple(methods)
    unknown = [m for m in wanted if m not in METHODS or m in AUTO]
    if unknown:
        raise MomentcalcError(f"unknown method {unknown[0]!r} in methods; use some of {', '.join(METHODS[2:])}")
    if settings.samples is not None and sampling(wanted):
        driver.within_budget(settings, window_product(parsed), montecarlo.DEFAULT_SAMPLES)  # refuse before any work
    _check_products(parsed)
    try:
        norms = normalize_constants(parsed, mu, sigma)
    except NotApplicable as why:
        raise MomentcalcError(f"no method applies to '{parsed}': {why}") from None
    estimates, overheads, not_run = [], {"imports": 0.0, "kernels": 0.0}, []
    # auto leaves out what it need not run, unless samples or a tolerance ask for Monte Carlo: then it runs all.
    lean = method == "auto" and methods is None and settings.samples is None and settings.tol is None
    with ExitStack() as stack:
        clock = NOTHING_COMPILED
        for name in wanted:
            if lean and name in AUTO_IF_NEEDED and cross_checked(estimates):
                not_run.append(name)
                continue
            if name in SAMPLING and clock is NOTHING_COMPILED:  # numba loads here, where something samples
                clock = stack.enter_context(jit.compile_clock(_DEFERRED_NOTIFY.get()))
            try:
                _import_for(name, overheads)
                _load_kernel(name, parsed, mu, sigma, norms, overheads)
                compiled = clock.seconds
                found = _run(name, parsed, mu, sigma, norms, settings, digits)
                # What compiling was left inside the run (qmc's kernels) is charged to "kernels", not to it.
                compiled = clock.seconds - compiled
                overheads["kernels"] += compiled
                found = replace(found, seconds=max(found.seconds - compiled, 0.0))
                estimates.append(finite(_with_grad_sq(found, parsed, mu, sigma, norms)))
            except NotApplicable as why:
                if method not in AUTO and methods is None:
                    raise MomentcalcError(str(why)) from None
    if not estimates:
        raise MomentcalcError(f"no method applies to '{parsed}'")
    checks = crosscheck.compare(tuple(estimates), settings.z)
    return Result(str(parsed), mu, sigma, tuple(estimates), checks, overheads=overheads, not_run=tuple(not_run))


def method_support(info: catalog.OpInfo) -> dict[str, str | None]:
    """Per method, None where it treats some use of the op, else why it treats none: each method reads the op's
    declaration (`momentcalc list`). Whether it treats a given spec still depends on the spec (its parameters,
    what precedes it): `estimate --method all` tells."""
    found = _method_support(info)
    return {m: info.declined_by(m) or why for m, why in found.items()}


def _method_support(info: catalog.OpInfo) -> dict[str, str | None]:
    if info.kind == catalog.LAYER:
        return dict.fromkeys(METHODS[2:], "a layer for `momentcalc backward` only")
    if info.kind == catalog.PRODUCT:
        return {m: products.declines(info, m) for m in ("certified", "closed", "quadrature", "qmc", "montecarlo")}
    if info.kind == catalog.RESIDUAL:
        why = "only quadrature and Monte Carlo integrate x F(x)"
        return {m: None if m in ("quadrature", "montecarlo") else why for m in METHODS[2:]}
    found = {
        "certified": support.certified(info),
        "closed": closed.declines(info),
        "quadrature": support.quadrature(info),
        "qmc": support.kernels(info, numpy_path=False),
        "montecarlo": support.kernels(info),
    }
    # A lone op that declares its law for a method (products.LAW_ROUTES) is treated by it.
    return {
        m: None if getattr(info, products.LAW_ROUTES.get(m, ""), None) is not None else why for m, why in found.items()
    }


def _check_no_map(spec: Spec) -> None:
    """Feature maps (size=) are of window ops over elementwise ones; an op of several inputs has none here."""
    several = [op for op in spec.ops if op.kind in (catalog.PRODUCT, catalog.JOINT, catalog.RESIDUAL)]
    if several:
        raise MomentcalcError(
            f"size= maps a spec of window and elementwise ops over a feature map; {several[0]} (an op of several "
            f"inputs) has no map here: estimate it without size"
        )


SEVERAL = (catalog.PRODUCT, catalog.JOINT, catalog.RESIDUAL)  # the kinds of ops of several inputs


def _several_first(spec: Spec) -> bool:
    """The spec is an op of several inputs, then only normalize ops (each by the exact moments before it)."""
    return spec.ops[0].kind in SEVERAL and all(op.kind == catalog.NORMALIZE for op in spec.ops[1:])


def _takes_after(op) -> bool:
    """An op that may come last after elementwise ops and normalize: an op of iid inputs that declares its sampler
    (catalog.JOINT: lppool, a norm, softmax; each input the same function of its own Gaussian, sampled as such), or a
    residual mix (one function of the one input)."""
    return (op.kind == catalog.JOINT and op.info.sample is not None) or op.kind == catalog.RESIDUAL


def _sampled_after(spec: Spec) -> bool:
    """The spec is elementwise ops and normalize, then last an op _takes_after allows."""
    *prefix, last = spec.ops
    return (
        bool(prefix)
        and _takes_after(last)
        and all(op.kind in (catalog.ELEMENTWISE, catalog.NORMALIZE) for op in prefix)
    )


def _check_products(spec: Spec) -> None:
    """An op of several inputs takes Gaussian inputs: it comes first, followed by normalize ops at most; an op of
    iid inputs that declares its sampler may also come last after elementwise ops and normalize (Monte Carlo)."""
    several = [op for op in spec.ops if op.kind in SEVERAL]
    if several and not _several_first(spec) and not _sampled_after(spec):
        op = several[0]
        inputs = ", ".join(op.info.inputs) or "iid"
        after = "; after elementwise ops and normalize it comes last" if _takes_after(op) else ""
        raise MomentcalcError(
            f"{op} takes independent Gaussian inputs ({inputs}): it comes first, followed by normalize at most{after}, "
            f"not as in '{spec}'; estimate '{op}' or '{op} | normalize'"
        )


def _import_for(name: str, overheads: dict) -> None:
    """Load the modules the method needs (lazy modules load on their first attribute), timed as
    overheads["imports"]: an estimate's seconds are its own computation."""
    start = time.perf_counter()
    if name == "quadrature":
        quadrature.estimate_moments  # noqa: B018 (scipy.integrate)
    elif name == "certified":
        certified.flint.arb  # noqa: B018 (python-flint)
    elif name == "qmc":
        qmc.scipy_qmc  # noqa: B018 (scipy.stats, with the module)
    overheads["imports"] += _since(start)


AUTO = {
    "auto": ("certified", "closed", "quadrature", "montecarlo"),
    "all": ("certified", "closed", "quadrature", "qmc", "montecarlo"),
}
# auto runs these only while the estimates so far do not check each other (cross_checked): quadrature costs
# scipy's import (about 0.2 s), Monte Carlo numba's and its kernels' (0.3-0.5 s), where certified and a closed form
# take milliseconds. A table build runs every one of them (EVERY_EXACT_AND_MONTECARLO).
AUTO_IF_NEEDED = ("quadrature", "montecarlo")
EVERY_EXACT_AND_MONTECARLO = AUTO["auto"]


def cross_checked(estimates: list[Estimate]) -> bool:
    """Every quantity that some estimate gives (mean, std, E[f'^2]), two of them give with a usable bound: the
    value of record has an independent method to agree with (crosscheck.compare compares exactly these)."""
    given = [sum(informative(e, q) for e in estimates) for q in ("mean", "std", "grad_sq")]
    return given[0] >= 2 and all(n == 0 or n >= 2 for n in given[1:])


SAMPLING = ("montecarlo", "qmc")  # the methods that run compiled kernels
NOTHING_COMPILED = SimpleNamespace(seconds=0.0)  # the clock of a run that compiles nothing


def sampling(methods: tuple[str, ...]) -> bool:
    """Some of these methods samples (runs numba kernels)."""
    return any(m in SAMPLING for m in methods)


def compile_clock(notify: Callable[[bool], None] | None = None, method: str = "auto") -> AbstractContextManager:
    """Seconds numba spends compiling while the block runs (jit.compile_clock), for a run of `method`;
    notify(True/False) as a compilation starts and ends.

    For 'auto', which samples only where its exact methods do not check each other, numba is not loaded up front:
    notify passes to the clock that estimate() starts where Monte Carlo runs, and this one reads 0 seconds."""
    if method == "auto":
        return _deferred(notify)
    return _compile_clock(AUTO.get(method, (method,)), notify)


_DEFERRED_NOTIFY: ContextVar = ContextVar("momentcalc_compile_notify", default=None)


@contextmanager
def _deferred(notify):
    token = _DEFERRED_NOTIFY.set(notify)
    try:
        yield NOTHING_COMPILED
    finally:
        _DEFERRED_NOTIFY.reset(token)


def _compile_clock(methods: tuple[str, ...], notify=None) -> AbstractContextManager:
    # Listening needs numba; a run that samples nothing compiles nothing and must not pay 0.5 s to import it.
    return jit.compile_clock(notify) if sampling(methods) else nullcontext(NOTHING_COMPILED)


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


def _check_input(mu, sigma) -> tuple[float, float]:
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


def window_product(spec: Spec) -> int:
    """Standard normals one output of the spec draws: the product of its window sizes."""
    return math.prod(op.window_size for op in spec.ops if op.kind == catalog.WINDOW)


def _load_kernel(name: str, spec: Spec, mu: float, sigma: float, norms: tuple | None, overheads: dict) -> None:
    """Monte Carlo: load its kernel from the disk cache (compile it on a first run), timed as overheads["kernels"]
    (with a Dask scheduler qmc's too: a first compile here fills the numba cache that local workers load from)."""
    declared = any(op.kind in SEVERAL for op in spec.ops) or products.law_route(spec, name)
    if name in ("montecarlo", "qmc") and not vectorized.needs_numpy(spec) and not declared:
        start = time.perf_counter()
        prepare = montecarlo.prepare if name == "montecarlo" else qmc.prepare
        prepare(montecarlo.compile_program(spec, mu, sigma, norms))
        overheads["kernels"] += _since(start)


def _run(
    name: str, spec: Spec, mu: float, sigma: float, norms: tuple | None, settings: RunSettings, digits: int | None
) -> Estimate:
    start = time.perf_counter()
    for op in spec.ops:  # an op that says why a method declines it is refused with its own reason
        why = op.info.declined_by(name)
        if why is not None:
            raise NotApplicable(f"{name} declines {op}: {why}")
    if _sampled_after(spec):
        return _sampled_pipeline(name, spec, mu, sigma, norms, settings)
    if spec.ops[0].kind in SEVERAL and len(spec.ops) > 1:
        return _normalized(_run(name, Spec(spec.ops[:1]), mu, sigma, None, settings, digits), norms)
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
        return Estimate("closed", m.mean, m.std, m.mean_err, m.std_err, seconds=_since(start))
    if name == "quadrature":
        vectorized.check_spec_finite(spec, mu, sigma, norms)
        mean, std, mean_err, std_err = quadrature.estimate_moments(spec, mu, sigma)
        notes = vectorized.quadrature_notes(spec)
        return Estimate("quadrature", mean, std, mean_err, std_err, seconds=_since(start), notes=notes)
    if vectorized.needs_numpy(spec):  # expr(...) cannot be jitted: numpy Monte Carlo
        if name != "montecarlo":
            raise NotApplicable(f"{name} does not run user expressions; use quadrature or montecarlo")
        return vectorized.montecarlo_estimate(spec, mu, sigma, norms, settings)
    program = montecarlo.compile_program(spec, mu, sigma, norms)
    runner = qmc.run if name == "qmc" else montecarlo.run
    default = qmc.DEFAULT_SAMPLES if name == "qmc" else montecarlo.DEFAULT_SAMPLES
    settings, notes = driver.within_budget(settings, program.normals_per_output, default)  # cost, before the run
    return runner(program, settings).estimate(name, settings.seed, _since(start), notes=notes)


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
    return Estimate("certified", seconds=_since(start), **fields)


def normalize_constants(spec: Spec, mu: float, sigma: float) -> tuple | None:
    """The constants of the spec's normalize ops, worked out once (quadrature.normalize_constants); None if none."""
    if not any(op.kind == catalog.NORMALIZE for op in spec.ops):
        return None
    if spec.ops[0].kind in SEVERAL:
        return _several_norms(spec, mu, sigma)
    return quadrature.normalize_constants(spec, mu, sigma)


def _several_norms(spec: Spec, mu: float, sigma: float) -> tuple:
    """normalize's constants after an op of several inputs: its value of record by the exact methods, then (0, 1)
    after each normalize (a normalized output has mean 0 and std 1 exactly)."""
    base = Spec(spec.ops[:1])
    try:
        record = _estimate(
            base,
            mu,
            sigma,
            "auto",
            None,
            None,
            0,
            crosscheck.DEFAULT_Z,
            None,
            None,
            None,
            None,
            ("certified", "closed", "quadrature"),
        ).record
    except MomentcalcError as why:
        raise NotApplicable(f"normalize needs the exact moments of {base}: {why}") from None
    first = (record.mean, record.std, record.mean_se, record.std_se)
    return (None, first, *((0.0, 1.0, 0.0, 0.0),) * (len(spec.ops) - 2))


def _with_grad_sq(estimate: Estimate, spec: Spec, mu: float, sigma: float, norms: tuple | None) -> Estimate:
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


def _since(start: float) -> float:
    return time.perf_counter() - start


# --- estimate(fn): a user's vectorized callable -------------------------------------


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
                    seconds=_since(start),
                    grad_sq=grad_sq,
                    grad_sq_se=grad_err,
                    notes=notes,
                )
            )
        elif name == "montecarlo":
            summary = vectorized.run_numpy([stage], mu, sigma, settings)
            estimates.append(summary.estimate("montecarlo", settings.seed, _since(start), notes=notes))
        else:
            raise MomentcalcError(
                f"method {name!r} does not apply to a user function; use auto, all, quadrature or montecarlo"
            )
    return Result(label, mu, sigma, tuple(estimates), crosscheck.compare(tuple(estimates), settings.z))

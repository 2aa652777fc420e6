"""estimate(): run every method that applies to a spec, in order, and cross-check them.

The checks before any work are checks.py's, the methods and what auto runs methods.py's, one method's run
runner.py's, the compile clock clock.py's, and a user's vectorized callable callables.py's.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, nullcontext
from dataclasses import replace

from .. import catalog, crosscheck
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..estimators import NotApplicable
from ..result import Result
from ..settings import METHODS, Progress, RunSettings, is_int, shown
from ..spec import Spec, parse
from .callables import estimate_callable
from .checks import SEVERAL, check_input, check_no_map, check_products
from .clock import NOTHING_COMPILED, started
from .methods import AUTO, AUTO_IF_NEEDED, EVERY_EXACT_AND_MONTECARLO, SAMPLING, cross_checked, sampling
from .runner import finite, import_for, load_kernel, run, with_grad_sq

quadrature = lazy_module("momentcalc.estimators.quadrature")  # scipy: normalize's constants
spatial = lazy_module("momentcalc.spatial")
# numba (0.5-0.7 s to import): only runs that sample load these.
driver = lazy_module("momentcalc.estimators.driver")
montecarlo = lazy_module("momentcalc.estimators.montecarlo")
# numpy, asyncio: a run of the exact methods on one process (`estimate relu`) needs neither.
cluster = lazy_module("momentcalc.estimators.cluster")


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
    mu, sigma = check_input(mu, sigma)
    if user_fn:
        return estimate_callable(spec, grad, mu, sigma, settings)
    if size is not None:
        check_no_map(parsed)
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
    check_products(parsed)
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
                clock = stack.enter_context(started())
            try:
                import_for(name, overheads)
                load_kernel(name, parsed, mu, sigma, norms, overheads)
                compiled = clock.seconds
                found = run(name, parsed, mu, sigma, norms, settings, digits)
                # What compiling was left inside the run (qmc's kernels) is charged to "kernels", not to it.
                compiled = clock.seconds - compiled
                overheads["kernels"] += compiled
                found = replace(found, seconds=max(found.seconds - compiled, 0.0))
                estimates.append(finite(with_grad_sq(found, parsed, mu, sigma, norms)))
            except NotApplicable as why:
                if method not in AUTO and methods is None:
                    raise MomentcalcError(str(why)) from None
    if not estimates:
        raise MomentcalcError(f"no method applies to '{parsed}'")
    checks = crosscheck.compare(tuple(estimates), settings.z)
    return Result(str(parsed), mu, sigma, tuple(estimates), checks, overheads=overheads, not_run=tuple(not_run))


def window_product(spec: Spec) -> int:
    """Standard normals one output of the spec draws: the product of its window sizes."""
    return math.prod(op.window_size for op in spec.ops if op.kind == catalog.WINDOW)


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

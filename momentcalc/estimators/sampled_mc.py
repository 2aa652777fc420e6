"""Monte Carlo of an op that declares a numpy sampler (catalog.OpInfo.sample): its inputs drawn iid
N(mu, sigma^2), whole windows or vectors at a time, each through elementwise stages first where ops precede it,
in fixed chunks with their own streams from SeedSequence(seed): chunk j's stream is child j whatever the run's
length, and chunk sums merge in chunk order, so a run gives the same bits on this machine's threads or on a Dask
cluster (driver.anywhere_in_order), and a tol run is a fixed run of the chunks it reached. The backward constant is
the mean over samples of the declared squared gradient reaching the first input, given the inputs (the output
gradients integrated out).
An op that declares the sampler's compiled form (catalog.OpInfo.rows) and comes first runs it instead in the joint
kernel (estimators.joint_kernel, on the kernels' own streams and normals, several times faster), with the same
guarantees (any thread count or Dask cluster, tol runs on whole chunks).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ..errors import MomentcalcError
from ..settings import DEFAULT_SAMPLES, MAX_SAMPLES, RunSettings
from ..spec import Op, Spec, parse
from . import NotApplicable, driver, joint_kernel
from .product_mc import summary_estimate

CHUNK_VALUES = 1 << 20  # inputs drawn at once, to bound memory
DEFAULT_VALUES = 1 << 26  # inputs a default run draws (a few seconds): outputs are DEFAULT_SAMPLES or fewer
PILOT = 1 << 10  # outputs of a tol run's first look at its standard errors (at least one chunk)


def run(op: Op, mu: float, sigma: float, settings: RunSettings, before: tuple[Spec, tuple | None] | None = None):
    """settings.samples outputs (None: DEFAULT_SAMPLES, or fewer for large ops, at least 64), or with settings.tol
    until the mean's and the std's SEs are both at most tol. before: (elementwise spec, its normalize constants)
    that each input passes through first; the squared gradient reaching the first Gaussian input is then the
    op's times the stages' derivative at it, squared (the chain rule)."""
    info = op.info
    if info.sample is None or info.size is None:
        raise NotApplicable(f"{op} declares no sampler")
    start = time.perf_counter()
    size = info.size(op)
    if before is not None and driver.current_executor() is not None:
        from .vectorized import needs_numpy

        if needs_numpy(before[0]):  # as vectorized.run_numpy: user expressions run in this process only
            raise MomentcalcError(
                f"{before[0]} (an expr(...) spec) runs in numpy in this process, not on a Dask scheduler: run "
                f"'{before[0]} | {op}' without --scheduler (scheduler=None)"
            )
    per = max(1, CHUNK_VALUES // size)
    job = _Job(str(op), mu, sigma, settings.seed, per, *((str(before[0]), before[1]) if before else ("", None)))
    samples = settings.samples
    compiled = info.rows is not None and before is None
    if settings.tol is None:
        if samples is None:
            samples = min(DEFAULT_SAMPLES, max(1 << 6, DEFAULT_VALUES // size))
        _check_cost(op, size, samples)
        _check_trusted(op, mu, sigma, samples, before)
        if compiled:
            return _compiled(op, mu, sigma, samples, settings.seed, start)
        sums = job.sums(samples)
    elif compiled:
        _check_trusted(op, mu, sigma, 0, before, bound_only=True)
        found = _compiled_to_tolerance(op, mu, sigma, size, settings, start)
        _check_trusted(op, mu, sigma, found.samples, before)
        return found
    else:
        _check_trusted(op, mu, sigma, 0, before, bound_only=True)
        sums, samples = _to_tolerance(job, op, size, settings)
        _check_trusted(op, mu, sigma, samples, before)
    shift, have_grad, totals = sums
    found = summary_estimate(totals / samples, shift, samples, settings.seed, time.perf_counter() - start, _note(job))
    return found if have_grad else replace(found, grad_sq=None, grad_sq_se=None)


def _compiled(op: Op, mu: float, sigma: float, samples: int, seed: int, start: float):
    """The op's compiled form (catalog.OpInfo.rows) in the joint kernel, on the kernels' own streams and normals,
    here or on a Dask scheduler: numpy's chunks serve where stages precede the op."""
    raw, shift, gshift = joint_kernel.sums(op, mu, sigma, samples, seed)
    seconds = time.perf_counter() - start
    return summary_estimate(raw, shift, samples, seed, seconds, "compiled kernel of the inputs", gshift)


def _compiled_to_tolerance(op: Op, mu: float, sigma: float, size: int, settings: RunSettings, start: float):
    """A tol run of the joint kernel: whole chunks from a pilot, grown until both SEs are at most tol; each look
    reruns its chunks from the first (the kernel's chunk j does not depend on the run's length, so the result is a
    fixed run of as many samples; the reruns cost at most about as much again as the last look)."""
    per = max(1, joint_kernel.CHUNK_NORMALS // size)
    limit = min(settings.max_samples, MAX_SAMPLES // size)
    state = {"found": _compiled(op, mu, sigma, min(limit, -(-PILOT // per) * per), settings.seed, start)}

    def need(found) -> int:
        worst = max(found.estimate.mean_se, found.estimate.std_se)
        return math.ceil(1.1 * found.estimate.samples * (worst / settings.tol) ** 2)

    def grow(wanted: int):
        have = state["found"].samples
        if have >= limit:  # its last chunk may be partial: never extended
            raise MomentcalcError(
                f"tol={settings.tol:g} is not reached by the {limit:.3g} samples allowed; use a larger tol or "
                "quadrature"
            )
        samples = min(max(-(-wanted // per), -(-have // per) + 1) * per, limit)
        state["found"] = _compiled(op, mu, sigma, samples, settings.seed, start)
        return _Within(state["found"])

    driver.until_within(_Within(state["found"]), settings.tol, need, grow, limit, "samples")
    return state["found"]


def _note(job) -> str:
    return "numpy sampling" + (f" through {job.before}" if job.before else "")


@dataclass(frozen=True)
class _Job:
    """What every chunk needs, as plain values (a chunk may run on a Dask worker): the op and the stages before it
    as spec text, parsed where the chunk runs."""

    op: str
    mu: float
    sigma: float
    seed: int
    per: int  # outputs a full chunk draws
    before: str = ""
    norms: tuple | None = None

    def sums(self, samples: int, have: tuple | None = None):
        """(shift, have_grad, sums of (y - shift)^1..4, g, g^2) over the first `samples` outputs, chunk by chunk:
        chunk 0 here (its first output is the shift), the others anywhere, merged in chunk order; `have`: the
        result for the chunks already run (whole chunks), extended."""
        chunks = -(-samples // self.per)
        if have is None:
            shift, have_grad, totals = _chunk(self, 0, min(self.per, samples), None)
            done = 1
        else:
            (shift, have_grad, totals), done = have[:3], have[3]
            totals = totals.copy()
        tasks = [partial(_chunk, self, j, min(self.per, samples - j * self.per), shift) for j in range(done, chunks)]
        for grad_ok, row in driver.anywhere_in_order(tasks):
            have_grad = have_grad and grad_ok
            totals += row
        return shift, have_grad, totals

    def stream(self, j: int) -> np.random.Generator:
        # child j of SeedSequence(seed), as SeedSequence(seed).spawn(n)[j] for any n > j
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(j,))))


def _chunk(job: _Job, j: int, m: int, shift: float | None):
    """One chunk's outputs and their sums; with shift None, its first output is the shift: (shift, ok, sums)."""
    op = parse(job.op).last
    x = job.mu + job.sigma * job.stream(j).standard_normal((m, op.info.size(op)))
    slope = np.ones(m)
    if job.before:
        from .vectorized import vector_program  # numpy stages of elementwise ops and normalize

        for stage in vector_program(parse(job.before), job.norms):
            slope = slope * stage.df(x[:, 0])
            x = stage.f(x)
    y, g = op.info.sample(op, x)
    have_grad = g is not None
    g = np.zeros(m) if g is None else g * slope * slope
    first = shift is None
    shift = y[0] if first else shift
    d = y - shift
    d2 = d * d
    row = np.array([d.sum(), d2.sum(), (d2 * d).sum(), (d2 * d2).sum(), g.sum(), (g * g).sum()])
    return (shift, have_grad, row) if first else (have_grad, row)


def _to_tolerance(job: _Job, op: Op, size: int, settings: RunSettings):
    """Whole chunks from a pilot of PILOT outputs, extended until both SEs are at most tol (at most the samples
    MAX_SAMPLES normals allow): (sums, samples)."""
    limit = min(settings.max_samples, MAX_SAMPLES // size)
    state = {"samples": min(limit, -(-PILOT // job.per) * job.per)}
    state["sums"] = job.sums(state["samples"])

    def summary(sums, samples):
        shift, _, totals = sums
        return _Within(summary_estimate(totals / samples, shift, samples, job.seed, 0.0))

    def need(found) -> int:
        e, n = found.estimate, state["samples"]
        worst = max(e.mean_se, e.std_se)
        return math.ceil(1.1 * n * (worst / settings.tol) ** 2)

    def grow(wanted: int):
        if state["samples"] >= limit:  # its last chunk may be partial: never extended
            raise MomentcalcError(
                f"tol={settings.tol:g} is not reached by the {limit:.3g} samples allowed; use a larger tol or "
                "quadrature"
            )
        chunks = max(-(-wanted // job.per), -(-state["samples"] // job.per) + 1)
        samples = min(chunks * job.per, limit)
        done = state["samples"] // job.per
        state["sums"] = job.sums(samples, (*state["sums"], done))
        state["samples"] = samples
        return summary(state["sums"], samples)

    driver.until_within(summary(state["sums"], state["samples"]), settings.tol, need, grow, limit, "samples")
    return state["sums"], state["samples"]


@dataclass(frozen=True)
class _Within:
    estimate: object

    def within(self, tol: float) -> bool:
        return self.estimate.mean_se <= tol and self.estimate.std_se <= tol


def _check_cost(op: Op, size: int, samples: int) -> None:
    if samples * size > MAX_SAMPLES:
        raise MomentcalcError(
            f"{samples} samples of {op} draw {samples * size:.3g} normals, more than the {MAX_SAMPLES:.3g} allowed; "
            f"ask for at most {MAX_SAMPLES // size} samples"
        )


def _check_trusted(op: Op, mu: float, sigma: float, samples: int, before=None, bound_only: bool = False) -> None:
    """Decline a sample too small for its standard errors to be trusted, as the op declares (heavy tails: a sample
    that misses the rare large outputs reports a std and an SE both too small, and no statistic of it shows that).
    The declared count is for Gaussian inputs: after other ops (whose tails it does not know) it declines."""
    if op.info.trusted_samples is None:
        return
    if before is not None:
        raise NotApplicable(
            f"montecarlo declines {op} after {before[0]}: the samples its heavy tails need are known for Gaussian "
            f"inputs only"
        )
    if bound_only:
        return
    found = op.info.trusted_samples(op, mu, sigma)
    if found is not None and samples < found[0]:
        least, why = found
        raise NotApplicable(
            f"montecarlo declines {op} at mu={mu:g}, sigma={sigma:g} with {samples} samples: {why}; ask for at least "
            f"{least} samples ({least * op.info.size(op):.3g} normals) or use quadrature"
        )

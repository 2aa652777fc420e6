"""Correlation maps: E[f(X) f(Y)] for (X, Y) standard bivariate normal with correlation c, and what follows from it.

    K(c)   = E[f(X) f(Y)]                              the dual kernel
    C(c)   = (K(c) - E[f]^2) / Var f                   the (centred) correlation map, C(1) = 1, C(0) = 0
    C~(c)  = K(c) / E[f^2]                             the uncentred map of DKS (Martens et al. 2021);
                                                       C~(0) = E[f]^2 / E[f^2]
    C'(1)  = E[f'(X)^2] / Var f,   C~'(1) = E[f'(X)^2] / E[f^2]   (Price's theorem: K'(c) = E[f'(X) f'(Y)])
    Q(q)   = E[f(sqrt(q) Z)^2]                         the Q-map

K comes from every method that applies, cross-checked like every estimate (crosscheck.compare, with K in
the `mean` slot): certified by ball arithmetic for piecewise-polynomial ops (estimators.certified_kernel: the
inner Gaussian integral over Y given X in closed form, the outer one by Arb; the value of record where it
applies), the op's closed-form kernel (catalog.OpInfo.kernel: relu's arc-cosine kernel, erf's
arcsine kernel ...), quadrature conditioned on X (K = E[f(X) g(X)], g(x) = E[f(c x + sqrt(1 - c^2) Z)],
nested scipy quad split at the kinks), and Monte Carlo (numpy, SeedSequence, one standard error). E[f],
Var f, E[f'^2] and Q are the engine's exact values of record.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

from . import catalog, crosscheck
from ._lazy import lazy_module
from .errors import MomentcalcError
from .estimators import NotApplicable
from .ops import fperr
from .result import Estimate, Verdict, half_width, informative, record_dict
from .settings import MAX_SAMPLES, Progress, check_seed
from .spec import Spec, parse

engine = lazy_module("momentcalc.engine")
np = lazy_module("numpy")
integrate = lazy_module("scipy.integrate")
vectorized = lazy_module("momentcalc.estimators.vectorized")
certified_kernel = lazy_module("momentcalc.estimators.certified_kernel")

METHODS = ("certified", "closed", "quadrature", "montecarlo")  # most exact first: the record is the first that agrees
L = 12.0  # integration range in standard deviations: phi(12) ~ 5e-32, below every double of K
DEFAULT_SAMPLES = 1 << 20
CHUNK = 1 << 20  # Monte Carlo pairs drawn at a time: memory stays at a few arrays of 8 MB whatever samples is
EPSABS, EPSREL = 1e-14, 1e-12  # quad's targets: tighter makes the outer quad report the inner ones' roundoff
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class CMapResult(Verdict):
    spec: str
    c: float
    q: float
    estimates: tuple[Estimate, ...]  # K(c) in the `mean` slot, its bound or SE in `mean_se`
    checks: tuple
    mean: float  # E[f(X)], X ~ N(0, 1), the engine's exact value of record
    var: float
    grad_sq: float | None
    qmap: float  # E[f(sqrt(q) Z)^2]
    mean_err: float = 0.0  # bounds on the errors of mean and var (the engine's stated ones)
    var_err: float = 0.0

    @property
    def record(self) -> Estimate:
        pool = [e for e in self.estimates if informative(e, "mean")] or list(self.estimates)
        return min(pool, key=lambda e: METHODS.index(e.method))

    @property
    def kernel(self) -> float:
        return self.record.mean

    @property
    def second_moment(self) -> float:
        return self.var + self.mean * self.mean

    @property
    def corr(self) -> float:
        return (self.kernel - self.mean * self.mean) / self.var

    @property
    def corr_se(self) -> float:
        """A bound on |C - C(c)| (an SE where K is a Monte Carlo estimate): K's, E[f]'s and Var f's own, and the
        rounding of (K - m^2) / v, a few ulps of its terms (fperr.py)."""
        k, m, v = self.kernel, self.mean, self.var
        num_err = self.record.mean_se + 2.0 * abs(m) * self.mean_err + self.mean_err**2
        num_err += fperr.bound(abs(k) + m * m, 8.0)
        if self.var_err >= v:
            return math.inf
        return (num_err + abs(self.corr) * self.var_err) / (v - self.var_err) + fperr.bound(self.corr, 4.0)

    @property
    def dks_corr(self) -> float:
        return self.kernel / self.second_moment

    @property
    def c0(self) -> float:
        """The uncentred map at 0, E[f]^2 / E[f^2] (the centred one is 0 by definition)."""
        return self.mean * self.mean / self.second_moment

    @property
    def slope1(self) -> float | None:
        return None if self.grad_sq is None else self.grad_sq / self.var

    @property
    def dks_slope1(self) -> float | None:
        return None if self.grad_sq is None else self.grad_sq / self.second_moment

    def to_dict(self) -> dict:
        keys = ("spec", "c", "q", "kernel", "kernel_se", "method", "corr", "corr_se", "dks_corr", "c0_uncentred")
        keys += ("slope1", "dks_slope1", "mean", "var", "second_moment", "grad_sq", "qmap", "agree", "disagreements")
        estimates = [
            {"method": e.method, "kernel": e.mean, "kernel_se": e.mean_se, "samples": e.samples, "seed": e.seed}
            for e in self.estimates
        ]
        record = self.record
        return record_dict(
            self,
            (*keys, "estimates"),
            kernel_se=record.mean_se,
            method=record.method,
            c0_uncentred=self.c0,
            estimates=estimates,
        )


def cmap(
    spec: str,
    c: float,
    q: float = 1.0,
    methods: tuple[str, ...] = METHODS,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    z: float = crosscheck.DEFAULT_Z,
    progress: Progress | None = None,
) -> CMapResult:
    """K(c) by every method asked for that applies, cross-checked, with C(c), C(0), C'(1) and Q(q)."""
    op = single_op(spec)
    if not (isinstance(c, (int, float)) and -1.0 <= c <= 1.0):
        raise MomentcalcError(f"--c is a correlation: give a number in [-1, 1], got {c!r}")
    if not (isinstance(q, (int, float)) and q > 0 and math.isfinite(q)):
        raise MomentcalcError(f"--q is a variance: give a finite number > 0, got {q!r}")
    if not isinstance(samples, int) or not 2 <= samples <= MAX_SAMPLES:
        raise MomentcalcError(f"samples must be a whole number in [2, {MAX_SAMPLES}], got {samples!r}")
    check_seed(seed)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise MomentcalcError(f"unknown method {unknown[0]!r}; use some of {', '.join(METHODS)}")
    estimates = []
    for name in methods:
        try:
            estimates.append(_RUN[name](op, float(c), samples, seed, progress))
        except NotApplicable:
            continue
    if not estimates:
        raise MomentcalcError(f"no method gives the kernel of '{op}' ({', '.join(methods)})")
    found = engine.estimate(Spec((op,)), 0.0, 1.0, methods=("certified", "closed", "quadrature"))
    at_q = engine.estimate(Spec((op,)), 0.0, math.sqrt(q), methods=("closed", "quadrature"))
    std_se = found.std_se or 0.0
    checks = tuple(replace(ch, quantity="kernel") for ch in crosscheck.compare(tuple(estimates), z))
    return CMapResult(
        str(op),
        float(c),
        float(q),
        tuple(estimates),
        checks,
        found.mean,
        found.std**2,
        found.grad_sq,
        at_q.mean**2 + at_q.std**2,
        found.mean_se,
        std_se * (2.0 * found.std + std_se) + fperr.bound(found.std**2, 2.0),
    )


def single_op(spec: str):
    parsed = parse(spec)
    if len(parsed.ops) != 1 or parsed.last.kind != catalog.ELEMENTWISE:
        raise MomentcalcError(f"cmap takes one elementwise op such as 'relu' or 'erf', not {spec!r}")
    return parsed.last


def curve(spec: str, points: int = 41) -> tuple[list[float], list[float]]:
    """C(c) on an even grid over [-1, 1] by the most exact method that applies (for plots)."""
    cs = [-1.0 + 2.0 * i / (points - 1) for i in range(points)]
    op = single_op(spec)
    found = engine.estimate(Spec((op,)), 0.0, 1.0, methods=("closed", "quadrature"))
    m, v = found.mean, found.std**2
    ks = []
    for c in cs:
        try:
            ks.append(_closed(op, c, 0, 0).mean)
        except NotApplicable:
            ks.append(_quadrature(op, c, 0, 0).mean)
    return cs, [(k - m * m) / v for k in ks]


# --- the methods --------------------------------------------------------------------


def _certified(op, c: float, samples: int, seed: int, progress=None) -> Estimate:
    found = certified_kernel.certify(op, c)
    return Estimate(
        "certified", found.value, None, half_width(found.lo, found.hi), None, mean_interval=(found.lo, found.hi)
    )


def _closed(op, c: float, samples: int, seed: int, progress=None) -> Estimate:
    if op.info.kernel is None:
        raise NotApplicable(f"no closed-form kernel is declared for {op.name}")
    value, err = op.info.kernel(op, c)  # the kernel with the bound on its rounding
    return Estimate("closed", value, None, err, None)


def _quadrature(op, c: float, samples: int, seed: int, progress=None) -> Estimate:
    """K = int f(x) g(x) phi(x) dx, g(x) = int f(c x + s z) phi(z) dz, s = sqrt(1 - c^2): both by scipy's quad
    over [-L, L], split where f has kinks. The bound: the outer error estimate, plus the largest inner one times
    E|f| (<= sqrt(E[f^2])), plus nothing for the tails (beyond L they weigh < 1e-31)."""
    info = op.info
    if info.f is None:
        raise NotApplicable(f"{op.name} has no scalar function for quadrature")
    a, b = info.args(op)
    f = info.f
    kinks = [k for k in info.kinks(a, b) if -L < k < L]
    s = math.sqrt(max(1.0 - c * c, 0.0))
    worst_inner = [0.0]

    def phi(t):
        return _INV_SQRT_2PI * math.exp(-0.5 * t * t)

    def g(x):
        if s == 0.0:
            return f(c * x, a, b)
        points = sorted(z for z in ((k - c * x) / s for k in kinks) if -L < z < L)
        value, err = integrate.quad(
            lambda t: f(c * x + s * t, a, b) * phi(t),
            -L,
            L,
            points=points or None,
            epsabs=EPSABS,
            epsrel=EPSREL,
            limit=200,
        )
        worst_inner[0] = max(worst_inner[0], err)
        return value

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", integrate.IntegrationWarning)
        value, err = integrate.quad(
            lambda x: f(x, a, b) * g(x) * phi(x), -L, L, points=kinks or None, epsabs=EPSABS, epsrel=EPSREL, limit=200
        )
        abs_f, _ = integrate.quad(lambda x: abs(f(x, a, b)) * phi(x), -L, L, points=kinks or None, limit=200)
    # quad warns where roundoff keeps it from its tolerance: its error estimate is then not a bound; say so.
    notes = ("quad reported roundoff: the bound may be underestimated",) if caught else ()
    return Estimate("quadrature", value, None, err + worst_inner[0] * abs_f, None, notes=notes)


def _montecarlo(op, c: float, samples: int, seed: int, progress: Progress | None = None) -> Estimate:
    """Mean of f(X) f(Y), X = Z1, Y = c Z1 + sqrt(1 - c^2) Z2, from one PCG64 stream of SeedSequence(seed).

    Drawn CHUNK pairs at a time (Z1 of the chunk, then its Z2), so memory does not grow with samples; the
    chunks' means and sums of squared deviations are merged (Chan et al.), and progress is told after each.
    """
    if op.info.vectorized is not None:
        f = op.info.vectorized(op)
    else:
        f, _ = vectorized.jitted_arrays(op)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    root = math.sqrt(max(1.0 - c * c, 0.0))
    count, mean, m2 = 0, 0.0, 0.0
    while count < samples:
        n = min(CHUNK, samples - count)
        z1 = rng.standard_normal(n)
        z2 = rng.standard_normal(n)
        prod = f(z1) * f(c * z1 + root * z2)
        chunk_mean = float(prod.mean())
        chunk_m2 = float(((prod - chunk_mean) ** 2).sum())
        if count == 0:
            mean, m2 = chunk_mean, chunk_m2
        else:
            delta, total = chunk_mean - mean, count + n
            m2 += chunk_m2 + delta * delta * count * n / total
            mean += delta * n / total
        count += n
        if progress is not None:
            progress(count, samples)
    se = math.sqrt(m2 / (samples - 1)) / math.sqrt(samples)
    return Estimate("montecarlo", mean, None, se, None, samples=samples, seed=seed)


_RUN = {"certified": _certified, "closed": _closed, "quadrature": _quadrature, "montecarlo": _montecarlo}

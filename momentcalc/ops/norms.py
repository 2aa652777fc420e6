"""RMSNorm and LayerNorm: one coordinate of the normalized d-vector of iid N(mu, sigma^2) inputs (no affine part).

rmsnorm: y = x_1 / sqrt(mean(x^2) + eps). At eps = 0 and mu = 0, y = sqrt(d) x_1 / |x| and
x_1^2 / |x|^2 ~ Beta(1/2, (d-1)/2), independent of |x|^2 ~ sigma^2 chi^2_d: E[y] = 0, E[y^2] = 1.
layernorm: y = c_1 / sqrt(mean(c^2) + eps), c = x - mean(x). c lies in the (d-1)-dimensional space orthogonal
to (1, ..., 1), with |c|^2 ~ sigma^2 chi^2_{d-1} whatever mu is, so at eps = 0 E[y] = 0 and E[y^2] = 1 for every
mu and sigma.
Backward: the mean squared gradient reaching x_1 from unit-variance output gradients is sum_j J_j1^2, J the
Jacobian. At eps = 0, J^T J = (d / |c|^2) P with P the projection off x (and off (1, ..., 1) for layernorm), so it
is (d / |x|^2)(1 - x_1^2 / |x|^2) for rmsnorm, with expectation (d - 1) / ((d - 2) sigma^2) at mu = 0 (E[1 / chi^2_d]
= 1 / (d - 2), E[1 - Beta] = (d - 1) / d), and (d / |c|^2)(1 - 1/d - c_1^2 / |c|^2) for layernorm, with expectation
(d - 2) / ((d - 3) sigma^2). Infinite for d = 2 (rmsnorm), d = 3 (layernorm); 0 where y is a sign (d = 1, d = 2).
With eps > 0 only Monte Carlo applies.
"""

from __future__ import annotations

import math

from .._lazy import lazy_module
from ..catalog import JOINT, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES

np = lazy_module("numpy")  # only where the op is sampled: `momentcalc list` and --help load no numpy

_D = Param("d", int, None, accepted="the normalized vector's length", bounds=PARAM_RANGES["count"])
_EPS = Param("eps", float, 0.0, lambda v: 0.0 <= v <= 1e6, "a number in [0, 1000000] added to the mean square")


def _grad(d: int, sigma: float, centered: bool) -> float | None:
    """E[sum_j J_j1^2] at eps = 0 (mu = 0 for rmsnorm): None where it is infinite."""
    dof = d - 1 if centered else d  # the chi^2 of |c|^2
    if dof == 1:
        return 0.0  # y is a sign
    if dof == 2:
        return None
    return (dof - 1) / ((dof - 2) * sigma * sigma)


def _exact(op, mu: float, centered: bool) -> bool:
    return op.get("eps") == 0.0 and (centered or mu == 0.0)


def _closed(op, mu, sigma, centered):
    return Moments(0.0, 1.0) if _exact(op, mu, centered) else None


def _grad_closed(op, mu, sigma, centered):
    return _grad(op.get("d"), sigma, centered) if _exact(op, mu, centered) else None


def _ball_law(op, mu, sigma, lib, centered):
    if not _exact(op, mu, centered):
        return None
    dof = op.get("d") - (1 if centered else 0)
    grad = None if dof == 2 else lib.arb(0) if dof == 1 else lib.arb(dof - 1) / (lib.arb(dof - 2) * lib.arb(sigma) ** 2)
    return lib.arb(0), lib.arb(1), grad


def _rms_quad_law(op, mu, sigma):
    """rmsnorm at eps = 0 and any mu, d >= 5: with x_1 ~ N(mu, sigma^2) and R = |x_2..d|^2 = sigma^2 Q,
    Q ~ noncentral chi^2_(d-1)((d-1) mu^2 / sigma^2) independent of x_1, y = sqrt(d) x_1 / sqrt(x_1^2 + R),
    y^2 = d x_1^2 / (x_1^2 + R) and the squared gradient reaching x_1 is d R / (x_1^2 + R)^2. A tensor product of
    composite Gauss-Legendre rules over x_1 (mu +- 12 sigma, split at 0) and Q (its quantiles 1e-17 to 1 - 1e-17);
    the error estimate is the difference from the rule with half the nodes per panel, plus the cut tails."""
    d = op.get("d")
    if op.get("eps") != 0.0 or d < 5:  # below, R's density does not vanish at 0 and the rule's estimate fails
        return None
    import math

    from scipy import stats

    law = stats.ncx2(d - 1, (d - 1) * mu * mu / (sigma * sigma)) if mu != 0.0 else stats.chi2(d - 1)
    q_cuts = law.ppf(np.linspace(0.0, 1.0, 65)[1:-1])
    q_cuts = np.concatenate(([law.ppf(1e-17)], q_cuts, [law.isf(1e-17)]))
    x_cuts = np.unique(np.concatenate((np.linspace(mu - 12 * sigma, mu + 12 * sigma, 33), [0.0])))
    x_cuts = x_cuts[(x_cuts >= mu - 12 * sigma) & (x_cuts <= mu + 12 * sigma)]

    def rule(cuts, k):
        t, w = np.polynomial.legendre.leggauss(k)
        half = np.diff(cuts)[:, None] / 2
        return ((cuts[:-1, None] + half) + half * t).ravel(), (half * w).ravel()

    def moments(k):
        x, wx = rule(x_cuts, k)
        q, wq = rule(q_cuts, k)
        wx = wx * np.exp(-((x - mu) ** 2) / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))
        wq = wq * law.pdf(q)
        x2, r = (x * x)[:, None], sigma * sigma * q[None, :]
        t = x2 + r
        w = wx[:, None] * wq[None, :]
        return [float((w * v).sum()) for v in (math.sqrt(d) * x[:, None] / np.sqrt(t), d * x2 / t, d * r / (t * t))]

    fine, coarse = moments(24), moments(12)
    errs = [abs(a - b) + 1e-16 * d for a, b in zip(fine, coarse)]  # the cut tails: below 1e-17 of a value <= d
    mean, second, grad = fine
    std = math.sqrt(max(second - mean * mean, 0.0))
    var_err = errs[1] + 2 * abs(mean) * errs[0]
    return mean, std, errs[0], var_err / (2 * std) if std > 0 else math.sqrt(var_err), grad, errs[2]


def _sample(op, x: np.ndarray, centered: bool):
    d, eps = x.shape[1], op.get("eps")
    c = x - x.mean(axis=1, keepdims=True) if centered else x
    s2 = (c * c).mean(axis=1) + eps
    c1 = c[:, 0]
    # sum_j J_j1^2 = (1 - [1/d if centered]) / s^2 - 2 c_1^2 / (d s^4) + c_1^2 |c|^2 / (d^2 s^6)
    norm2 = d * (s2 - eps)
    grad = (1 - (1 / d if centered else 0)) / s2 - 2 * c1 * c1 / (d * s2 * s2) + c1 * c1 * norm2 / (d * d * s2**3)
    return c1 / np.sqrt(s2), grad


def _rows(x, count, d, eps, centered, y, g, exp):
    """_sample's compiled form (catalog.OpInfo.rows); centered is 1.0 for layernorm, 0.0 for rmsnorm."""
    for r in range(count):
        base = r * d
        c = 0.0
        if centered != 0.0:
            for j in range(base, base + d):
                c += x[j]
            c /= d
        norm2 = 0.0
        for j in range(base, base + d):
            t = x[j] - c
            norm2 += t * t
        s2 = norm2 / d + eps
        c1 = x[base] - c
        y[r] = c1 / math.sqrt(s2)
        g[r] = (1.0 - centered / d) / s2 - 2.0 * c1 * c1 / (d * s2 * s2) + c1 * c1 * norm2 / (d * d * s2 * s2 * s2)


def _norm(name: str, description: str, centered: bool, least_d: int) -> OpInfo:
    return register(
        OpInfo(
            name,
            JOINT,
            description,
            (_D, _EPS),
            lambda v: v["d"] >= least_d,
            f"d >= {least_d}",
            closed=lambda op, mu, sigma: _closed(op, mu, sigma, centered),
            grad_closed=lambda op, mu, sigma: _grad_closed(op, mu, sigma, centered),
            size=lambda op: op.get("d"),
            sample=lambda op, x: _sample(op, x, centered),
            rows=_rows,
            rows_args=lambda op: (op.get("eps"), 1.0 if centered else 0.0),
            ball_law=lambda op, mu, sigma, lib: _ball_law(op, mu, sigma, lib, centered),
            quad_law=None if centered else _rms_quad_law,
        )
    )


_norm("rmsnorm", "x_1 / sqrt(mean(x^2) + eps) over d iid inputs (Zhang & Sennrich 2019), no gain", False, 1)
_norm("layernorm", "(x_1 - mean(x)) / sqrt(var(x) + eps) over d iid inputs (Ba et al. 2016), no gain or bias", True, 2)

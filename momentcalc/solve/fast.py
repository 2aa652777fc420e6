"""The search's fast moments: a fixed Gauss-Legendre rule on graded panels between f's kinks.

The exact residual (quadrature with its error tracking, ~50 ms) made a search of 81 starts, each ~170
residuals, take minutes (DKS's four conditions on softplus: 531 s). The search runs first on these moments
instead, f's own smooth pieces by a fixed rule, which agree with the exact moments to ~1e-12 in a fraction of
a millisecond. Only the starts whose fast search ends at a root, one start per root, then run scipy's root on
the exact residual, from there: a few steps.
"""

from __future__ import annotations

import functools
import itertools
import math

from .._lazy import lazy_module

np = lazy_module("numpy")

NODES = 8  # Gauss-Legendre nodes per panel
LIMIT = 12.0  # |z| beyond which phi(z) < 5e-32
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def moments(problem, values) -> dict | None:
    """mean, var, grad_sq and q_slope of y = a f(b x + c) + d at these parameters by the fixed rule; None
    where it does not apply (not one elementwise op with f and f')."""
    op = problem.one_activation(values)
    if op is None:
        return None
    f, df, args = op.info.f, op.info.df, op.info.args(op)
    a, b, d, m, _ = problem.wrap_at(values)
    s = b * problem.sigma  # f's input: m + s z, z ~ N(0, 1)
    kinks = [(k - m) / s for k in op.info.kinks(*args)]
    nodes, weights = _gauss_legendre()
    e1 = e2 = g2 = q = 0.0
    for lo, hi in itertools.pairwise(panels(-m / s, min(1.0, 1.0 / abs(s)) / 8, LIMIT, kinks)):
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        for t, wt in zip(nodes, weights):
            z = mid + half * t
            x = m + s * z
            p = wt * half * math.exp(-0.5 * z * z) * _INV_SQRT_2PI
            fx, dfx = f(x, *args), df(x, *args)
            e1 += p * fx
            e2 += p * fx * fx
            g2 += p * dfx * dfx
            q += p * (a * fx + d) * a * b * dfx * z
    return {
        "mean": a * e1 + d,
        "var": a * a * (e2 - e1 * e1),
        "grad_sq": a * a * b * b * g2,
        "q_slope": q / problem.sigma,
    }


@functools.cache
def _gauss_legendre() -> tuple[tuple[float, ...], tuple[float, ...]]:
    nodes, weights = np.polynomial.legendre.leggauss(NODES)
    return tuple(float(t) for t in nodes), tuple(float(w) for w in weights)


def panels(center: float, narrowest: float, lim: float, kinks: list[float]) -> list[float]:
    """The ends of the fast moments' panels over [-lim, lim] in z, kinks among them: `narrowest` wide on each side of
    `center` (where f's input is 0), each next one twice as wide up to 1.

    Why graded: the activations' complex singularities (tanh's and sigmoid's at i pi / 2 in x, swish(beta)'s at
    i pi / beta, softplus's at i pi) sit at real part 0, i.e. near z = center, ~1 / |s| from the real axis. A panel
    no wider than about its distance to them gets ~1e-12 from 8 nodes, so panels can widen away from the center:
    ~30 panels where a uniform mesh narrow enough everywhere took ~100 (s = 1) to thousands (|s| = 20)."""
    center = min(max(center, -lim), lim)  # a center outside the range: grade from the nearer end
    ends = {-lim, lim, *(z for z in kinks if -lim < z < lim)}
    for side in (-1.0, 1.0):
        distance, width = 0.0, narrowest
        while distance < 2 * lim:
            distance += width
            ends.add(center + side * distance)
            width = min(2 * width, 1.0)
    return sorted(z for z in ends if -lim <= z <= lim)

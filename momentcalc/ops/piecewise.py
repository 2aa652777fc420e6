"""Exact moments of piecewise polynomial functions of a normal variable.

A piece is (lo, hi, coeffs): on lo < x < hi the function is
sum_k coeffs[k] x^k. With x = mu + sigma z every piece is a polynomial in
z, and E[z^k; a < z < b] comes from ``gaussian.partial_moments``
(truncated-normal moments). The variance is the integral of (f - mean)^2,
not E[f^2] - mean^2, so a large mean costs no digits.
"""

from __future__ import annotations

import math

from . import gaussian

INF = math.inf
Piece = tuple[float, float, tuple[float, ...]]


def _in_z(coeffs: tuple[float, ...], mu: float, sigma: float) -> list[float]:
    """Coefficients of p(mu + sigma z) in z."""
    out = [0.0] * len(coeffs)
    for k, c in enumerate(coeffs):
        for j in range(k + 1):
            out[j] += c * math.comb(k, j) * mu ** (k - j) * sigma**j
    return out


def _square(p: list[float]) -> list[float]:
    out = [0.0] * (2 * len(p) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(p):
            out[i + j] += a * b
    return out


def _integrate(p_z: list[float], lo: float, hi: float, mu: float, sigma: float) -> float:
    a = (lo - mu) / sigma if not math.isinf(lo) else lo
    b = (hi - mu) / sigma if not math.isinf(hi) else hi
    if a >= b:
        return 0.0
    m = gaussian.partial_moments(a, b, len(p_z) - 1)
    return sum(c * mk for c, mk in zip(p_z, m))


def expect(pieces: tuple[Piece, ...], mu: float, sigma: float) -> float:
    """E[f(X)] for X ~ N(mu, sigma^2)."""
    return sum(_integrate(_in_z(c, mu, sigma), lo, hi, mu, sigma) for lo, hi, c in pieces)


def moments(pieces: tuple[Piece, ...], mu: float, sigma: float) -> tuple[float, float]:
    """(mean, std) of f(X)."""
    mean = expect(pieces, mu, sigma)
    var = 0.0
    for lo, hi, c in pieces:
        p = _in_z(c, mu, sigma)
        p[0] -= mean
        var += _integrate(_square(p), lo, hi, mu, sigma)
    return mean, math.sqrt(max(var, 0.0))

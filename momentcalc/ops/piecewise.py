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


# A result that lost more than this factor to cancellation (sum of |terms| / |result|) is declined.
CANCELLATION_LIMIT = 2.0**10
_TAIL = 1.0  # pieces that lie beyond this many sigma from mu are expanded about their edge
_NARROW = 0.5  # finite pieces narrower than this (in sigma) are integrated by Gauss-Legendre


def _gauss_legendre(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights on [-1, 1], by Newton's method on the Legendre polynomial P_n."""
    nodes, weights = [], []
    for i in range(n):
        x = math.cos(math.pi * (i + 0.75) / (n + 0.5))
        for _ in range(100):
            p0, p1 = 1.0, x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1.0)
            step = p1 / dp
            x -= step
            if abs(step) < 1e-16:
                break
        p0, p1 = 1.0, x
        for k in range(2, n + 1):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        dp = n * (x * p1 - p0) / (x * x - 1.0)
        nodes.append(x)
        weights.append(2.0 / ((1.0 - x * x) * dp * dp))
    return tuple(nodes), tuple(weights)


_GL_NODES, _GL_WEIGHTS = _gauss_legendre(20)


def _shifted(coeffs, shift: float, scale: float) -> list[float]:
    """Coefficients of p(shift + scale s) in s."""
    out = [0.0] * len(coeffs)
    for k, c in enumerate(coeffs):
        for j in range(k + 1):
            out[j] += c * math.comb(k, j) * shift ** (k - j) * scale**j
    return out


def _in_z(coeffs: tuple[float, ...], mu: float, sigma: float) -> list[float]:
    """Coefficients of p(mu + sigma z) in z."""
    return _shifted(coeffs, mu, sigma)


def _square(p: list[float]) -> list[float]:
    out = [0.0] * (2 * len(p) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(p):
            out[i + j] += a * b
    return out


def _power(p: list[float], k: int) -> list[float]:
    return _square(p) if k == 2 else list(p)


def _legendre_moments(a: float, b: float, kmax: int) -> tuple[list[float], list[float]]:
    """E[Z^k; a < Z < b] and E[|Z|^k; a < Z < b] by 20-point Gauss-Legendre (exact to rounding for b - a <= 0.5)."""
    half, mid = 0.5 * (b - a), 0.5 * (a + b)
    m, mag = [0.0] * (kmax + 1), [0.0] * (kmax + 1)
    for x, w in zip(_GL_NODES, _GL_WEIGHTS):
        z = mid + half * x
        d = w * half * gaussian.pdf(z)
        for k in range(kmax + 1):
            m[k] += d * z**k
            mag[k] += d * abs(z) ** k
    return m, mag


def _edge_moments(a: float, b: float, kmax: int) -> tuple[list[float], list[float]]:
    """int_0^(b - a) s^k phi(a + s) ds for a >= _TAIL (b may be infinite), with the magnitudes of its terms."""
    m = gaussian.tail_moments(a, kmax)
    if math.isinf(b):
        return m, list(m)
    far = gaussian.tail_moments(b, kmax)
    width = b - a
    beyond = [sum(math.comb(k, i) * width ** (k - i) * far[i] for i in range(k + 1)) for k in range(kmax + 1)]
    return [x - y for x, y in zip(m, beyond)], [x + y for x, y in zip(m, beyond)]


def piece_moment(
    coeffs, lo: float, hi: float, mu: float, sigma: float, shift: float, power: int
) -> tuple[float, float]:
    """(E[(p(X) - shift)^power; lo < X < hi], the sum of the magnitudes of its terms)."""
    a = (lo - mu) / sigma if not math.isinf(lo) else lo
    b = (hi - mu) / sigma if not math.isinf(hi) else hi
    if a >= b:
        return 0.0, 0.0
    if a >= _TAIL:  # upper tail: about the edge x = lo, s = z - a >= 0
        p = _shifted(coeffs, lo, sigma)
        p[0] -= shift
        q = _power(p, power)
        m, mag = _edge_moments(a, b, len(q) - 1)
    elif b <= -_TAIL:  # lower tail: about the edge x = hi, s = b - z >= 0
        p = _shifted(coeffs, hi, -sigma)
        p[0] -= shift
        q = _power(p, power)
        m, mag = _edge_moments(-b, -a, len(q) - 1)
    else:
        p = _in_z(coeffs, mu, sigma)
        p[0] -= shift
        q = _power(p, power)
        if b - a <= _NARROW:
            m, mag = _legendre_moments(a, b, len(q) - 1)
        else:
            m = gaussian.partial_moments(a, b, len(q) - 1)
            mag = _partial_magnitudes(a, b, len(q) - 1)
    return sum(c * mk for c, mk in zip(q, m)), sum(abs(c) * mk for c, mk in zip(q, mag))


def _partial_magnitudes(a: float, b: float, kmax: int) -> list[float]:
    """Bounds on the sizes of the terms partial_moments adds up, for its cancellation."""

    def edge(z: float, k: int) -> float:
        return 0.0 if math.isinf(z) else abs(z ** (k - 1) * gaussian.pdf(z))

    m = [gaussian.mass(a, b), edge(a, 1) + edge(b, 1)]
    for k in range(2, kmax + 1):
        m.append((k - 1) * m[k - 2] + edge(a, k) + edge(b, k))
    return m[: kmax + 1]


def expect(pieces: tuple[Piece, ...], mu: float, sigma: float) -> float:
    """E[f(X)] for X ~ N(mu, sigma^2)."""
    return sum(piece_moment(c, lo, hi, mu, sigma, 0.0, 1)[0] for lo, hi, c in pieces)


def moments(pieces: tuple[Piece, ...], mu: float, sigma: float) -> tuple[float, float] | None:
    """(mean, std) of f(X), or None where cancellation costs the digits a closed form promises.

    The mean's terms are weighed against |mean| + std, the variance's against the variance.
    """
    parts = [piece_moment(c, lo, hi, mu, sigma, 0.0, 1) for lo, hi, c in pieces]
    mean, mean_size = sum(v for v, _ in parts), sum(m for _, m in parts)
    parts = [piece_moment(c, lo, hi, mu, sigma, mean, 2) for lo, hi, c in pieces]
    var, var_size = sum(v for v, _ in parts), sum(m for _, m in parts)
    var = max(var, 0.0)
    std = math.sqrt(var)
    if var_size > CANCELLATION_LIMIT * var or mean_size > CANCELLATION_LIMIT * (abs(mean) + std):
        return None
    return mean, std

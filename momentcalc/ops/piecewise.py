"""Exact moments of piecewise polynomial functions of a normal variable.

A piece is (lo, hi, coeffs): on lo < x < hi the function is
sum_k coeffs[k] x^k. With x = mu + sigma z every piece is a polynomial in
z, and E[z^k; a < z < b] comes from ``gaussian.partial_moments``
(truncated-normal moments). The variance is the integral of (f - mean)^2,
not E[f^2] - mean^2, so a large mean costs no digits.
"""

from __future__ import annotations

import math

from . import fperr, gaussian

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


def _legendre_moments(a: float, b: float, kmax: int) -> tuple[list[float], list[float], list[float]]:
    """E[Z^k; a < Z < b] by 20-point Gauss-Legendre (exact to rounding for b - a <= 0.5), with the magnitudes
    of its terms and those magnitudes weighed by the amplification 3 z^2 of pdf(z)'s rounded argument."""
    half, mid = 0.5 * (b - a), 0.5 * (a + b)
    # The width b - a of rounded ends carries a relative error of U (|a| + |b|) / (b - a): 500 U for hardtanh's
    # middle piece at N(1000, 1e12), whose ends lie 0.001 sigma away and 2e-6 sigma apart.
    narrow = (abs(a) + abs(b)) / (b - a)
    m, mag, amp = [0.0] * (kmax + 1), [0.0] * (kmax + 1), [0.0] * (kmax + 1)
    for x, w in zip(_GL_NODES, _GL_WEIGHTS):
        z = mid + half * x
        d = w * half * gaussian.pdf(z)
        for k in range(kmax + 1):
            m[k] += d * z**k
            mag[k] += d * abs(z) ** k
            amp[k] += d * abs(z) ** k * (_weight(z) + narrow)
    return m, mag, amp


def _weight(z: float) -> float:
    """How much a relative rounding of z grows in pdf(z) or erfc(|z| / sqrt 2), in units of U (fperr.py)."""
    return 0.0 if math.isinf(z) else 3.0 * z * z


def _edge_moments(a: float, b: float, kmax: int) -> tuple[list[float], list[float], list[float]]:
    """int_0^(b - a) s^k phi(a + s) ds for a >= _TAIL (b may be infinite), with the magnitudes of its terms
    and those weighed by their amplification (see _legendre_moments)."""
    m = gaussian.tail_moments(a, kmax)
    if math.isinf(b):
        return m, list(m), [x * _weight(a) for x in m]
    far = gaussian.tail_moments(b, kmax)
    width = b - a
    beyond = [sum(math.comb(k, i) * width ** (k - i) * far[i] for i in range(k + 1)) for k in range(kmax + 1)]
    return (
        [x - y for x, y in zip(m, beyond)],
        [x + y for x, y in zip(m, beyond)],
        [x * _weight(a) + y * _weight(b) for x, y in zip(m, beyond)],
    )


def piece_moment(
    coeffs, lo: float, hi: float, mu: float, sigma: float, shift: float, power: int
) -> tuple[float, float]:
    """(E[(p(X) - shift)^power; lo < X < hi], the sum of the magnitudes of its terms, the same weighed by the
    amplification of their rounded arguments: fperr.py's size and exponent * size)."""
    a = (lo - mu) / sigma if not math.isinf(lo) else lo
    b = (hi - mu) / sigma if not math.isinf(hi) else hi
    if a >= b:
        return 0.0, 0.0, 0.0
    if a >= _TAIL:  # upper tail: about the edge x = lo, s = z - a >= 0
        p = _shifted(coeffs, lo, sigma)
        p[0] -= shift
        q = _power(p, power)
        m, mag, amp = _edge_moments(a, b, len(q) - 1)
    elif b <= -_TAIL:  # lower tail: about the edge x = hi, s = b - z >= 0
        p = _shifted(coeffs, hi, -sigma)
        p[0] -= shift
        q = _power(p, power)
        m, mag, amp = _edge_moments(-b, -a, len(q) - 1)
    else:
        p = _in_z(coeffs, mu, sigma)
        p[0] -= shift
        q = _power(p, power)
        if b - a <= _NARROW:
            m, mag, amp = _legendre_moments(a, b, len(q) - 1)
        else:
            m = gaussian.partial_moments(a, b, len(q) - 1)
            mag = _partial_magnitudes(a, b, len(q) - 1, False)
            amp = _partial_magnitudes(a, b, len(q) - 1, True)
    return (
        sum(c * mk for c, mk in zip(q, m)),
        sum(abs(c) * mk for c, mk in zip(q, mag)),
        sum(abs(c) * mk for c, mk in zip(q, amp)),
    )


def _partial_magnitudes(a: float, b: float, kmax: int, amplified: bool) -> list[float]:
    """Bounds on the sizes of the terms partial_moments adds up, for its cancellation; amplified: each weighed by
    how much the rounding of its argument grows in it (_weight), carried through the recursion as it is."""

    def edge(z: float, k: int) -> float:
        size = 0.0 if math.isinf(z) else abs(z ** (k - 1) * gaussian.pdf(z))
        return size * _weight(z) if amplified else size

    if amplified:  # mass(a, b) from erfc(|z| / sqrt 2) at each finite edge, each at most its tail beyond |z|
        m0 = sum(0.5 * math.erfc(abs(z) / gaussian.SQRT2) * _weight(z) for z in (a, b) if not math.isinf(z))
    else:
        m0 = gaussian.mass(a, b)
    m = [m0, edge(a, 1) + edge(b, 1)]
    for k in range(2, kmax + 1):
        m.append((k - 1) * m[k - 2] + edge(a, k) + edge(b, k))
    return m[: kmax + 1]


# Roundings of a piecewise moment (fperr.bound's ops): the polynomial's shifted coefficients (a few each),
# the continued fraction or erfc and pdf (a few ulps), the recursion and the sums; with a factor 2 of margin.
OPS = 32.0


def _error(size: float, amp: float) -> float:
    return fperr.U * (OPS * size + 2.0 * amp) + OPS * fperr.TINY


def expect(pieces: tuple[Piece, ...], mu: float, sigma: float) -> tuple[float, float]:
    """(E[f(X)] for X ~ N(mu, sigma^2), a bound on its error)."""
    parts = [piece_moment(c, lo, hi, mu, sigma, 0.0, 1) for lo, hi, c in pieces]
    return sum(v for v, _, _ in parts), _error(sum(m for _, m, _ in parts), sum(e for _, _, e in parts))


def moments(pieces: tuple[Piece, ...], mu: float, sigma: float) -> tuple[float, float, float, float] | None:
    """(mean, std, their error bounds) of f(X), or None where cancellation costs the digits a closed form promises.

    The mean's terms are weighed against |mean| + std, the variance's against the variance. Where mu lies in a
    constant piece far from the others (far_tail_moments) the moments come from there, in log space.
    """
    far = far_tail_moments(pieces, mu, sigma)
    if far is not None:
        return far
    parts = [piece_moment(c, lo, hi, mu, sigma, 0.0, 1) for lo, hi, c in pieces]
    mean, mean_size = sum(v for v, _, _ in parts), sum(m for _, m, _ in parts)
    mean_err = _error(mean_size, sum(e for _, _, e in parts))
    parts = [piece_moment(c, lo, hi, mu, sigma, mean, 2) for lo, hi, c in pieces]
    var, var_size = sum(v for v, _, _ in parts), sum(m for _, m, _ in parts)
    # The variance about a mean off by e is larger by e^2.
    var_err = _error(var_size, sum(e for _, _, e in parts)) + mean_err * mean_err
    var = max(var, 0.0)
    std = math.sqrt(var)
    if var_size > CANCELLATION_LIMIT * var or mean_size > CANCELLATION_LIMIT * (abs(mean) + std):
        return None
    return mean, std, mean_err, fperr.std_bound(std, var_err)


# --- far in the tail: mu in a constant piece, every other piece FAR sigma away or more -------------------
# There every term is a multiple of phi(a), a the distance (in sigma) to the nearest other piece: phi(a)
# underflows beyond a = 38.6 while the std, of the order of sqrt(phi(a)), is a normal double up to a = 53
# (relu's std at N(-50, 1) is 9.2885e-275). So the moments of f - c (c the constant) are taken in units of
# phi(a): E[(f - c)^p] = phi(a) M_p (each piece's tail moments about its edge, scaled by phi(edge) / phi(a)),
# mean = c + phi(a) M_1, var = phi(a) (M_2 - phi(a) M_1^2), std = sqrt(phi(a)) sqrt(M_2 - phi(a) M_1^2), with
# phi(a) and its square root as exp of their logarithms.
FAR = 30.0


def _scaled_tail(edge: float, width: float, a: float, kmax: int) -> list[float]:
    """int_0^width s^k phi(edge + s) ds / phi(a), k = 0..kmax, for edge >= a >= 1 (width may be infinite)."""

    def scaled(x: float) -> list[float]:
        r = gaussian.mills_tail(x, kmax)
        out = [r[0] * math.exp(-0.5 * (x - a) * (x + a))]
        for t in r[1:]:
            out.append(out[-1] * t)
        return out

    near = scaled(edge)
    if math.isinf(width):
        return near
    far = scaled(edge + width)
    return [x - sum(math.comb(k, i) * width ** (k - i) * far[i] for i in range(k + 1)) for k, x in enumerate(near)]


def _far_sums(pieces, c: float, lo: float, hi: float, mu: float, sigma: float, a: float) -> list[float]:
    """[M_1, its size, its amplified size, M_2, its size, its amplified size] over the pieces outside (lo, hi)."""
    sums = [0.0] * 6
    for plo, phi, coeffs in pieces:
        if plo >= hi:  # above: s = (x - plo) / sigma >= 0
            edge, q = (plo - mu) / sigma, _shifted(coeffs, plo, sigma)
        elif phi <= lo:  # below: s = (phi - x) / sigma >= 0
            edge, q = (mu - phi) / sigma, _shifted(coeffs, phi, -sigma)
        else:
            continue
        width = (phi - plo) / sigma
        q[0] -= c
        q2 = _square(q)
        j = _scaled_tail(edge, width, a, len(q2) - 1)
        weight = _weight(edge + (0.0 if math.isinf(width) else width))
        for base, poly in ((0, q), (3, q2)):
            size = sum(abs(ck) * jk for ck, jk in zip(poly, j))
            sums[base] += sum(ck * jk for ck, jk in zip(poly, j))
            sums[base + 1] += size
            sums[base + 2] += size * weight
    return sums


def far_tail_moments(pieces: tuple[Piece, ...], mu: float, sigma: float) -> tuple[float, float, float, float] | None:
    """(mean, std, their error bounds) where mu lies in a constant piece whose edges are FAR sigma away or more;
    None elsewhere."""
    home = [(lo, hi, c) for lo, hi, c in pieces if lo < mu < hi]
    if len(home) != 1 or any(ck != 0.0 for ck in home[0][2][1:]):
        return None
    lo, hi, coeffs = home[0]
    a = min((mu - lo) / sigma, (hi - mu) / sigma)
    if not FAR <= a < INF:
        return None
    c = coeffs[0] if coeffs else 0.0
    m1, size1, amp1, m2, size2, amp2 = _far_sums(pieces, c, lo, hi, mu, sigma, a)
    e = 0.5 * a * a
    mean = c + gaussian.exp_times(-e, m1 / gaussian.SQRT_2PI)
    phi = gaussian.exp_times(-e, 1.0 / gaussian.SQRT_2PI)
    var_scaled = m2 - phi * m1 * m1
    if var_scaled <= 0.0 or size2 > CANCELLATION_LIMIT * var_scaled or size1 > CANCELLATION_LIMIT * abs(m1):
        return None
    std_factor = math.sqrt(var_scaled / gaussian.SQRT_2PI)
    std = gaussian.exp_times(-0.5 * e, std_factor)
    # exp(-a^2 / 2) carries the rounding of a (fperr.bound's exponent), exp_times' logarithm its own; the sums
    # theirs (_error).
    tail_err = gaussian.exp_times(
        -e, _error(size1, amp1) + fperr.bound(abs(m1), 0.0, e + (abs(math.log(abs(m1))) if m1 else 0.0))
    )
    mean_err = tail_err / gaussian.SQRT_2PI + 2.0 * fperr.U * abs(mean) + fperr.TINY
    rel_var = _error(size2, amp2) / var_scaled + 4.0 * fperr.U
    exponent = 0.5 * e + abs(math.log(std_factor))
    std_err = std * (0.5 * rel_var + fperr.U * (OPS + 6.0 * exponent)) + fperr.TINY
    return mean, std, mean_err, std_err

"""Exact mpmath references for piecewise activations whose pieces are polynomials or A expm1(t x) (relu, leaky_relu,
relu6, hardtanh, hardswish, celu, elu) at X ~ N(mu, sigma^2), far into the tails.

From the truncated-normal formulas, not from quadrature: E[Z^k; a < Z < b] by its recursion (the mass from the
tail that keeps its digits), E[exp(t X); lo < X < hi] by completing the square. The variance is taken about c, the
value of f at mu, as E[(f - c)^2] - E[f - c]^2: no cancellation where the std is 1e-275 on a mean of 6 (relu6 at
N(56, 1)); the formulas' own (about a^5 at a kink a sigma away: 9 digits at a = 55) leaves 50 of the 60 digits.
Written from the definitions, independently of momentcalc.
"""

import mpmath as mp

DPS = 60


def _phi(z):
    return mp.mpf(0) if mp.isinf(z) else mp.npdf(z)


def _z_moments(a, b, kmax):
    """E[Z^k; a < Z < b], k = 0..kmax."""
    mass = mp.ncdf(-a) - mp.ncdf(-b) if a >= 0 else mp.ncdf(b) - mp.ncdf(a)  # from the tail that keeps its digits
    m = [mass, _phi(a) - _phi(b)]
    for k in range(2, kmax + 1):
        ea = 0 if mp.isinf(a) else a ** (k - 1) * _phi(a)
        eb = 0 if mp.isinf(b) else b ** (k - 1) * _phi(b)
        m.append((k - 1) * m[k - 2] + ea - eb)
    return m


def _exp_mass(t, lo, hi, mu, sigma):
    """E[exp(t X); lo < X < hi]."""
    shift = t * sigma
    return mp.exp(t * mu + shift * shift / 2) * _z_moments((lo - mu) / sigma - shift, (hi - mu) / sigma - shift, 0)[0]


def _poly_in_z(coeffs, mu, sigma, c):
    """Coefficients in z of p(mu + sigma z) - c."""
    out = [mp.mpf(0)] * len(coeffs)
    for k, ck in enumerate(coeffs):
        for j in range(k + 1):
            out[j] += ck * mp.binomial(k, j) * mu ** (k - j) * sigma**j
    out[0] -= c
    return out


def _piece_moments(piece, mu, sigma, c):
    """(E[g; piece], E[g^2; piece]) for g = f - c on the piece: ('poly', coeffs in x), ('exp', A, t) for
    A expm1(t x), ('pexp', A, t) for A exp(t x)."""
    lo, hi, kind, *p = piece
    if kind == "poly":
        q = _poly_in_z(p[0], mu, sigma, c)
        q2 = [
            mp.fsum(q[i] * q[k - i] for i in range(max(0, k - len(q) + 1), min(k, len(q) - 1) + 1))
            for k in range(2 * len(q) - 1)
        ]
        m = _z_moments((lo - mu) / sigma, (hi - mu) / sigma, len(q2) - 1)
        return mp.fsum(a * b for a, b in zip(q, m)), mp.fsum(a * b for a, b in zip(q2, m))
    big, t = p
    b = (-big if kind == "exp" else 0) - c
    e1, e2 = _exp_mass(t, lo, hi, mu, sigma), _exp_mass(2 * t, lo, hi, mu, sigma)
    mass = _z_moments((lo - mu) / sigma, (hi - mu) / sigma, 0)[0]
    return big * e1 + b * mass, big * big * e2 + 2 * big * b * e1 + b * b * mass


def _lin(lo, hi, a, b):
    return (lo, hi, "poly", (mp.mpf(a), mp.mpf(b)))


def pieces(name, **params):
    """f as pieces (lo, hi, kind, ...): see _piece_moments."""
    inf = mp.inf
    if name == "relu":
        return [_lin(-inf, 0, 0, 0), _lin(0, inf, 0, 1)]
    if name == "leaky_relu":
        return [_lin(-inf, 0, 0, mp.mpf(params.get("slope", "0.01"))), _lin(0, inf, 0, 1)]
    if name == "relu6":
        return [_lin(-inf, 0, 0, 0), _lin(0, 6, 0, 1), _lin(6, inf, 6, 0)]
    if name == "hardtanh":
        lo, hi = mp.mpf(params.get("min_val", -1)), mp.mpf(params.get("max_val", 1))
        return [_lin(-inf, lo, lo, 0), _lin(lo, hi, 0, 1), _lin(hi, inf, hi, 0)]
    if name == "hardswish":
        return [_lin(-inf, -3, 0, 0), (-3, 3, "poly", (0, mp.mpf(1) / 2, mp.mpf(1) / 6)), _lin(3, inf, 0, 1)]
    if name == "celu":
        alpha = mp.mpf(params.get("alpha", 1))
        return [(-inf, 0, "exp", alpha, 1 / alpha), _lin(0, inf, 0, 1)]
    if name == "elu":
        return [(-inf, 0, "exp", mp.mpf(params.get("alpha", 1)), 1), _lin(0, inf, 0, 1)]
    raise KeyError(name)


def grad_pieces(name, **params):
    """f'^2 as pieces in the same form."""
    inf = mp.inf
    one = [_lin(0, inf, 1, 0)]
    if name == "relu":
        return one
    if name == "leaky_relu":
        s = mp.mpf(params.get("slope", "0.01"))
        return [_lin(-inf, 0, s * s, 0)] + one
    if name == "relu6":
        return [_lin(0, 6, 1, 0)]
    if name == "hardtanh":
        return [_lin(mp.mpf(params.get("min_val", -1)), mp.mpf(params.get("max_val", 1)), 1, 0)]
    if name == "hardswish":  # ((2x + 3) / 6)^2
        return [(-3, 3, "poly", (mp.mpf(9) / 36, mp.mpf(12) / 36, mp.mpf(4) / 36))] + [_lin(3, inf, 1, 0)]
    if name == "celu":
        return [(-inf, 0, "pexp", 1, 2 / mp.mpf(params.get("alpha", 1)))] + one
    if name == "elu":
        return [(-inf, 0, "pexp", mp.mpf(params.get("alpha", 1)) ** 2, 2)] + one
    raise KeyError(name)


def moments(name, mu, sigma, **params):
    """(mean, std, E[f'(X)^2]) as mpf at DPS digits."""
    with mp.workdps(DPS):
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        fs = pieces(name, **params)
        c = _value_at(fs, mu)
        parts = [_piece_moments(p, mu, sigma, c) for p in fs]
        m1 = mp.fsum(p[0] for p in parts)
        var = mp.fsum(p[1] for p in parts) - m1 * m1
        grad = mp.fsum(_piece_moments(p, mu, sigma, 0)[0] for p in grad_pieces(name, **params))
        return +(c + m1), mp.sqrt(var), +grad


def _value_at(fs, x):
    for lo, hi, kind, *p in fs:
        if lo <= x <= hi:
            if kind == "poly":
                return mp.fsum(ck * x**k for k, ck in enumerate(p[0]))
            return p[0] * (mp.expm1(p[1] * x) if kind == "exp" else mp.exp(p[1] * x))
    raise ValueError(x)

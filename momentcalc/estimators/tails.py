"""Gaussian tails bounded by polynomials in t = |z| with non-negative ball coefficients.

The certified enclosures integrate over |z| <= L and bound the rest: a function bounded by poly(|z|) phi(z)
has its integral over |z| > L within tail_bound(poly, L). The polynomials are lists of arb coefficients,
lowest degree first; padd, pmul and pscale build them from an op's declared growth bounds.
"""

from __future__ import annotations

from .._lazy import lazy_module

flint = lazy_module("flint")


def padd(p, q):
    n = max(len(p), len(q))
    return [(p[i] if i < len(p) else 0) + (q[i] if i < len(q) else 0) for i in range(n)]


def pmul(p, q):
    out = [flint.arb(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] = out[i + j] + a * b
    return out


def pscale(c, p):
    return [c * a for a in p]


def tail_bound(poly, lim: float):
    """A ball holding every integral over |z| > lim of a function bounded by poly(|z|) times phi(z)."""
    L = flint.arb(lim)
    phi = (-L * L / 2).exp() / (2 * flint.arb.pi()).sqrt()
    # T_k = E[|Z|^k; |Z| > L]: T_0 = erfc(L / sqrt 2), T_1 = 2 phi(L), T_k = 2 L^(k-1) phi(L) + (k - 1) T_(k-2).
    moments = [(L / flint.arb(2).sqrt()).erfc(), 2 * phi]
    while len(moments) < len(poly):
        k = len(moments)
        moments.append(2 * L ** (k - 1) * phi + (k - 1) * moments[k - 2])
    r = sum((abs(c) * m for c, m in zip(poly, moments)), flint.arb(0)).upper()
    return flint.arb(0, r)

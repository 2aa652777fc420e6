"""The certified dual kernel K(c) = E[f(X) f(Y)], (X, Y) standard bivariate normal with correlation c.

Conditioned on X = x, Y ~ N(c x, s^2) with s = sqrt(1 - c^2), so K = E[f(X) g(X)] with g(x) = E[f(c x + s W)].
For a piecewise-polynomial op (catalog.OpInfo.piece_degree) g has a closed form: on a piece lo < y < hi where
f(y) = p0 + p1 y + p2 y^2, with u = (t - c x) / s at t = lo, hi and Phi, phi the standard normal's,

    E[1; piece]   = Phi(u_hi) - Phi(u_lo)
    E[Y; piece]   = c x M0 + s (phi(u_lo) - phi(u_hi))
    E[Y^2; piece] = (c^2 x^2 + s^2) M0 + 2 c x s (phi(u_lo) - phi(u_hi)) + s^2 (u_lo phi(u_lo) - u_hi phi(u_hi))

(the truncated normal's moments), analytic in x, so the outer integral over each piece of f is an acb.integral
of analytic functions. The coefficients p come from the op's own ball functions (interpolated at 0, 1, 2: exact
balls, e.g. 1/6), not from doubles. The tails |x| > L are bounded from the declared growth:
|f(x) g(x)| <= (c0 + c1 |x|) (c0 + c1 (|c| |x| + s)). The precision rises until the ball rounds to one double.
|c| = 1 (a degenerate conditional law) and ops without piece_degree raise NotApplicable. With marginals
N(m, s^2) (certify's m, s: correlated window averages in momentcalc.spatial) f(m + s y) is used in place of f; the
outer integrand picks f's piece on each ball (certified_balls.Stage), so the cuts at the moved kinks need not be exact.
"""

from __future__ import annotations

import math

from .._lazy import lazy_module
from . import NotApplicable, tails
from .certified_balls import Lib, Stage
from .certified_integral import EVAL_LIMIT, L_MAX
from .certified_rounding import Certified, round_ball

flint = lazy_module("flint")

PRECS = (64, 128, 256)
EVALS = 200_000  # integrand evaluations, all precisions together (as the certified method's budget)


def certify(op, c: float, m: float = 0.0, s: float = 1.0) -> Certified:
    """K(c) = E[f(m + s X) f(m + s Y)] of an elementwise op (default: standard normals), the correctly rounded double
    and [lo, hi]; NotApplicable where not certified. f(m + s y) is piecewise polynomial too: its pieces are those
    of f, moved to (t - m) / s."""
    info = op.info
    if info.piece_degree is None or info.ball is None or info.growth is None:
        raise NotApplicable(f"{op.name} is not piecewise polynomial: no closed inner integral for a certified K(c)")
    if not (s > 0 and math.isfinite(m) and math.isfinite(s)):
        raise NotApplicable(f"K needs a finite mean and a standard deviation > 0, got {m!r}, {s!r}")
    if not -1.0 < c < 1.0:
        raise NotApplicable("at c = +-1 the conditional law of Y given X is degenerate; not certified here")
    budget = [EVALS]
    for prec in PRECS:
        with flint.ctx.workprec(prec):
            ball = _kernel(op, c, m, s, prec, budget)
        found = round_ball(ball)
        if found is not None:
            return found
    raise NotApplicable(f"K({c!r}) of {op} did not round to one double at {PRECS[-1]} bits")


def _infinite(t) -> bool:
    return isinstance(t, float) and math.isinf(t)


def _coefficients(piece, a, b, degree: int, m, s):
    """(p0, p1, p2) balls of the polynomial y -> piece(m + s y) from its values at 0, 1, 2 (exact on balls)."""
    lib = Lib(False)
    y0, y1, y2 = (piece(m + s * flint.acb(t), a, b, lib) for t in (0, 1, 2))
    if degree <= 1:
        return y0, y1 - y0, flint.acb(0)
    p2 = (y2 - 2 * y1 + y0) / 2
    return y0, y1 - y0 - p2, p2


def _kernel(op, c: float, m0: float, s0: float, prec: int, budget):
    info = op.info
    a, b = info.args(op)
    # the pieces of g(y) = f(m0 + s0 y): f's kinks moved to (t - m0) / s0 (the doubles only place the cuts; the
    # integrands select pieces on the exact balls), in order for s0 > 0
    mb, sb = flint.acb(m0), flint.acb(s0)
    kinks = tuple((flint.arb(t) - m0) / s0 for t in info.kinks(a, b))
    edges = (-math.inf,) + kinks + (math.inf,)
    coeffs = [_coefficients(f, a, b, info.piece_degree, mb, sb) for f, _ in info.ball]
    cc = flint.acb(c)
    s = flint.acb(flint.arb(1) - flint.arb(c) ** 2).sqrt()
    sqrt2 = flint.acb(2).sqrt()
    inv_sqrt_2pi = 1 / (2 * flint.acb.pi()).sqrt()

    def phi(u):
        return (-u * u / 2).exp() * inv_sqrt_2pi

    def g(x):
        """E[f(c x + s W)] on the complex ball x."""
        m = cc * x
        total = flint.acb(0)
        for (lo, hi), (p0, p1, p2) in zip(zip(edges[:-1], edges[1:]), coeffs):
            ulo, uhi = (None if _infinite(t) else (flint.acb(t) - m) / s for t in (lo, hi))
            # M0 from erfc of each end (no cancellation in the upper tail): Phi(u) = erfc(-u / sqrt 2) / 2
            m0 = ((2 if ulo is None else (ulo / sqrt2).erfc()) - (0 if uhi is None else (uhi / sqrt2).erfc())) / 2
            dphi = (0 if ulo is None else phi(ulo)) - (0 if uhi is None else phi(uhi))
            total += p0 * m0 + p1 * (m * m0 + s * dphi)
            if info.piece_degree >= 2:
                uphi = (0 if ulo is None else ulo * phi(ulo)) - (0 if uhi is None else uhi * phi(uhi))
                total += p2 * ((m * m + s * s) * m0 + 2 * m * s * dphi + s * s * uphi)
        return total

    unknown = flint.acb(flint.arb("nan"))

    # f(m0 + s0 x) on balls through certified's Stage: it picks the piece on each ball (both where a ball meets a
    # kink), so cuts at rounded kinks stay rigorous.
    stage = Stage(info.ball, tuple(info.kinks(a, b)), a, b)
    libs = (Lib(False), Lib(True))

    def integrand(x, analytic):
        if budget[0] <= 0:
            return unknown
        budget[0] -= 1
        return stage.value(mb + sb * x, 0, libs[analytic]) * g(x) * phi(x)

    lim = min(L_MAX, math.sqrt(2.0 * math.log(2.0) * (prec + 20)))
    tol = flint.arb(2) ** (-prec - 4)
    total = flint.arb(0)
    cuts = sorted({-lim, lim} | {float(k.mid()) for k in kinks if -lim < float(k.mid()) < lim})
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += flint.acb.integral(integrand, lo, hi, abs_tol=tol, eval_limit=EVAL_LIMIT).real
        if budget[0] <= 0:
            raise NotApplicable(f"K({c!r}) of {op} could not be certified in {EVALS} integrand evaluations")
    c0, c1, _ = (flint.arb(v) for v in info.growth(a, b))
    c0, c1 = c0 + c1 * abs(flint.arb(m0)), c1 * abs(flint.arb(s0))  # |f(m0 + s0 x)| <= c0 + c1 |x|
    f_poly = [c0, c1]
    g_poly = [c0 + c1 * abs(flint.arb(c) ** 2 - 1).sqrt(), c1 * abs(flint.arb(c))]  # |g| <= c0 + c1 E|c x + s W|
    return total + tails.tail_bound(tails.pmul(f_poly, g_poly), lim)

"""certified_box: enclosures of moments and of their parameter derivatives over a box, against mpmath."""

from fractions import Fraction

import mpmath as mp
import pytest

from momentcalc.estimators import NotApplicable
from momentcalc.estimators import certified_box as cb
from momentcalc.spec import parse

WRAP = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}


def interval(ends):
    """(lo, hi) Fractions as mpf at the working precision, widened by one unit of it (so no rounding hides a miss)."""
    lo, hi = (mp.mpf(q.numerator) / q.denominator for q in ends)
    return lo - abs(lo) * mp.eps - mp.eps * 1e-30, hi + abs(hi) * mp.eps + mp.eps * 1e-30


def selu_mean_var(alpha, lam, mu, sigma):
    """Mean and variance of selu(X), X ~ N(mu, sigma^2), by mpmath quadrature split at the kink."""
    phi = lambda x: mp.npdf(x, mu, sigma)  # noqa: E731
    f = lambda x: lam * x if x > 0 else lam * alpha * mp.expm1(x)  # noqa: E731
    m1 = mp.quad(lambda x: f(x) * phi(x), [-mp.inf, 0, mp.inf])
    m2 = mp.quad(lambda x: f(x) ** 2 * phi(x), [-mp.inf, 0, mp.inf])
    return m1, m2 - m1 * m1


def test_values_and_jacobian_enclose_mpmath_over_a_box():
    alpha, lam, mu, sigma = 1.5, 1.125, 0.25, 1.5
    op = parse(f"selu(alpha={alpha},scale={lam})").ops[0]
    slots = [cb.param_slot(op, "alpha"), cb.param_slot(op, "scale")]
    assert slots == [0, 1]
    r = Fraction(1, 2**40)
    box = [(Fraction(alpha) - r, Fraction(alpha) + r), (Fraction(lam) - r, Fraction(lam) + r)]
    values, jac = cb.enclose(op, slots, WRAP, mu, sigma, box, ("mean", "var"), 128, tol_bits=60)
    with mp.workdps(30):
        # at a corner of the box and at its center: every point of the box is inside the enclosures
        for a, s in ((alpha, lam), (mp.mpf(alpha) + mp.mpf(r.numerator) / r.denominator, lam)):
            want = selu_mean_var(mp.mpf(a), mp.mpf(s), mp.mpf(mu), mp.mpf(sigma))
            for ends, w in zip(values, want):
                lo, hi = interval(ends)
                assert lo <= w <= hi and hi - lo < 1e-10
        # d/dalpha f = lam (e^x - 1) on x < 0, d/dlam f = f / lam; d Var = 2 E[(f - E f) df], by mpmath quadrature.
        a, s, m, sd = (mp.mpf(v) for v in (alpha, lam, mu, sigma))
        mean = selu_mean_var(a, s, m, sd)[0]
        f = lambda x: s * x if x > 0 else s * a * mp.expm1(x)  # noqa: E731
        df = (lambda x: 0 if x > 0 else s * mp.expm1(x), lambda x: f(x) / s)
        e = lambda g: mp.quad(lambda x: g(x) * mp.npdf(x, m, sd), [-mp.inf, 0, mp.inf])  # noqa: E731
        want_jac = [[e(d), 2 * e(lambda x, d=d: (f(x) - mean) * d(x))] for d in df]
        for i in range(2):
            for j in range(2):
                lo, hi = interval(jac[i][j])
                assert lo - mp.mpf("1e-25") <= want_jac[j][i] <= hi + mp.mpf("1e-25") and hi - lo < 1e-9


def test_a_point_at_192_bits_is_a_tight_ball():
    op = parse("elu(alpha=1.25)").ops[0]
    x = Fraction(1.25)
    (mean,), _ = cb.enclose(op, [0], WRAP, 0.0, 1.0, [(x, x)], ("mean",), 192, jacobian=False)
    # elu's mean at N(0, 1): 1/sqrt(2 pi) + alpha (e^(1/2) Phi(-1) - 1/2) (completing the square)
    with mp.workdps(80):
        want = 1 / mp.sqrt(2 * mp.pi) + mp.mpf(1.25) * (mp.exp(mp.mpf(1) / 2) * mp.ncdf(-1) - mp.mpf(1) / 2)
        lo, hi = interval(mean)
        assert lo <= want <= hi and hi - lo < mp.mpf("1e-50")


def test_what_it_does_not_treat_it_declines():
    op = parse("hardtanh(min_val=-1.0,max_val=1.0)").ops[0]
    box = [(Fraction(-1), Fraction(-1))]
    with pytest.raises(NotApplicable):  # its kinks move with its parameters: no param_growth declared
        cb.enclose(op, [0], WRAP, 0.0, 1.0, box, ("mean",), 64)
    with pytest.raises(NotApplicable):  # relu' jumps at a kink that moves with b
        cb.enclose(parse("relu").ops[0], ["b"], WRAP, 0.0, 1.0, [(Fraction(1), Fraction(1))], ("grad_sq",), 64)

"""Exact gelu and erf over a block of draws, in vector lanes: erf and erfc of their own, with no call and no branch.

numba's math.erf and math.erfc are calls into libm per value, which keep a
loop out of vector lanes. Here erf and erfc come from Cody's rationals
(``_erf_ratio``) and exp(-x^2) from x^2 in two parts (``_exp_neg_parts``), so
that erfc keeps its relative digits to its underflow (gelu(x) = x Phi(x) to
x = -38); ``_erfc_parts`` then ``_erf_erfc`` give both, for any loop:

* ``add_erf_block``, ``add_gelu_block``: f and f'^2 of a block and their sums,
  as block_ops' add_*_block loops (mc_kernels' erf_block and gelu_block);
* ``erf_values``, ``gelu_values``: f alone, in place, for the max-pool pair
  kernels (mc_kernels.VALUES).

Why every rational is evaluated for every value: the loops are bound by the
FMA units (gelu's first pass is 48 vector multiplies and multiply-adds a
value, exp(-x^2) and both rationals), and the alternatives measured slower
or no faster, on one thread, 2,048 values a block (AMD Zen 4, AVX-512):
evaluating only the rational each value needs, by partitioning a block by
interval and scattering back, took the first pass from 2.3 ns a value to 4.5
(the partition and the scatter are scalar loops); one fused pass (no scratch
arrays) was no faster and changes the order of the sums' additions (LLVM
splits the sums of a different loop differently), so their bits; selecting
each lane's coefficients into one Estrin evaluation saved 3 %, within the
noise of a loaded machine.

Each is checked against mpmath in tests/test_block_ops.py. The tables hold
Monte Carlo values computed by these loops: a change that moves one bit of
their output changes the tables (``momentcalc tables check``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .block_math import LN2_HI, LN2_LO, LOG2E, ROUND, _add6, _expm1_reduced
from .jit import jit

# As block_ops' flags: each activation's formula (_erf_at, _gelu_at) is inlined into its block (f and f', with
# the sums) and its values loop (f alone), compiled with that loop's flags.
_parts = jit(error_model="numpy", fastmath={"contract"}, inline="always")
_values = jit(error_model="numpy", fastmath={"contract"}, inline="always")


# The error function, from W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969) 631-638: his near-minimax rationals (at least 18 significant digits), with the coefficients netlib's
# specfun CALERF lists, on three intervals of t >= 0:
#   t <= ERF_SMALL:      erf(t) = t A(t^2) / B(t^2)
#   ERF_SMALL < t <= 4:  erfc(t) = exp(-t^2) C(t) / D(t)
#   t > 4:               erfc(t) = exp(-t^2) (1 / sqrt(pi) - w P(w) / Q(w)) / t,  w = 1 / t^2
# Each polynomial from its constant term up; the denominators are monic.
ERF_SMALL = 0.46875
ERF_A = (3.20937758913846947e03, 3.77485237685302021e02, 1.13864154151050156e02, 3.16112374387056560e00)
ERF_A += (1.85777706184603153e-1,)
ERF_B = (2.84423683343917062e03, 1.28261652607737228e03, 2.44024637934444173e02, 2.36012909523441209e01, 1.0)
ERFC_C = (1.23033935479799725e03, 2.05107837782607147e03, 1.71204761263407058e03, 8.81952221241769090e02)
ERFC_C += (2.98635138197400131e02, 6.61191906371416295e01, 8.88314979438837594e00, 5.64188496988670089e-1)
ERFC_C += (2.15311535474403846e-8,)
ERFC_D = (1.23033935480374942e03, 3.43936767414372164e03, 4.36261909014324716e03, 3.29079923573345963e03)
ERFC_D += (1.62138957456669019e03, 5.37181101862009858e02, 1.17693950891312499e02, 1.57449261107098347e01, 1.0)
ERFC_P = (6.58749161529837803e-4, 1.60837851487422766e-2, 1.25781726111229246e-1, 3.60344899949804439e-1)
ERFC_P += (3.05326634961232344e-1, 1.63153871373020978e-2)
ERFC_Q = (2.33520497626869185e-3, 6.05183413124413191e-2, 5.27905102951428412e-1, 1.87295284992346047e00)
ERFC_Q += (2.56852019228982242e00, 1.0)
# P and Q of degree 5 in w = 1 / y, y = t^2, are y^-5 times the same coefficients, reversed, in y: no division for w.
ERFC_P_IN_Y, ERFC_Q_IN_Y = ERFC_P[::-1], ERFC_Q[::-1]
ERFC_MIDDLE = 4.0
INV_SQRT_PI = 0.5641895835477563  # 1 / sqrt(pi)
ERF_T_CAP = 30.0  # erfc(t) exp(t^2) at t at most this: erfc(t) is 0 beyond 27.3, and t^10 must not overflow
# exp(-t^2) C(t) / D(t) stays within 4e-25 of erfc(t) up to t = 6.5 (mpmath, past Cody's interval): where erfc is
# only subtracted from 1 (erf, Phi(x >= 0)), t is capped at ERF_ONE instead (erfc(6) = 2e-17: 1 - erfc rounds to 1
# beyond), and P / Q is not needed.
ERF_ONE = 6.0
# exp(-s) for s = t^2 >= 0 is returned as exp(r) and the bits of 2^(k + EXP_BIAS): exp(-t^2) is below the least
# normal double from t = 26.6, and 2^k of a subnormal has no bits of its own. The caller multiplies by EXP_UNBIAS
# last, so that a subnormal result is rounded once. Beyond SQUARE_CAP, exp(-s) < 1e-330 is 0.
EXP_BIAS = 128
EXP_UNBIAS = 2.0**-EXP_BIAS
EXP_REBIAS = 2.0**EXP_BIAS
SQUARE_CAP = 760.0


@intrinsic
def _fma(typingctx, a, b, c):
    """a b + c rounded once (LLVM's fma, an FMA instruction that vectorizes): the exact error of a product."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fma = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fma, args)

    return sig, codegen


# Estrin's scheme (pairs of terms, then pairs of pairs, with v^2, v^4, v^8), as _expm1_reduced: the erf loop with
# Horner's chains of 8 dependent multiply-adds took 11.9 ns a value against 11.0 (one run, loaded machine), and its
# rationals were no more accurate against mpmath (5 ulps at most against 4). Coefficients from the constant term up.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _estrin4(c, v, v2, v4):
    return (c[0] + c[1] * v) + (c[2] + c[3] * v) * v2 + c[4] * v4


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _estrin5(c, v, v2, v4):
    return (c[0] + c[1] * v) + (c[2] + c[3] * v) * v2 + (c[4] + c[5] * v) * v4


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _estrin8(c, v, v2, v4, v8):
    low = (c[0] + c[1] * v) + (c[2] + c[3] * v) * v2
    high = (c[4] + c[5] * v) + (c[6] + c[7] * v) * v2
    return low + high * v4 + c[8] * v8


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _exp_neg_parts(hi, lo):
    """exp(-(hi + lo)) for hi + lo >= 0, |lo| <= ulp(hi), as (exp(r), the bits of 2^(k + EXP_BIAS)), k =
    round(-hi / ln 2): as _exp_parts, with the two parts of the argument reduced apart. hi - k ln2_hi is exact
    (ln2_hi has 32 bits, k at most 11 bits, the difference below 1 and a multiple of hi's ulp), so r keeps lo's
    digits: exp(-x^2) from x^2 rounded once would be off by x^2 ulps (700 at x = 26)."""
    cut = hi >= SQUARE_CAP
    hi = SQUARE_CAP if cut else hi
    lo = 0.0 if cut else lo
    k = (-hi * LOG2E + ROUND) - ROUND
    r = (-hi - k * LN2_HI) + (-lo - k * LN2_LO)
    # k to int32 first: AVX2 converts four doubles to int32 in one instruction, to int64 one at a time.
    return 1.0 + _expm1_reduced(r), np.int64(np.int32(k) + np.int32(1023 + EXP_BIAS)) << 52


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _erf_ratio(t, far):
    """For t >= 0, Cody's rational on t's interval: erf(t) for t <= ERF_SMALL, above erfc(t) exp(t^2) (far: to
    relative accuracy for every t; not far: within 4e-25 of erfc(t) up to ERF_ONE, then constant, for callers that
    subtract erfc from 1). The rationals are all evaluated, then one is selected, and divided once: no branch, so that
    a loop of them vectorizes. On t > 4, (1/sqrt(pi) - P/(y Q)) / t with P, Q in y = t^2 is (yQ/sqrt(pi) - P) / (t yQ):
    one division, and the rounding of yQ cancels between the two."""
    u = min(t, ERF_T_CAP if far else ERF_ONE)
    y = u * u
    y2 = y * y
    y4 = y2 * y2
    small = u <= ERF_SMALL
    num = u * _estrin4(ERF_A, y, y2, y4) if small else _estrin8(ERFC_C, u, y, y2, y4)
    den = _estrin4(ERF_B, y, y2, y4) if small else _estrin8(ERFC_D, u, y, y2, y4)
    if far:  # a constant of the caller's: compiled away
        yq = y * _estrin5(ERFC_Q_IN_Y, y, y2, y4)
        large = u > ERFC_MIDDLE
        num = yq * INV_SQRT_PI - _estrin5(ERFC_P_IN_Y, y, y2, y4) if large else num
        den = u * yq if large else den
    return num / den


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _erfc_parts(x, c, c2, far):
    """The parts of erf(t) and erfc(t), t = c |x| (c = 1, c2 = 1: erf(x); c = sqrt(1/2), c2 = 1/2: Phi(x) =
    erfc(-t) / 2), that a loop stores before _erf_erfc joins them: (ratio, e, bits), ratio = _erf_ratio(t, far) and
    exp(-t^2) = e 2^-EXP_BIAS times the float64 of bits (viewed from an int64 array). exp(-t^2) is from c2 x^2 in two
    parts (x^2 rounded and its error, exact by an FMA; c2 is a power of two), so it keeps the digits that t, rounded,
    would lose (gelu at x = -38)."""
    hi = x * x
    lo = _fma(x, x, -hi)
    e, bits = _exp_neg_parts(c2 * hi, c2 * lo)
    return _erf_ratio(c * abs(x), far), e, bits


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _erf_erfc(t, ratio, scaled_exp):
    """(erf(t), erfc(t) 2^EXP_BIAS) for t >= 0 from _erfc_parts' ratio and exp(-t^2) 2^EXP_BIAS (e times the viewed
    bits). erfc is left scaled: a caller that multiplies it further unbiases last, rounding a subnormal once."""
    small = t <= ERF_SMALL
    tail = ratio * scaled_exp
    return (ratio if small else 1.0 - tail * EXP_UNBIAS), ((1.0 - ratio) * EXP_REBIAS if small else tail)


TWO_OVER_SQRT_PI = 1.1283791670955126  # erf'(x) = 2 / sqrt(pi) exp(-x^2)


@_parts
def _erf_at(x, ratio, scaled_exp):
    """(erf(x), erf'(x)) from _erfc_parts(x, 1, 1, False)'s ratio and exp(-x^2) 2^EXP_BIAS: erf(-x) = -erf(x), and
    erf' is that same exp."""
    erf_t, _ = _erf_erfc(abs(x), ratio, scaled_exp)
    return (erf_t if x >= 0.0 else -erf_t), TWO_OVER_SQRT_PI * scaled_exp * EXP_UNBIAS


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_erf_block(z, m, mu, sigma, shift, gshift, acc, e, ratio, scale):
    """add_block of erf(mu + sigma z) and its squared derivative (2 / sqrt(pi))^2 exp(-2 x^2), over z[:m]; e, ratio
    (float) and scale (int64) are scratch. Both from one exp(-x^2) (_erfc_parts)."""
    for j in range(m):
        ratio[j], e[j], scale[j] = _erfc_parts(mu + sigma * z[j], 1.0, 1.0, False)
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _erf_at(mu + sigma * z[j], ratio[j], e[j] * powers[j])
        d = y - shift
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        dg = dy * dy - gshift
        g1 += dg
        g2 += dg * dg
    _add6(acc, s1, s2, s3, s4, g1, g2)


SQRT_HALF = 0.7071067811865476  # Phi(x) = erfc(-x sqrt(1/2)) / 2
INV_SQRT_2PI = 0.3989422804014327  # phi(x) = exp(-x^2 / 2) / sqrt(2 pi)


@_parts
def _gelu_at(x, ratio, scaled_exp):
    """(gelu(x), gelu'(x)) = (x Phi(x), Phi(x) + x phi(x)) from _erfc_parts(x, SQRT_HALF, 1/2, True)'s ratio and
    exp(-x^2 / 2) 2^EXP_BIAS. With t = |x| / sqrt(2): Phi(x) = (1 + erf(t)) / 2 for x >= 0, erfc(t) / 2 below, where
    erfc(t) = ratio exp(-x^2 / 2) keeps its relative digits down to x = -37.5 (Phi then 5e-308), and phi(x) is that
    same exp. Both are carried scaled by 2^EXP_BIAS and unscaled last, so a subnormal result is rounded once."""
    erf_t, erfc_t = _erf_erfc(SQRT_HALF * abs(x), ratio, scaled_exp)
    cdf = (0.5 + 0.5 * erf_t) * EXP_REBIAS if x >= 0.0 else 0.5 * erfc_t  # Phi(x) 2^EXP_BIAS
    return (x * cdf) * EXP_UNBIAS, (cdf + x * (INV_SQRT_2PI * scaled_exp)) * EXP_UNBIAS


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _gelu_parts(xs, m, mu, sigma, e, ratio, scale):
    """_erfc_parts(x, SQRT_HALF, 1/2, True) of x = mu + sigma xs[:m] into ratio, e, scale, the far rational
    (t > ERFC_MIDDLE, |x| > 5.66: 1.5e-8 of standard normal inputs) left to a second pass over the few values that
    need it: the same numbers as one pass of far=True (below ERFC_MIDDLE it selects the same rational), and the
    vector loop skips the far rational's two polynomials (exact gelu 0.67 of the generator's pace with them)."""
    far = False
    for j in range(m):
        x = mu + sigma * xs[j]
        ratio[j], e[j], scale[j] = _erfc_parts(x, SQRT_HALF, 0.5, False)
        far |= SQRT_HALF * abs(x) > ERFC_MIDDLE
    if far:
        for j in range(m):
            t = SQRT_HALF * abs(mu + sigma * xs[j])
            if t > ERFC_MIDDLE:
                ratio[j] = _erf_ratio(t, True)


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_gelu_block(z, m, mu, sigma, shift, gshift, acc, e, ratio, scale):
    """add_block of exact gelu(x) = x Phi(x) and its squared derivative, over x = mu + sigma z[:m] (_gelu_at); e,
    ratio (float) and scale (int64) are scratch."""
    _gelu_parts(z, m, mu, sigma, e, ratio, scale)
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _gelu_at(mu + sigma * z[j], ratio[j], e[j] * powers[j])
        d = y - shift
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        dg = dy * dy - gshift
        g1 += dg
        g2 += dg * dg
    _add6(acc, s1, s2, s3, s4, g1, g2)


@_values
def gelu_values(x, m, e, ratio, scale):
    """x[:m] <- exact gelu(x[:m]); ratio (float) is scratch too."""
    _gelu_parts(x, m, 0.0, 1.0, e, ratio, scale)
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _gelu_at(x[j], ratio[j], e[j] * powers[j])[0]


@_values
def erf_values(x, m, e, ratio, scale):
    """x[:m] <- erf(x[:m]); ratio (float) is scratch too."""
    for j in range(m):
        ratio[j], e[j], scale[j] = _erfc_parts(x[j], 1.0, 1.0, False)
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _erf_at(x[j], ratio[j], e[j] * powers[j])[0]

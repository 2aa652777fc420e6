"""Loops over a block of draws that LLVM vectorizes: the chain kernels' sums and their fast activations.

The chain kernels (mc_kernels.run_chain_chunk, run_fused_chunk) draw a
block of normals, transform it, then add it to their sums. These loops
are kept free of calls and branches so that they run in vector lanes:

* ``add_block``: the shifted power sums of a block of outputs and of their
  squared derivatives;
* ``add_relu_block``: relu, its derivative and the sums in one pass;
* ``add_sigmoid_block``: sigmoid, its derivative and the sums, with an exp
  of its own (``_exp_parts``). numba's
  math.exp is a call into libm per value: sigmoid took 20.8 ns a value with
  it and 7.3 with this polynomial, which vectorizes and is within an ulp of
  libm (tests/test_block_ops.py checks it against math.exp);
* the other smooth activations likewise from that exp: tanh, swish/silu, elu/celu/selu, softplus and
  log_sigmoid (with a log1p of their own, ``_log1p_unit``), gelu(approximate=tanh), mish;
* exact gelu and erf from an erf/erfc of their own (``_erfc_parts`` then ``_erf_erfc``, usable by any loop):
  Cody's rationals, all evaluated and one selected, and exp(-x^2) from x^2 in two parts, so that erfc keeps
  its relative digits to its underflow (gelu(x) = x Phi(x) to x = -38);
* ``*_values``: the same activations' f alone, in place over a buffer, for the max-pool pair kernels, which
  gather the extremes of a block of windows first (mc_kernels.VALUES). Each activation's formula from its exp
  parts is written once (``_tanh_at`` and the like) and inlined into both its add_*_block and its values loop.

Each is checked against mpmath in tests/test_block_ops.py.

Reassociation (fastmath "reassoc") lets LLVM split the sums into lanes. The
order of additions is then LLVM's, but fixed for the compiled kernel, so a
chunk's row does not depend on the thread that ran it.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import jit

_jit = jit(error_model="numpy")
_vector_sums = jit(error_model="numpy", fastmath={"reassoc"})
# Each activation from its exp parts, shared by its add_*_block (f and f', with the sums) and its *_values loop
# (f alone): inlined, so a loop compiles it with its own flags and drops what it does not use.
_parts = jit(error_model="numpy", fastmath={"contract"}, inline="always")

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (fdlibm)
LN2_LO = 1.90821492927058770002e-10
ROUND = 6755399441055744.0  # 1.5 * 2^52: adding and subtracting it rounds to an integer
EXP_FLOOR = -708.0  # exp of anything lower is taken as exp(-708) ~ 3.3e-308: still a normal number
# 1/k! for k = 2..13: Taylor's remainder on |r| <= ln(2)/2 is below 2e-16 relative.
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = (1.0 / math.factorial(k) for k in range(2, 14))


@_vector_sums
def add_block(y, g, m, shift, gshift, acc):
    """acc += the shifted power sums of y[:m] (to the 4th) and of g[:m] (to the 2nd)."""
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        d = y[j] - shift
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        e = g[j] - gshift
        g1 += e
        g2 += e * e
    _add6(acc, s1, s2, s3, s4, g1, g2)


@_vector_sums
def add_relu_block(z, m, mu, sigma, shift, gshift, acc):
    """add_block of relu(mu + sigma z) and its derivative, in one pass over z[:m].

    The derivative is 0 or 1, so its sums follow from the count k of positive
    inputs: sum(g - gshift) = k - m gshift and sum((g - gshift)^2) =
    k (1 - gshift)^2 + (m - k) gshift^2. One accumulator fewer measured 25%
    faster.
    """
    s1 = s2 = s3 = s4 = k = 0.0
    for j in range(m):
        x = mu + sigma * z[j]
        d = (x if x > 0.0 else 0.0) - shift
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        k += 1.0 if x > 0.0 else 0.0
    _add6(acc, s1, s2, s3, s4, k - m * gshift, k * (1.0 - gshift) ** 2 + (m - k) * gshift * gshift)


@jit(inline="always")
def _add6(acc, s1, s2, s3, s4, g1, g2):
    acc[0] += s1
    acc[1] += s2
    acc[2] += s3
    acc[3] += s4
    acc[4] += g1
    acc[5] += g2


# contract: the polynomial's multiply-adds become FMAs, 2.7x faster here.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _exp_parts(t):
    """exp(t) for t <= 0 as (exp(r), the bits of 2^k), with k = round(t / ln 2) and |r| <= ln(2)/2.

    exp(r) by its Taylor polynomial; 2^k is left as bits, to be viewed as
    float64: a loop that builds it otherwise (ldexp, floor) is a call per value.
    """
    v = max(t, EXP_FLOOR)
    k = (v * LOG2E + ROUND) - ROUND  # round to nearest
    r = (v - k * LN2_HI) - k * LN2_LO
    return 1.0 + _expm1_reduced(r), np.int64(np.int32(k) + np.int32(1023)) << 52


# contract, as _exp_parts: the polynomial's multiply-adds become FMAs.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _expm1_reduced(r):
    """expm1(r) for |r| <= ln(2)/2 (a little more is fine) by its Taylor polynomial, 1 + r's 1 left to the caller.

    Estrin's scheme (pairs of terms, powers r^2, r^4) for all but r, which the caller adds 1 to last so that the
    rounding stays within an ulp. Horner's chain of 13 dependent multiply-adds measured slower: the vector loop
    waited on it.
    """
    r2 = r * r
    r4 = r2 * r2
    q1 = (C4 + C5 * r) + (C6 + C7 * r) * r2
    q2 = (C8 + C9 * r) + (C10 + C11 * r) * r2
    q3 = C12 + C13 * r
    return r + (C2 + C3 * r) * r2 + r4 * (q1 + r4 * (q2 + r4 * q3))


@intrinsic
def _as_float(typingctx, bits):
    """The float64 whose bits these are (a bitcast, which vectorizes): 2^k from _exp_parts' bits, in a register."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def vector_exp(t):
    """exp(t) for t <= 709 (exp(-708) ~ 3.3e-308 for anything lower), within an ulp of libm, with no call and no
    branch, so that a loop of it vectorizes: _exp_parts' polynomial times 2^k (k <= 1023 is a normal power), for the
    joint ops' rows functions (catalog.OpInfo.rows: softmax's exponentials), which dispatch.py passes it to."""
    e, bits = _exp_parts(t)
    return e * _as_float(bits)


@_parts
def _sigmoid_at(x, ej):
    """(sigmoid(x), sigmoid'(x)) from ej = exp(-|x|): both sides from the one exp, then select (as
    ops.activations.sigmoid)."""
    pos = 1.0 / (1.0 + ej)
    neg = ej * pos
    return (pos if x >= 0.0 else neg), neg * pos


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_sigmoid_block(z, m, mu, sigma, shift, gshift, acc, e, scale):
    """add_block of sigmoid(mu + sigma z) and its squared derivative, over z[:m].
    e and scale are scratch (float, int64).

    As ops.activations.sigmoid: both sides of x >= 0 from e = exp(-|x|), then select.
    """
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(mu + sigma * z[j]))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _sigmoid_at(mu + sigma * z[j], e[j] * powers[j])
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


# contract, as _exp_parts: the polynomial's multiply-adds become FMAs.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _expm1_parts(t):
    """(exp(t) / 2^k, expm1(r), the bits of 2^k) for t <= 0, k and r as in _exp_parts, so that
    exp(t) = first * 2^k and expm1(t) = second * 2^k + (2^k - 1): no cancellation for small |t| (k = 0)."""
    v = max(t, EXP_FLOOR)
    k = (v * LOG2E + ROUND) - ROUND
    r = (v - k * LN2_HI) - k * LN2_LO
    small = _expm1_reduced(r)
    return 1.0 + small, small, np.int64(np.int32(k) + np.int32(1023)) << 52


@_parts
def _tanh_at(x, e, em1, p):
    """(tanh(x), tanh'(x)) from _expm1_parts(-2|x|) = (e, em1, the bits of p): with u = expm1(-2|x|),
    tanh|x| = -u / (2 + u) and sech^2 x = 4 e / (1 + e)^2, e = exp(-2|x|): neither 1 - e nor 1 - tanh^2 cancels
    (ops.activations.tanh_grad's form)."""
    u = em1 * p + (p - 1.0)
    ej = e * p
    t = -u / (2.0 + u)
    return (t if x >= 0.0 else -t), 4.0 * ej / ((1.0 + ej) * (1.0 + ej))


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_tanh_block(z, m, mu, sigma, shift, gshift, acc, e, em1, scale):
    """add_block of tanh(mu + sigma z) and its squared derivative, over z[:m]; e, em1 (float) and scale (int64)
    are scratch. With u = expm1(-2|x|): tanh|x| = -u / (2 + u) and sech^2 x = 4 e / (1 + e)^2, e = exp(-2|x|):
    neither 1 - e nor 1 - tanh^2 cancels (ops.activations.tanh_grad's form)."""
    for j in range(m):
        e[j], em1[j], scale[j] = _expm1_parts(-2.0 * abs(mu + sigma * z[j]))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _tanh_at(mu + sigma * z[j], e[j], em1[j], powers[j])
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


@_parts
def _swish_at(x, beta, ej):
    """(swish(x), swish'(x)) = (x s, s + beta x s (1 - s)), s = sigmoid(beta x), from ej = exp(-|beta x|)."""
    pos = 1.0 / (1.0 + ej)
    neg = ej * pos
    s = pos if x >= 0.0 else neg
    return x * s, s + beta * x * (pos * neg)  # s (1 - s) = pos neg on either side


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_swish_block(z, m, mu, sigma, beta, shift, gshift, acc, e, scale):
    """add_block of swish(mu + sigma z) = x sigmoid(beta x) and its squared derivative s + beta x s (1 - s), over
    z[:m]; e and scale are scratch. As add_sigmoid_block: both sides of the sigmoid from exp(-|beta x|)."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(beta * (mu + sigma * z[j])))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _swish_at(mu + sigma * z[j], beta, e[j] * powers[j])
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


@_parts
def _exp_linear_at(x, lam, c, gc, e, em1, p):
    """(f(x), f'(x)) = (lam x, lam) for x > 0, (c expm1(x / d), gc exp(x / d)) below, from
    _expm1_parts(min(x, 0) / d) = (e, em1, the bits of p)."""
    return (lam * x if x > 0.0 else c * (em1 * p + (p - 1.0))), (lam if x > 0.0 else gc * (e * p))


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_exp_linear_block(z, m, mu, sigma, lam, c, gc, d, shift, gshift, acc, e, em1, scale):
    """add_block of lam x (x > 0), c expm1(x / d) (x <= 0) and of its squared derivative lam, gc exp(x / d),
    over x = mu + sigma z[:m]: elu (1, a, a, 1), celu (1, a, 1, a), selu (b, b a, b a, 1) as ops.activations
    computes them. e, em1 (float) and scale (int64) are scratch."""
    for j in range(m):
        e[j], em1[j], scale[j] = _expm1_parts(min(mu + sigma * z[j], 0.0) / d)
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _exp_linear_at(mu + sigma * z[j], lam, c, gc, e[j], em1[j], powers[j])
        d0 = y - shift
        d2 = d0 * d0
        s1 += d0
        s2 += d2
        s3 += d2 * d0
        s4 += d2 * d2
        dg = dy * dy - gshift
        g1 += dg
        g2 += dg * dg
    _add6(acc, s1, s2, s3, s4, g1, g2)


# 1 / (2k + 1) for k = 1..16: log1p(e) = 2 atanh(s) = 2 (s + s^3 / 3 + s^5 / 5 + ...), s = e / (2 + e) <= 1/3
# for 0 <= e <= 1; the first term left out, s^35 / 35, is below 2e-17 of s.
A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16 = (1.0 / (2 * k + 1) for k in range(1, 17))


# contract, as _exp_parts: the polynomial's multiply-adds become FMAs.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _log1p_unit(e):
    """log1p(e) for 0 <= e <= 1 by the atanh series, no call and no branch (numba's math.log1p is a call into
    libm per value). s = e / (2 + e) keeps the digits of a tiny e, where log(1 + e) would lose them."""
    s = e / (2.0 + e)
    t = s * s
    t2 = t * t
    t4 = t2 * t2
    t8 = t4 * t4
    # Estrin's scheme in t = s^2, as _exp_parts: pairs, then quadruples, then eights.
    q0 = (A1 + A2 * t) + (A3 + A4 * t) * t2
    q1 = (A5 + A6 * t) + (A7 + A8 * t) * t2
    q2 = (A9 + A10 * t) + (A11 + A12 * t) * t2
    q3 = (A13 + A14 * t) + (A15 + A16 * t) * t2
    tail = t * ((q0 + q1 * t4) + (q2 + q3 * t4) * t8)
    return 2.0 * s + 2.0 * s * tail


@_parts
def _softplus_at(x, beta, sign, ej):
    """(f(x), |f'(x)|) = (sign log1p(exp(beta y)) / beta, sigmoid(beta y)), y = sign x, from ej = exp(-|beta y|):
    softplus is sign 1, log_sigmoid sign -1 and beta 1. As ops.activations.softplus, max(beta y, 0) +
    log1p(exp(-|beta y|)), and the sigmoid of both sides from the same exp."""
    by = beta * (sign * x)
    pos = 1.0 / (1.0 + ej)
    return sign * ((by if by > 0.0 else 0.0) + _log1p_unit(ej)) / beta, (pos if by >= 0.0 else ej * pos)


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_softplus_block(z, m, mu, sigma, beta, sign, shift, gshift, acc, e, scale):
    """add_block of sign softplus(x) = sign log1p(exp(beta x)) / beta and of its squared derivative
    sigmoid(beta x), x = sign (mu + sigma z), over z[:m]; e and scale are scratch. softplus(beta) is sign 1,
    log_sigmoid(y) = -softplus(-y) with f' = sigmoid(-y) sign -1, beta 1. As ops.activations.softplus:
    max(beta x, 0) + log1p(exp(-|beta x|)), and the sigmoid of both sides from the same exp."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(beta * (sign * (mu + sigma * z[j]))))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _softplus_at(mu + sigma * z[j], beta, sign, e[j] * powers[j])
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


GELU_C = 0.7978845608028654  # sqrt(2 / pi), as ops.activations.gelu writes it
GELU_K = 0.044715


@_parts
def _gelu_tanh_exponent(x):
    """-|2u|, u = sqrt(2/pi) (x + 0.044715 x^3): the exp that gelu(approximate=tanh) takes."""
    return -2.0 * abs(GELU_C * (x + GELU_K * x * x * x))


@_parts
def _gelu_tanh_at(x, ej):
    """(gelu_tanh(x), its derivative) = (x s, s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 0.044715 x^2)), s = sigmoid(2u),
    from ej = exp(_gelu_tanh_exponent(x)). As _swish_at, with 2u for beta x."""
    pos = 1.0 / (1.0 + ej)
    neg = ej * pos
    s = pos if x >= 0.0 else neg  # u has the sign of x
    return x * s, s + 2.0 * x * (pos * neg) * GELU_C * (1.0 + 3.0 * GELU_K * x * x)


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_gelu_tanh_block(z, m, mu, sigma, shift, gshift, acc, e, scale):
    """add_block of gelu(approximate=tanh)(x) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), and of its
    squared derivative s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 0.044715 x^2), s = sigmoid(2u), over x = mu + sigma z[:m];
    e and scale are scratch. As add_swish_block, with 2u for beta x: both sides of the sigmoid from exp(-|2u|)."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(_gelu_tanh_exponent(mu + sigma * z[j]))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _gelu_tanh_at(mu + sigma * z[j], e[j] * powers[j])
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


@_parts
def _mish_at(x, ej):
    """(mish(x), mish'(x)) from ej = exp(-|x|), as add_mish_block derives them."""
    above = x > 0.0
    num = 1.0 + 2.0 * ej if above else ej * (ej + 2.0)
    r = 1.0 / (num + (2.0 * ej * ej if above else 2.0))
    t = num * r
    return x * t, t + 4.0 * x * (1.0 + ej) * (ej * ej if above else ej) * (r * r)


@jit(error_model="numpy", fastmath={"contract", "reassoc"})
def add_mish_block(z, m, mu, sigma, shift, gshift, acc, e, scale):
    """add_block of mish(x) = x tanh(softplus(x)) and of its squared derivative t + x sech^2(softplus(x)) sigmoid(x),
    over x = mu + sigma z[:m]; e and scale are scratch. No log and no tanh: with w = exp(x), tanh(log(1 + w)) =
    n / (n + 2), n = w (w + 2), and sech^2 = 4 (1 + w)^2 / (n + 2)^2. From e = exp(-|x|): x <= 0 (w = e),
    t = e (e + 2) / (e (e + 2) + 2) and x sech^2 sigmoid = 4 x e (1 + e) / (...)^2; x > 0 (w = 1 / e, numerator and
    denominator times e^2), t = (1 + 2e) / (1 + 2e + 2e^2) and 4 x e^2 (1 + e) / (...)^2. Every term is positive:
    nothing cancels, and one division serves both."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(mu + sigma * z[j]))
    powers = scale.view(np.float64)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    for j in range(m):
        y, dy = _mish_at(mu + sigma * z[j], e[j] * powers[j])
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


# The *_values loops: f alone over a buffer, in place, for the max-pool pair kernels (mc_kernels.VALUES), which
# gather the window extremes of a whole fill first. Two passes, as the add_*_block loops: the exp parts, then f.
# Inlined into mc_kernels' values wrapper of each activation, compiled with these flags: each function numba
# compiles costs a first run about a second.
_values = jit(error_model="numpy", fastmath={"contract"}, inline="always")


@_values
def sigmoid_values(x, m, e, scale):
    """x[:m] <- sigmoid(x[:m]); e (float) and scale (int64) are scratch, as for the *_values below."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(x[j]))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _sigmoid_at(x[j], e[j] * powers[j])[0]


@_values
def tanh_values(x, m, e, em1, scale):
    """x[:m] <- tanh(x[:m])."""
    for j in range(m):
        e[j], em1[j], scale[j] = _expm1_parts(-2.0 * abs(x[j]))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _tanh_at(x[j], e[j], em1[j], powers[j])[0]


@_values
def swish_values(x, m, beta, e, scale):
    """x[:m] <- swish(x[:m]) = x sigmoid(beta x)."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(beta * x[j]))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _swish_at(x[j], beta, e[j] * powers[j])[0]


@_values
def exp_linear_values(x, m, lam, c, d, e, em1, scale):
    """x[:m] <- lam x (x > 0), c expm1(x / d) (x <= 0): elu, celu, selu as add_exp_linear_block takes them."""
    for j in range(m):
        e[j], em1[j], scale[j] = _expm1_parts(min(x[j], 0.0) / d)
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _exp_linear_at(x[j], lam, c, c, e[j], em1[j], powers[j])[0]


@_values
def softplus_values(x, m, beta, sign, e, scale):
    """x[:m] <- sign softplus(sign x) with softplus's beta: softplus (sign 1), log_sigmoid (sign -1, beta 1)."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(beta * (sign * x[j])))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _softplus_at(x[j], beta, sign, e[j] * powers[j])[0]


@_values
def gelu_tanh_values(x, m, e, scale):
    """x[:m] <- gelu(approximate=tanh)(x[:m])."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(_gelu_tanh_exponent(x[j]))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _gelu_tanh_at(x[j], e[j] * powers[j])[0]


@_values
def mish_values(x, m, e, scale):
    """x[:m] <- mish(x[:m])."""
    for j in range(m):
        e[j], scale[j] = _exp_parts(-abs(x[j]))
    powers = scale.view(np.float64)
    for j in range(m):
        x[j] = _mish_at(x[j], e[j] * powers[j])[0]


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

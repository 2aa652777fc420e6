"""Loops over a block of draws that LLVM vectorizes: the chain kernels' sums and their fast activations.

The chain kernels (chain_kernels.run_chain_chunk, run_fused_chunk) draw a
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
* exact gelu and erf: their own module, erf_blocks;
* ``*_values``: the same activations' f alone, in place over a buffer, for the max-pool pair kernels, which
  gather the extremes of a block of windows first (dispatch.VECTOR_VALUES). Each activation's formula from its exp
  parts is written once (``_tanh_at`` and the like) and inlined into both its add_*_block and its values loop.

The exp and the sum helper they share are block_math's. Each is checked against mpmath in
tests/test_block_ops.py.

Reassociation (fastmath "reassoc") lets LLVM split the sums into lanes. The
order of additions is then LLVM's, but fixed for the compiled kernel, so a
chunk's row does not depend on the thread that ran it.
"""

from __future__ import annotations

import numpy as np

from .block_math import EXP_FLOOR, LN2_HI, LN2_LO, LOG2E, ROUND, _add6, _exp_parts, _expm1_reduced
from .block_math import vector_exp as vector_exp  # dispatch.py's rows functions take it as block_ops.vector_exp
from .jit import jit

_jit = jit(error_model="numpy")
_vector_sums = jit(error_model="numpy", fastmath={"reassoc"})
# Each activation from its exp parts, shared by its add_*_block (f and f', with the sums) and its *_values loop
# (f alone): inlined, so a loop compiles it with its own flags and drops what it does not use.
_parts = jit(error_model="numpy", fastmath={"contract"}, inline="always")


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


# The *_values loops: f alone over a buffer, in place, for the max-pool pair kernels (dispatch.VECTOR_VALUES), which
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

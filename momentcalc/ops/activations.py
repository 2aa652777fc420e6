"""Elementwise activations, each declared once: parameters, scalar function, derivative, kinks, closed forms.

Every scalar function has the signature ``f(x, a, b)`` (a and b carry the
op's parameters, from its ``args``) and uses only ``math``, so numba can
compile it for the Monte Carlo kernels and quadrature can call it as it is.
Scalar functions call no other function of this module: numba compiles each
one alone. Adding an activation is adding its functions and one
``activation(...)`` declaration at the end of this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..catalog import ELEMENTWISE, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES
from . import fperr, gaussian, piecewise
from .piecewise import INF

# Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14 (to the digits printed there).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


def relu(x, a, b):
    return x if x > 0.0 else 0.0


def relu_grad(x, a, b):
    return 1.0 if x > 0.0 else 0.0


def relu_closed(a, b, mu, sigma):
    # z = mu / sigma, J_k = E[max(Z - |z|, 0)^k] (gaussian.tail_moments: from the Mills ratio's continued
    # fraction in the tails, so no nearly equal terms are subtracted). Below the kink (z < 0) max(X, 0) =
    # sigma max(Z - |z|, 0): mean sigma J_1, variance sigma^2 (J_2 - J_1^2). Above it max(X, 0) = X + W,
    # W = max(-X, 0) ~ sigma max(Z - z, 0): mean mu + sigma J_1, variance sigma^2 (1 - J_2 - J_1^2 - 2 z J_1).
    # The error bounds (fperr.py): phi(z) and erfc carry the rounding of z, amplified by z^2 / 2 in the exponent.
    z = mu / sigma
    e = 0.5 * z * z
    if z <= -1.0:
        return _relu_lower_tail(-z, sigma)
    j = gaussian.tail_moments(abs(z), 2)
    if z < 0.0:  # the recursion of tail_moments loses at most half a digit below a = 1: 48 roundings
        var = sigma * sigma * j[1] * (j[2] / j[1] - j[1])
        mean = sigma * j[1]
        std = math.sqrt(var)
        return Moments(mean, std, fperr.bound(mean, 48.0, e), fperr.std_bound(std, fperr.bound(var, 48.0, e)))
    mean = mu + sigma * j[1]
    tail = j[2] + j[1] * (j[1] + 2.0 * z)
    var = sigma * sigma * max(1.0 - tail, 0.0)
    var_err = fperr.bound(sigma * sigma * (1.0 + tail), 48.0) + fperr.bound(sigma * sigma * tail, 0.0, e)
    mean_err = fperr.bound(mean, 48.0) + fperr.bound(sigma * j[1], 0.0, e)
    std = math.sqrt(var)
    return Moments(mean, std, mean_err, fperr.std_bound(std, var_err))


def _relu_lower_tail(a, sigma):
    """relu's moments at mu = -a sigma, a >= 1: J_1 = phi(a) R T_1 and J_2 - J_1^2 = J_1 (T_2 - J_1)
    (gaussian.mills_tail), so mean = sigma exp(-a^2 / 2) R T_1 / sqrt(2 pi) and std = sigma exp(-a^2 / 4)
    sqrt(R T_1 (T_2 - J_1)) / (2 pi)^(1/4), without underflow of exp(-a^2 / 2) (gaussian.exp_times): phi(a)
    underflows beyond a = 38.6, the std only beyond a = 54.5 (9.2885e-275 at a = 50)."""
    r, t1, t2 = gaussian.mills_tail(a, 2)
    mean_factor = sigma * r * t1 / gaussian.SQRT_2PI
    std_factor = sigma * math.sqrt(r * t1 * (t2 - gaussian.exp_times(-0.5 * a * a, r * t1 / gaussian.SQRT_2PI)))
    std_factor /= math.sqrt(gaussian.SQRT_2PI)
    mean = gaussian.exp_times(-0.5 * a * a, mean_factor)
    std = gaussian.exp_times(-0.25 * a * a, std_factor)
    # The exponents carry z's rounding (a^2 / 2), and, where exp_times adds a logarithm, that log's rounding.
    mean_err = fperr.bound(mean, 48.0, 0.5 * a * a + abs(math.log(mean_factor)))
    return Moments(mean, std, mean_err, fperr.bound(std, 48.0, 0.25 * a * a + abs(math.log(std_factor))))


def relu_grad_closed(a, b, mu, sigma):
    # Phi(z) = erfc(-z / sqrt 2) / 2: the rounding of z is amplified by z^2 in erfc's lower tail (z < 0); for
    # z > 0 only in the part 1 - Phi(z) that erfc leaves out.
    z = mu / sigma
    value = gaussian.cdf(z)
    if z < 0.0:
        return value, fperr.bound(value, 16.0, 0.5 * z * z)
    return value, fperr.bound(value, 16.0) + fperr.bound(gaussian.cdf(-z), 0.0, 0.5 * z * z)


def relu_kernel(c):
    """E[relu(X) relu(Y)], corr(X, Y) = c: the arc-cosine kernel of degree 1 (Cho & Saul 2009),
    (sqrt(1 - c^2) + (pi - arccos c) c) / (2 pi) = (sin t - t cos t) / (2 pi) with t = arccos(-c); with the bound
    on its rounding (fperr.py): the terms' sizes, and t's own rounding (relative U) times the slope t sin t."""
    t = math.acos(-c)
    if t < 0.5:
        # c -> -1: sin t - t cos t = sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)! (t^3 / 3 - t^5 / 30 + ...) without the
        # cancellation of its two terms (13 terms: the next is below 1e-30 of the first at t < 0.5).
        total, size, term = 0.0, 0.0, t
        for k in range(1, 14):
            term *= t * t / ((2 * k) * (2 * k + 1))  # t^(2k+1) / (2k+1)!
            total += (-1) ** (k + 1) * 2 * k * term
            size += 2 * k * term
        # t's rounding (relative U) moves the t^3 / 3 of the sum by t^3 U; its terms round to a few U each.
        return total / (2.0 * math.pi), (fperr.bound(size, 16.0) + 4.0 * fperr.U * t * t * t) / (2.0 * math.pi)
    value = (math.sin(t) - t * math.cos(t)) / (2.0 * math.pi)
    size = abs(math.sin(t)) + abs(t * math.cos(t)) + t * t * abs(math.sin(t))
    return value, fperr.bound(size, 16.0) / (2.0 * math.pi)


def leaky_relu_kernel(s, c):
    # leaky(x) = s x + (1 - s) relu(x), and E[X relu(Y)] = c E[Y relu(Y)] = c / 2 (regress X on Y).
    k, k_err = relu_kernel(c)
    terms = (s * s * c, s * (1.0 - s) * c, (1.0 - s) ** 2 * k)
    return sum(terms), fperr.bound(sum(abs(x) for x in terms), 16.0) + (1.0 - s) ** 2 * k_err


# The logistic pieces below compute both sides of x >= 0 and then select: a branch on the sign of
# a normal draw is mispredicted half the time, which cost more than the exp itself in the kernels.
# Both sides share exp(-|x|), so f and f' evaluated together (mc_kernels.apply_activation_and_grad)
# cost one exp.


def sigmoid(x, a, b):
    e = math.exp(-abs(x))
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    return pos if x >= 0.0 else neg


def sigmoid_grad(x, a, b):
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def sigmoid_closed(a, b, mu, sigma):
    # sigmoid(x) - 1/2 is odd, so its mean under a centred normal is 1/2; E[y^2] has no closed form.
    return Moments(0.5, None, 0.0) if mu == 0.0 else None  # exactly 1/2


# --- smooth activations ---------------------------------------------------------
# Each branch below avoids overflow of exp for any finite x: Python's math raises where numba gives inf.


def tanh(x, a, b):
    return math.tanh(x)


def tanh_grad(x, a, b):
    # sech(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): 1 - tanh(x)^2 would lose every digit for |x| > 19.
    e = math.exp(-2.0 * abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def odd_closed(a, b, mu, sigma):
    # An odd function has mean 0 under a centred normal.
    return Moments(0.0, None, 0.0) if mu == 0.0 else None  # exactly 0


def gelu(x, a, b):
    # a == 0: exact x Phi(x) (erfc keeps the digits for x << 0); a == 1: the tanh approximation,
    # 0.5 (1 + tanh(u)) = sigmoid(2u) written without cancellation.
    if a == 0.0:
        return 0.5 * x * math.erfc(-x * 0.7071067811865476)
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    if u >= 0.0:
        return x / (1.0 + math.exp(-2.0 * u))
    e = math.exp(2.0 * u)
    return x * e / (1.0 + e)


def gelu_grad(x, a, b):
    if a == 0.0:
        return 0.5 * math.erfc(-x * 0.7071067811865476) + x * math.exp(-0.5 * x * x) * 0.3989422804014327
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    if u >= 0.0:
        s = 1.0 / (1.0 + math.exp(-2.0 * u))
    else:
        e = math.exp(2.0 * u)
        s = e / (1.0 + e)
    return s + 2.0 * x * s * (1.0 - s) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x)


def gelu_closed(a, b, mu, sigma):
    # E[X Phi(X)] = mu E[Phi(X)] + sigma^2 E[phi(X)] (Stein), with E[Phi(X)] = Phi(mu/s),
    # E[phi(X)] = phi(mu/s)/s, s = sqrt(1 + sigma^2). Only the mean: E[X^2 Phi(X)^2] needs bivariate normals.
    if a != 0.0:
        return None
    s = math.sqrt(1.0 + sigma * sigma)
    z = mu / s
    e = 0.5 * z * z  # phi(z) and Phi(z) carry the rounding of z, amplified by z^2 / 2 (fperr.py)
    if abs(z) < 1.0:
        terms = (mu * gaussian.cdf(z), sigma * sigma * gaussian.pdf(z) / s)
        return Moments(sum(terms), None, fperr.bound(abs(terms[0]) + abs(terms[1]), 32.0, e))
    # In the tails mu Phi(z) and sigma^2 phi(z) / s nearly cancel (z << 0) or mu Q(z) does (z >> 0). With the
    # Mills ratio R = Q(|z|) / phi(z) = 1 / (|z| + T_1) both read max(mu, 0) + phi(z) (s R T_1 - 1 / s).
    r, t1 = gaussian.mills_tail(abs(z), 1)
    tail = gaussian.pdf(z) * (s * r * t1 + 1.0 / s)
    mean = max(mu, 0.0) + gaussian.pdf(z) * (s * r * t1 - 1.0 / s)
    return Moments(mean, None, fperr.bound(max(mu, 0.0), 4.0) + fperr.bound(tail, 32.0, e))


def silu(x, a, b):
    e = math.exp(-abs(x))
    pos = x / (1.0 + e)
    neg = x * e / (1.0 + e)
    return pos if x >= 0.0 else neg


def silu_grad(x, a, b):
    e = math.exp(-abs(x))
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    s = pos if x >= 0.0 else neg
    return s * (1.0 + x * (1.0 - s))


def swish(x, a, b):
    # x * sigmoid(beta x) with beta = a > 0 (Ramachandran et al. 2017); silu is swish with beta = 1.
    # Both sides from exp(-|beta x|), as sigmoid: no overflow, no mispredicted branch.
    e = math.exp(-abs(a * x))
    pos = x / (1.0 + e)
    neg = x * e / (1.0 + e)
    return pos if x >= 0.0 else neg


def swish_grad(x, a, b):
    # s + beta x s (1 - s), s = sigmoid(beta x).
    e = math.exp(-abs(a * x))
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    s = pos if x >= 0.0 else neg
    return s * (1.0 + a * x * (1.0 - s))


def elu(x, a, b):
    return x if x > 0.0 else a * math.expm1(x)


def elu_grad(x, a, b):
    return 1.0 if x > 0.0 else a * math.exp(x)


def celu(x, a, b):
    return x if x > 0.0 else a * math.expm1(x / a)


def celu_grad(x, a, b):
    return 1.0 if x > 0.0 else math.exp(x / a)


def selu(x, a, b):
    # a = alpha, b = scale (lambda); b * a * ... is the same double product as the paper's constants inlined.
    if x > 0.0:
        return b * x
    return b * a * math.expm1(x)


def selu_grad(x, a, b):
    if x > 0.0:
        return b
    return b * a * math.exp(x)


def _exp_family_closed(lam, alpha, t, mu, sigma):
    """Moments of lam * x (x > 0), lam * alpha * (exp(t x) - 1) (x <= 0): elu, celu, selu.

    E[exp(t X); X < 0] = exp(t mu + t^2 sigma^2 / 2) Phi(-(mu + t sigma^2) / sigma) (complete the square).
    Where all the mass lies on one side of the kink (40 sigma away) the moments are those of that side alone,
    exactly: lam X, or k expm1(t X) with variance k^2 exp(2 t mu + t^2 sigma^2) expm1(t^2 sigma^2). Elsewhere
    the terms are summed and the result declined (None) when they cancel by more than
    piecewise.CANCELLATION_LIMIT (e.g. at sigma << 1 near the kink).
    """
    k = lam * alpha
    if mu > 40.0 * sigma:  # the other side weighs phi(40) ~ 1e-350 relative: only the products' rounding
        return Moments(lam * mu, lam * sigma, fperr.bound(lam * mu, 2.0), fperr.bound(lam * sigma, 2.0))
    if mu + 2.0 * t * sigma * sigma < -40.0 * sigma:
        return _exp_side(k, t, mu, sigma)
    if abs(t) * sigma <= 1e-3:
        # Near the kink at small t sigma, exp(t x) - 1 by its Taylor polynomial (degree 10: the remainder is below
        # 1e-18 of the value for |t x| <= 0.08, i.e. within 40 sigma of a mu that is itself within 40 sigma of 0),
        # and the moments of the piecewise polynomial; the terms e1 - P(X < 0) would cancel instead.
        series = (0.0,) + tuple(k * t**j / math.factorial(j) for j in range(1, 11))
        found = piecewise.moments(((-INF, 0.0, series), (0.0, INF, (0.0, lam))), mu, sigma)
        if found is None:
            return None
        mean, std, mean_err, std_err = found
        remainder = 1e-18 * (abs(mean) + std)
        return Moments(mean, std, mean_err + remainder, std_err + remainder)
    below = gaussian.mass(-INF, -mu / sigma)
    e1 = gaussian.exp_partial(t, 0.0, mu, sigma)
    e2 = gaussian.exp_partial(2.0 * t, 0.0, mu, sigma)
    pos, pos_size, _ = piecewise.piece_moment((0.0, lam), 0.0, INF, mu, sigma, 0.0, 1)
    # u = mean + k = pos + k (e1 + P(X > 0)) directly: k + mean would cancel where mean ~ -k (mu << 0).
    u = pos + k * (e1 + gaussian.mass(-mu / sigma, INF))
    mean = u - k
    mean_size = pos_size + abs(k) * (e1 + below)
    var, var_size, _ = piecewise.piece_moment((0.0, lam), 0.0, INF, mu, sigma, mean, 2)
    var += k * k * e2 - 2.0 * k * u * e1 + u * u * below
    var_size += k * k * e2 + 2.0 * abs(k * u) * e1 + u * u * below
    var = max(var, 0.0)
    std = math.sqrt(var)
    limit = piecewise.CANCELLATION_LIMIT
    if var_size > limit * var or mean_size > limit * (abs(mean) + std):
        return None
    e = _exp_exponent(t, mu, sigma)
    mean_err = fperr.bound(mean_size, 32.0, e)
    var_err = fperr.bound(var_size, 32.0, _exp_exponent(2.0 * t, mu, sigma)) + mean_err * mean_err
    return Moments(mean, std, mean_err, fperr.std_bound(std, var_err))


def _exp_exponent(t, mu, sigma):
    """The largest exponent whose rounding reaches E[exp(t X); X < 0] or P(X < 0) (fperr.py): d^2 / 2 of the kink's
    pdf and erfc (d = mu / sigma), t mu + (t sigma)^2 / 2 and w^2 / 2 of gaussian.exp_partial."""
    d = abs(mu) / sigma
    w = d + abs(t) * sigma
    return 0.5 * d * d + abs(t * mu) + (t * sigma) ** 2 + 0.5 * w * w


def _exp_side(k, t, mu, sigma):
    """All the mass on the exponential side (40 sigma and more): k expm1(t X) exactly, mean k expm1(x) and std
    |k| exp(x) sqrt(expm1((t sigma)^2)), x = t mu + (t sigma)^2 / 2. x carries a rounding error of up to
    3 U (|t mu| + (t sigma)^2), which expm1(x) turns into a relative error of that times e^x / |expm1(x)|."""
    ts = t * sigma
    x = t * mu + 0.5 * ts * ts
    mean = k * math.expm1(x)
    std = abs(k) * math.exp(x) * math.sqrt(math.expm1(ts * ts))
    spread = abs(t * mu) + ts * ts
    gain = math.exp(x) / abs(math.expm1(x)) if x != 0.0 else 1.0
    mean_err = fperr.bound(mean, 16.0, spread * max(gain, 1.0))
    return Moments(mean, std, mean_err, fperr.bound(std, 16.0, spread))


def _exp_family_grad(lam, alpha, t, mu, sigma):
    # f' = lam (x > 0), lam alpha t exp(t x) (x < 0): a sum of positive terms.
    above = gaussian.mass(-mu / sigma, INF)
    value = lam * lam * (above + (alpha * t) ** 2 * gaussian.exp_partial(2.0 * t, 0.0, mu, sigma))
    return value, fperr.bound(value, 32.0, _exp_exponent(2.0 * t, mu, sigma))


def softplus(x, a, b):
    z = a * x
    tail = math.log1p(math.exp(-abs(z)))
    pos = (z + tail) / a
    neg = tail / a
    return pos if z > 0.0 else neg


def softplus_grad(x, a, b):
    z = a * x
    e = math.exp(-abs(z))
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    return pos if z >= 0.0 else neg


def mish(x, a, b):
    sp = x + math.log1p(math.exp(-x)) if x > 0.0 else math.log1p(math.exp(x))
    return x * math.tanh(sp)


def mish_grad(x, a, b):
    if x > 0.0:
        sp = x + math.log1p(math.exp(-x))
        s = 1.0 / (1.0 + math.exp(-x))
    else:
        e = math.exp(x)
        sp = math.log1p(e)
        s = e / (1.0 + e)
    t = math.tanh(sp)
    return t + x * (1.0 - t * t) * s


def softsign(x, a, b):
    return x / (1.0 + abs(x))


def softsign_grad(x, a, b):
    d = 1.0 + abs(x)
    return 1.0 / (d * d)


def erf(x, a, b):
    return math.erf(x)


def erf_grad(x, a, b):
    return 1.1283791670955126 * math.exp(-x * x)


def erf_closed(a, b, mu, sigma):
    # E[erf(X)] = erf(mu / sqrt(1 + 2 sigma^2)); at mu = 0, E[erf(X)^2] = (2/pi) asin(2 sigma^2 / (1 + 2 sigma^2))
    # (Williams 1997, "Computing with infinite networks", the erf kernel).
    # erf's relative condition number is at most 1 (x erf'(x) / erf(x) <= 1): a few roundings each (fperr.py).
    mean = math.erf(mu / math.sqrt(1.0 + 2.0 * sigma * sigma))
    if mu != 0.0:
        return Moments(mean, None, fperr.bound(mean, 16.0))
    # asin(u), u = 2 s^2 / (1 + 2 s^2), as atan2(2 s^2, sqrt(1 + 4 s^2)): asin loses digits as u -> 1 (large sigma).
    v = 2.0 * sigma * sigma
    std = math.sqrt(2.0 / math.pi * math.atan2(v, math.sqrt(1.0 + 2.0 * v)))
    return Moments(mean, std, 0.0, fperr.bound(std, 16.0))  # the mean is exactly 0 (erf is odd)


def erf_kernel(c):
    # E[erf(X) erf(Y)] = (2/pi) asin(2c / 3) for unit variances (Williams 1997, the arcsine kernel). asin's relative
    # condition number is below 1.4 for |x| <= 2/3: a few roundings (fperr.py); exactly 0 at c = 0.
    value = 2.0 / math.pi * math.asin(2.0 * c / 3.0)
    return value, fperr.bound(value, 16.0)


def erf_grad_closed(a, b, mu, sigma):
    # (4/pi) E[exp(-2 X^2)] = (4/pi) exp(-2 mu^2 / (1 + 4 sigma^2)) / sqrt(1 + 4 sigma^2).
    v = 1.0 + 4.0 * sigma * sigma
    value = 4.0 / math.pi * math.exp(-2.0 * mu * mu / v) / math.sqrt(v)
    return value, fperr.bound(value, 16.0, 2.0 * mu * mu / v)


def log_sigmoid(x, a, b):
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


def log_sigmoid_grad(x, a, b):
    # sigmoid(-x)
    e = math.exp(-abs(x))
    nonpos = 1.0 / (1.0 + e)
    pos = e / (1.0 + e)
    return nonpos if x <= 0.0 else pos


# --- piecewise linear and quadratic ------------------------------------------------


def leaky_relu(x, a, b):
    return x if x > 0.0 else a * x


def leaky_relu_grad(x, a, b):
    return 1.0 if x > 0.0 else a


def hardswish(x, a, b):
    if x <= -3.0:
        return 0.0
    if x >= 3.0:
        return x
    return x * (x + 3.0) / 6.0


def hardswish_grad(x, a, b):
    if x <= -3.0:
        return 0.0
    if x >= 3.0:
        return 1.0
    return (2.0 * x + 3.0) / 6.0


def hardsigmoid(x, a, b):
    if x <= -3.0:
        return 0.0
    if x >= 3.0:
        return 1.0
    return x / 6.0 + 0.5


def hardsigmoid_grad(x, a, b):
    return 1.0 / 6.0 if -3.0 < x < 3.0 else 0.0


def hardtanh(x, a, b):
    if x < a:
        return a
    if x > b:
        return b
    return x


def hardtanh_grad(x, a, b):
    return 1.0 if a < x < b else 0.0


def relu6(x, a, b):
    if x <= 0.0:
        return 0.0
    if x >= 6.0:
        return 6.0
    return x


def relu6_grad(x, a, b):
    return 1.0 if 0.0 < x < 6.0 else 0.0


def absolute(x, a, b):
    return abs(x)


def absolute_grad(x, a, b):
    return 1.0 if x > 0.0 else -1.0


def identity(x, a, b):
    return x


def identity_grad(x, a, b):
    return 1.0


def _pieces_closed(pieces):
    """closed(a, b, mu, sigma) from pieces(a, b): truncated-normal moments of each polynomial piece."""

    def closed(a, b, mu, sigma):
        found = piecewise.moments(pieces(a, b), mu, sigma)
        return None if found is None else Moments(*found)  # with piecewise's error bounds

    return closed


def _pieces_grad(grad_sq_pieces):
    """grad_closed from the pieces of f'(x)^2."""
    return lambda a, b, mu, sigma: piecewise.expect(grad_sq_pieces(a, b), mu, sigma)


def _constant_grad(value):
    return lambda a, b, mu, sigma: (value, 0.0)  # f'^2 is this constant: exact


LEAKY = lambda a, b: ((-INF, 0.0, (0.0, a)), (0.0, INF, (0.0, 1.0)))  # noqa: E731
ABS = lambda a, b: ((-INF, 0.0, (0.0, -1.0)), (0.0, INF, (0.0, 1.0)))  # noqa: E731
RELU6 = lambda a, b: ((-INF, 0.0, (0.0,)), (0.0, 6.0, (0.0, 1.0)), (6.0, INF, (6.0,)))  # noqa: E731
HARDTANH = lambda a, b: ((-INF, a, (a,)), (a, b, (0.0, 1.0)), (b, INF, (b,)))  # noqa: E731
HARDSIGMOID = lambda a, b: ((-INF, -3.0, (0.0,)), (-3.0, 3.0, (0.5, 1.0 / 6.0)), (3.0, INF, (1.0,)))  # noqa: E731
HARDSWISH = lambda a, b: ((-INF, -3.0, (0.0,)), (-3.0, 3.0, (0.0, 0.5, 1.0 / 6.0)), (3.0, INF, (0.0, 1.0)))  # noqa: E731
IDENTITY = lambda a, b: ((-INF, INF, (0.0, 1.0)),)  # noqa: E731


def _param(name):
    return lambda op: (float(op.get(name)), 0.0)


def activation(
    name: str,
    description: str,
    f,
    df,
    monotone: bool,
    *params: Param,
    args=lambda op: (0.0, 0.0),
    kinks=lambda a, b: (),
    closed=None,
    grad_closed=None,
    **extra,
) -> OpInfo:
    """Declare an activation; closed(a, b, mu, sigma) and grad_closed(a, b, mu, sigma) take its scalar args."""
    return register(
        OpInfo(
            name,
            ELEMENTWISE,
            description,
            tuple(params),
            f=f,
            df=df,
            args=args,
            monotone=monotone,
            kinks=kinks,
            closed=_on_args(closed, args),
            grad_closed=_on_args(grad_closed, args),
            **extra,
        )
    )


def _on_args(form: Callable | None, args: Callable) -> Callable | None:
    """form(a, b, mu, sigma) as the registry's (op, mu, sigma)."""
    return None if form is None else (lambda op, mu, sigma: form(*args(op), mu, sigma))


# --- ball arithmetic (the certified method) -----------------------------------------
# (f, f') per analytic piece between the kinks, on complex balls, through certified's `lib`. Each avoids
# cancellation (x / (1 + exp(-x)), never x (1 + tanh) / 2 or 1 - tanh^2): balls keep no digits a formula loses.


def _sig_ball(x, lib):
    return 1 / (1 + lib.exp(-x))


def _sig_grad_ball(x, lib):
    return 1 / ((1 + lib.exp(-x)) * (1 + lib.exp(x)))


def _gelu_ball(x, a, b, lib):
    if a == 0.0:
        return x * lib.erfc(-x / lib.sqrt(2)) / 2
    return x * _sig_ball(2 * _gelu_tanh_u(x, lib), lib)


def _gelu_grad_ball(x, a, b, lib):
    if a == 0.0:
        return lib.erfc(-x / lib.sqrt(2)) / 2 + x * lib.exp(-x * x / 2) / lib.sqrt(2 * lib.pi())
    u = _gelu_tanh_u(x, lib)
    du = lib.sqrt(2 / lib.pi()) * (1 + 3 * lib.num("0.044715") * x * x)
    return _sig_ball(2 * u, lib) + 2 * x * _sig_grad_ball(2 * u, lib) * du


def _gelu_tanh_u(x, lib):
    return lib.sqrt(2 / lib.pi()) * (x + lib.num("0.044715") * x * x * x)


def _swish_ball(x, a, b, lib):
    return x * _sig_ball(a * x, lib)


def _swish_grad_ball(x, a, b, lib):
    return _sig_ball(a * x, lib) + a * x * _sig_grad_ball(a * x, lib)


def _softplus_ball(x, a, b, lib):
    return lib.log1p(lib.exp(a * x)) / a


def _mish_ball(x, a, b, lib):
    return x * lib.tanh(lib.log1p(lib.exp(x)))


def _mish_grad_ball(x, a, b, lib):
    sp = lib.log1p(lib.exp(x))
    return lib.tanh(sp) + x * lib.sech(sp) ** 2 * _sig_ball(x, lib)


def _selu_constants(a, b, lib):
    """(scale, alpha) as balls: the paper's 32 digits for the default parameters (so certified digits of `selu`
    stay those of the paper's constants), the exact doubles otherwise; balls (the unknowns of an interval Newton) as
    they are, even where one equals a default's double."""
    if isinstance(a, float) and isinstance(b, float) and a == SELU_ALPHA and b == SELU_LAMBDA:
        return lib.num("1.0507009873554804934193349852946"), lib.num("1.6732632423543772848170429916717")
    return lib.num(b), lib.num(a)


def _ball_const(c):
    return lambda x, a, b, lib: c + 0 * x


_BALL_X = lambda x, a, b, lib: x  # noqa: E731
_BALL_0 = _ball_const(0)
_BALL_1 = _ball_const(1)
_GATED_GRAD = 1.2  # sup |f'| of silu/swish (1.0998), gelu (1.129), mish (1.089), with room
_RELU_BALL = ((_BALL_0, _BALL_0), (_BALL_X, _BALL_1))
_ELU_BALL = (
    (lambda x, a, b, lib: a * lib.expm1(x), lambda x, a, b, lib: a * lib.exp(x)),
    (_BALL_X, _BALL_1),
)
_CELU_BALL = (
    (lambda x, a, b, lib: a * lib.expm1(x / a), lambda x, a, b, lib: lib.exp(x / a)),
    (_BALL_X, _BALL_1),
)


def _selu_below(x, a, b, lib):
    lam, alpha = _selu_constants(a, b, lib)
    return lam * alpha * lib.expm1(x)


def _selu_below_grad(x, a, b, lib):
    lam, alpha = _selu_constants(a, b, lib)
    return lam * alpha * lib.exp(x)


_SELU_BALL = (
    (_selu_below, _selu_below_grad),
    (
        lambda x, a, b, lib: _selu_constants(a, b, lib)[0] * x,
        lambda x, a, b, lib: _selu_constants(a, b, lib)[0] + 0 * x,
    ),
)
# |f| <= scale alpha + scale |x|, |f'| <= scale max(alpha, 1); 1.001 covers the paper's digits beyond the doubles.
_SELU_GROWTH = lambda a, b: (b * a * 1.001, b * 1.001, b * max(a, 1.0) * 1.001)  # noqa: E731
_BOUNDED = lambda c, d: lambda a, b: (c, 0.0, d)  # noqa: E731
# Bounds on |df/dp| and |df'/dp| (OpInfo.param_growth), each derived on the op's pieces, with 0.1% room:
# selu: d/dalpha = scale (e^x - 1), scale e^x (x < 0): <= scale; d/dscale = x or alpha (e^x - 1), 1 or alpha e^x.
_SELU_PARAM_GROWTH = lambda a, b: ((b * 1.001, 0.0, 0.0), (max(a, 1.0) * 1.001, 1.001, 0.0))  # noqa: E731
# celu, t = x / alpha <= 0: d/dalpha = e^t - 1 - t e^t in (-1, 1/e]; d/dalpha f' = -(t / alpha) e^t in [0, 1/(e alpha)].
_CELU_PARAM_GROWTH = lambda a, b: ((max(1.0, 0.3679 / a) * 1.001, 0.0, 0.0), (0.0, 0.0, 0.0))  # noqa: E731
# softplus, L(z) = log(1 + e^z) <= log 2 + |z|: d/dbeta = (-L(beta x) + beta x sigmoid(beta x)) / beta^2, at most
# 0.7 / beta^2 + 2 |x| / beta; d/dbeta f' = x sigmoid'(beta x), at most |x| / 4.
_SOFTPLUS_PARAM_GROWTH = lambda a, b: ((0.7 / (a * a) * 1.001, max(2.0 / a, 0.25) * 1.001, 0.0), (0.0, 0.0, 0.0))  # noqa: E731
# swish: d/dbeta = x^2 s'(beta x) <= x^2 / 4; d/dbeta f' = 2 x s'(beta x) + beta x^2 s''(beta x),
# |s''| <= 1 / (6 sqrt 3).
_SWISH_PARAM_GROWTH = lambda a, b: ((0.0, 0.5005, max(0.25, 0.0963 * a) * 1.001), (0.0, 0.0, 0.0))  # noqa: E731
_LINEAR = lambda d: lambda a, b: (0.0, 1.0, d)  # noqa: E731

_KINK_AT_0 = lambda a, b: (0.0,)  # noqa: E731
_ALPHA = Param("alpha", float, 1.0, bounds=PARAM_RANGES["alpha"])

activation(
    "relu",
    "max(x, 0)",
    relu,
    relu_grad,
    True,
    kinks=_KINK_AT_0,
    closed=relu_closed,
    grad_closed=relu_grad_closed,
    kernel=lambda op, c: relu_kernel(c),
    ball=_RELU_BALL,
    growth=_LINEAR(1.0),
    piece_degree=1,
)
activation(
    "sigmoid",
    "1 / (1 + exp(-x))",
    sigmoid,
    sigmoid_grad,
    True,
    closed=sigmoid_closed,
    ball=((lambda x, a, b, lib: _sig_ball(x, lib), lambda x, a, b, lib: _sig_grad_ball(x, lib)),),
    growth=_BOUNDED(1.0, 0.25),
    odd_center=lambda a, b: 0.5,
)
activation(
    "tanh",
    "tanh(x)",
    tanh,
    tanh_grad,
    True,
    closed=odd_closed,
    ball=((lambda x, a, b, lib: lib.tanh(x), lambda x, a, b, lib: lib.sech(x) ** 2),),
    growth=_BOUNDED(1.0, 1.0),
    odd_center=lambda a, b: 0.0,
)
activation(
    "gelu",
    "x * Phi(x) (exact, erf form); approximate=tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    gelu,
    gelu_grad,
    False,
    Param("approximate", str, "none", choices=("none", "tanh")),
    args=lambda op: (1.0 if op.get("approximate") == "tanh" else 0.0, 0.0),
    closed=gelu_closed,
    ball=((_gelu_ball, _gelu_grad_ball),),
    growth=_LINEAR(_GATED_GRAD),
    valley=True,
    valley_split=0.0,  # f <= 0 left of 0, >= 0 right of it
)
activation(
    "silu",
    "x * sigmoid(x) (swish)",
    silu,
    silu_grad,
    False,
    ball=((lambda x, a, b, lib: _swish_ball(x, 1, b, lib), lambda x, a, b, lib: _swish_grad_ball(x, 1, b, lib)),),
    growth=_LINEAR(_GATED_GRAD),
    valley=True,
    valley_split=0.0,  # f <= 0 left of 0, >= 0 right of it
)
activation(
    "swish",
    "x * sigmoid(beta x) (Ramachandran et al. 2017); silu is swish(beta=1)",
    swish,
    swish_grad,
    False,
    Param("beta", float, 1.0, bounds=PARAM_RANGES["beta"]),
    args=_param("beta"),
    ball=((_swish_ball, _swish_grad_ball),),
    growth=_LINEAR(_GATED_GRAD),
    param_growth=_SWISH_PARAM_GROWTH,
    valley=True,
    valley_split=0.0,  # f <= 0 left of 0, >= 0 right of it
)
activation(
    "elu",
    "x if x > 0 else alpha * (exp(x) - 1)",
    elu,
    elu_grad,
    True,
    _ALPHA,
    args=_param("alpha"),
    kinks=_KINK_AT_0,
    closed=lambda a, b, mu, sigma: _exp_family_closed(1.0, a, 1.0, mu, sigma),
    grad_closed=lambda a, b, mu, sigma: _exp_family_grad(1.0, a, 1.0, mu, sigma),
    ball=_ELU_BALL,
    growth=lambda a, b: (a, 1.0, max(1.0, a)),
    param_growth=lambda a, b: ((1.0, 0.0, 0.0), (0.0, 0.0, 0.0)),  # d/dalpha: e^x - 1, e^x (x < 0)
)
activation(
    "celu",
    "x if x > 0 else alpha * (exp(x / alpha) - 1)",
    celu,
    celu_grad,
    True,
    _ALPHA,
    args=_param("alpha"),
    kinks=_KINK_AT_0,
    closed=lambda a, b, mu, sigma: _exp_family_closed(1.0, a, 1.0 / a, mu, sigma),
    grad_closed=lambda a, b, mu, sigma: _exp_family_grad(1.0, a, 1.0 / a, mu, sigma),
    ball=_CELU_BALL,
    growth=lambda a, b: (a, 1.0, 1.0),
    param_growth=_CELU_PARAM_GROWTH,
)
activation(
    "selu",
    "scale * elu(x, alpha); defaults: the constants of Klambauer et al. 2017 (`momentcalc solve` finds others)",
    selu,
    selu_grad,
    True,
    Param("alpha", float, SELU_ALPHA, bounds=PARAM_RANGES["alpha"]),
    Param("scale", float, SELU_LAMBDA, bounds=PARAM_RANGES["scale"]),
    args=lambda op: (float(op.get("alpha")), float(op.get("scale"))),
    kinks=_KINK_AT_0,
    closed=lambda a, b, mu, sigma: _exp_family_closed(b, a, 1.0, mu, sigma),
    grad_closed=lambda a, b, mu, sigma: _exp_family_grad(b, a, 1.0, mu, sigma),
    ball=_SELU_BALL,
    growth=_SELU_GROWTH,
    param_growth=_SELU_PARAM_GROWTH,
)
activation(
    "softplus",
    "log(1 + exp(beta x)) / beta, exact everywhere (no linear threshold regime)",
    softplus,
    softplus_grad,
    True,
    Param("beta", float, 1.0, bounds=PARAM_RANGES["beta"]),
    args=_param("beta"),
    ball=((_softplus_ball, lambda x, a, b, lib: _sig_ball(a * x, lib)),),
    growth=lambda a, b: (0.7 / a, 1.0, 1.0),
    param_growth=_SOFTPLUS_PARAM_GROWTH,
)
activation(
    "leaky_relu",
    "x if x > 0 else slope * x",
    leaky_relu,
    leaky_relu_grad,
    True,
    Param("slope", float, 0.01, bounds=PARAM_RANGES["slope"]),
    args=_param("slope"),
    kinks=_KINK_AT_0,
    closed=_pieces_closed(LEAKY),
    grad_closed=_pieces_grad(lambda a, b: ((-INF, 0.0, (a * a,)), (0.0, INF, (1.0,)))),
    kernel=lambda op, c: leaky_relu_kernel(float(op.get("slope")), c),
    ball=((lambda x, a, b, lib: a * x, lambda x, a, b, lib: a + 0 * x), (_BALL_X, _BALL_1)),
    growth=lambda a, b: (0.0, max(1.0, a), max(1.0, a)),
    piece_degree=1,
    param_growth=lambda a, b: ((1.0, 1.0, 0.0), (0.0, 0.0, 0.0)),  # d/dslope: x, 1 (x < 0)
)
activation(
    "mish",
    "x * tanh(softplus(x))",
    mish,
    mish_grad,
    False,
    ball=((_mish_ball, _mish_grad_ball),),
    growth=_LINEAR(_GATED_GRAD),
    valley=True,
    valley_split=0.0,  # f <= 0 left of 0, >= 0 right of it
)
activation(
    "hardswish",
    "x * relu6(x + 3) / 6",
    hardswish,
    hardswish_grad,
    False,
    kinks=lambda a, b: (-3.0, 3.0),
    closed=_pieces_closed(HARDSWISH),
    grad_closed=_pieces_grad(lambda a, b: ((-3.0, 3.0, (9.0 / 36.0, 12.0 / 36.0, 4.0 / 36.0)), (3.0, INF, (1.0,)))),
    ball=(
        (_BALL_0, _BALL_0),
        (lambda x, a, b, lib: x * (x + 3) / 6, lambda x, a, b, lib: (2 * x + 3) / 6),
        (_BALL_X, _BALL_1),
    ),
    growth=_LINEAR(1.5),
    piece_degree=2,
    valley=True,
    valley_split=0.0,  # f <= 0 left of 0, >= 0 right of it
)
activation(
    "hardsigmoid",
    "relu6(x + 3) / 6",
    hardsigmoid,
    hardsigmoid_grad,
    True,
    kinks=lambda a, b: (-3.0, 3.0),
    closed=_pieces_closed(HARDSIGMOID),
    grad_closed=_pieces_grad(lambda a, b: ((-3.0, 3.0, (1.0 / 36.0,)),)),
    odd_center=lambda a, b: 0.5,
    ball=(
        (_BALL_0, _BALL_0),
        (lambda x, a, b, lib: x / 6 + lib.num("0.5"), lambda x, a, b, lib: 1 / (6 + 0 * x)),
        (_BALL_1, _BALL_0),
    ),
    growth=_BOUNDED(1.0, 0.17),
    piece_degree=1,
)
activation(
    "hardtanh",
    "min(max(x, min_val), max_val)",
    hardtanh,
    hardtanh_grad,
    True,
    Param("min_val", float, -1.0, bounds=PARAM_RANGES["min_val"]),
    Param("max_val", float, 1.0, bounds=PARAM_RANGES["max_val"]),
    args=lambda op: (float(op.get("min_val")), float(op.get("max_val"))),
    kinks=lambda a, b: (a, b),
    closed=_pieces_closed(HARDTANH),
    grad_closed=_pieces_grad(lambda a, b: ((a, b, (1.0,)),)),
    ball=(
        (lambda x, a, b, lib: a + 0 * x, _BALL_0),
        (_BALL_X, _BALL_1),
        (lambda x, a, b, lib: b + 0 * x, _BALL_0),
    ),
    growth=lambda a, b: (max(abs(a), abs(b)), 0.0, 1.0),
    piece_degree=1,
    odd_center=lambda a, b: 0.0 if a == -b else None,
    constraint=lambda v: v["min_val"] < v["max_val"],
    constraint_text="min_val < max_val",
)
activation(
    "relu6",
    "min(max(x, 0), 6)",
    relu6,
    relu6_grad,
    True,
    kinks=lambda a, b: (0.0, 6.0),
    closed=_pieces_closed(RELU6),
    grad_closed=_pieces_grad(lambda a, b: ((0.0, 6.0, (1.0,)),)),
    ball=((_BALL_0, _BALL_0), (_BALL_X, _BALL_1), (_ball_const(6), _BALL_0)),
    growth=_BOUNDED(6.0, 1.0),
    piece_degree=1,
)
activation(
    "softsign",
    "x / (1 + |x|)",
    softsign,
    softsign_grad,
    True,
    kinks=_KINK_AT_0,
    closed=odd_closed,
    ball=(
        (lambda x, a, b, lib: x / (1 - x), lambda x, a, b, lib: 1 / (1 - x) ** 2),
        (lambda x, a, b, lib: x / (1 + x), lambda x, a, b, lib: 1 / (1 + x) ** 2),
    ),
    growth=_BOUNDED(1.0, 1.0),
    odd_center=lambda a, b: 0.0,
)
activation(
    "erf",
    "erf(x)",
    erf,
    erf_grad,
    True,
    closed=erf_closed,
    grad_closed=erf_grad_closed,
    kernel=lambda op, c: erf_kernel(c),
    ball=((lambda x, a, b, lib: lib.erf(x), lambda x, a, b, lib: 2 * lib.exp(-x * x) / lib.sqrt(lib.pi())),),
    growth=_BOUNDED(1.0, 1.13),
    odd_center=lambda a, b: 0.0,
)
activation(
    "abs",
    "|x|",
    absolute,
    absolute_grad,
    False,
    kinks=_KINK_AT_0,
    closed=_pieces_closed(ABS),
    grad_closed=_constant_grad(1.0),
    ball=((lambda x, a, b, lib: -x, lambda x, a, b, lib: -1 + 0 * x), (_BALL_X, _BALL_1)),
    growth=_LINEAR(1.0),
    piece_degree=1,
    valley=True,
)
activation(
    "log_sigmoid",
    "log(sigmoid(x)) = -softplus(-x)",
    log_sigmoid,
    log_sigmoid_grad,
    True,
    ball=((lambda x, a, b, lib: -lib.log1p(lib.exp(-x)), lambda x, a, b, lib: _sig_ball(-x, lib)),),
    growth=lambda a, b: (0.7, 1.0, 1.0),
)
activation(
    "identity",
    "x",
    identity,
    identity_grad,
    True,
    closed=_pieces_closed(IDENTITY),
    grad_closed=_constant_grad(1.0),
    kernel=lambda op, c: (c, 0.0),  # exactly c
    ball=((_BALL_X, _BALL_1),),
    growth=_LINEAR(1.0),
    piece_degree=1,
    odd_center=lambda a, b: 0.0,
)

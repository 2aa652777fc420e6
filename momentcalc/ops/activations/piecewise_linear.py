"""The piecewise linear and quadratic activations: relu, leaky_relu, hardswish, hardsigmoid, hardtanh, relu6,
abs, identity; their closed forms from their pieces, relu's and leaky_relu's kernels, their ball pieces."""

from __future__ import annotations

import math

from ...result import Moments
from .. import fperr, gaussian, piecewise
from ..piecewise import INF
from .shared import _BALL_0, _BALL_1, _BALL_X


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


_RELU_BALL = ((_BALL_0, _BALL_0), (_BALL_X, _BALL_1))

"""The bounded smooth activations: sigmoid, tanh, softsign, erf, and log_sigmoid; their closed forms and ball
functions."""

from __future__ import annotations

import math

from ...result import Moments
from .. import fperr

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


def _sig_ball(x, lib):
    return 1 / (1 + lib.exp(-x))


def _sig_grad_ball(x, lib):
    return 1 / ((1 + lib.exp(-x)) * (1 + lib.exp(x)))

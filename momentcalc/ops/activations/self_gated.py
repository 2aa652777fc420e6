"""The self-gated activations x g(x): gelu, silu, swish, mish; gelu's closed form, their ball functions and
bounds."""

from __future__ import annotations

import math

from ...result import Moments
from .. import fperr, gaussian
from .logistic import _sig_ball, _sig_grad_ball


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


def _mish_ball(x, a, b, lib):
    return x * lib.tanh(lib.log1p(lib.exp(x)))


def _mish_grad_ball(x, a, b, lib):
    sp = lib.log1p(lib.exp(x))
    return lib.tanh(sp) + x * lib.sech(sp) ** 2 * _sig_ball(x, lib)


_GATED_GRAD = 1.2  # sup |f'| of silu/swish (1.0998), gelu (1.129), mish (1.089), with room


# Bounds on |df/dp| and |df'/dp| (OpInfo.param_growth), each derived on the op's pieces, with 0.1% room:


# swish: d/dbeta = x^2 s'(beta x) <= x^2 / 4; d/dbeta f' = 2 x s'(beta x) + beta x^2 s''(beta x),
# |s''| <= 1 / (6 sqrt 3).
_SWISH_PARAM_GROWTH = lambda a, b: ((0.0, 0.5005, max(0.25, 0.0963 * a) * 1.001), (0.0, 0.0, 0.0))  # noqa: E731

"""Elementwise activations: scalar function, derivative, kinks, closed forms.

Every scalar function has the signature ``f(x, a, b)`` (a and b carry the
op's parameters) and uses only ``math``, so numba can compile it for the
Monte Carlo kernels and quadrature can call it as it is. Scalar functions
call no other function of this module: numba compiles each one alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from . import gaussian


@dataclass(frozen=True)
class Moments:
    mean: float
    std: float | None  # None where only the mean has a closed form


@dataclass(frozen=True)
class Activation:
    name: str
    code: int  # the Monte Carlo kernels dispatch on it
    f: Callable[[float, float, float], float]
    df: Callable[[float, float, float], float]
    monotone: bool  # non-decreasing: max over a window commutes with it
    kinks: Callable[[float, float], tuple[float, ...]] = lambda a, b: ()
    args: Callable[[object], tuple[float, float]] = lambda op: (0.0, 0.0)
    closed: Callable[[float, float, float, float], Moments | None] | None = None


def relu(x, a, b):
    return x if x > 0.0 else 0.0


def relu_grad(x, a, b):
    return 1.0 if x > 0.0 else 0.0


def relu_closed(a, b, mu, sigma):
    # E[max(X,0)] and E[max(X,0)^2] for X ~ N(mu, sigma^2), by integrating the normal tail.
    z = mu / sigma
    m1 = mu * gaussian.cdf(z) + sigma * gaussian.pdf(z)
    m2 = (mu * mu + sigma * sigma) * gaussian.cdf(z) + mu * sigma * gaussian.pdf(z)
    return Moments(m1, math.sqrt(max(m2 - m1 * m1, 0.0)))


def sigmoid(x, a, b):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def sigmoid_grad(x, a, b):
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def sigmoid_closed(a, b, mu, sigma):
    # sigmoid(x) - 1/2 is odd, so its mean under a centred normal is 1/2; E[y^2] has no closed form.
    return Moments(0.5, None) if mu == 0.0 else None


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", 1, relu, relu_grad, True, kinks=lambda a, b: (0.0,), closed=relu_closed),
        Activation("sigmoid", 2, sigmoid, sigmoid_grad, True, closed=sigmoid_closed),
    )
}

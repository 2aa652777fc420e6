"""Dropout: y = x * r / c with r ~ Bernoulli(p), kept values divided by c.

The scale conventions: ``none`` (c = 1, std sqrt(p) at N(0, 1), as in the
NormProp note), ``sqrt`` (c = sqrt(p), std 1: the NormProp choice and our
default, since it is the one that keeps unit variance) and ``inverse``
(c = p, the usual inverted dropout, which keeps the mean instead).
"""

from __future__ import annotations

import math

from ..catalog import DROPOUT, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES


def divisor(p: float, scale: str) -> float:
    return {"none": 1.0, "sqrt": math.sqrt(p), "inverse": p}[scale]


def moments_after(p: float, scale: str, mean: float, second: float) -> tuple[float, float]:
    """E[y] and E[y^2] from E[x] and E[x^2]: dropout acts on any input through them."""
    c = divisor(p, scale)
    return p * mean / c, p * second / (c * c)


def closed(p: float, scale: str, mu: float, sigma: float) -> Moments:
    mean, second = moments_after(p, scale, mu, mu * mu + sigma * sigma)
    return Moments(mean, math.sqrt(max(second - mean * mean, 0.0)))


def ball_moments(p: float, scale: str, mean, var, lib) -> tuple:
    """(mean, var, factor of E[f'^2]) after dropout, from balls of the mean and variance before it.

    E[y] = p m / c, Var[y] = p (v + (1 - p) m^2) / c^2 (no cancellation), E[y'^2] = p / c^2 E[x'^2].
    """
    c = {"none": lib.num(1), "sqrt": lib.sqrt(p), "inverse": lib.num(p)}[scale]
    return p * mean / c, p * (var + (1 - lib.num(p)) * mean * mean) / (c * c), p / (c * c)


register(
    OpInfo(
        "dropout",
        DROPOUT,
        "keep each value with probability p, zero it otherwise",
        (
            Param("p", float, None, accepted="the keep probability", bounds=PARAM_RANGES["keep"]),
            Param("scale", str, "sqrt", choices=("none", "sqrt", "inverse")),
        ),
        closed=lambda op, mu, sigma: closed(op.get("p"), op.get("scale"), mu, sigma),
        ball_moments=lambda op, mean, var, lib: ball_moments(op.get("p"), op.get("scale"), mean, var, lib),
    )
)

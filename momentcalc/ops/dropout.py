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
from . import fperr


def divisor(p: float, scale: str) -> float:
    return {"none": 1.0, "sqrt": math.sqrt(p), "inverse": p}[scale]


def moments_after(p: float, scale: str, mean: float, second: float) -> tuple[float, float]:
    """E[y] and E[y^2] from E[x] and E[x^2]: dropout acts on any input through them."""
    c = divisor(p, scale)
    return p * mean / c, p * second / (c * c)


def closed(p: float, scale: str, mu: float, sigma: float) -> Moments:
    # Var[y] = p (sigma^2 + (1 - p) mu^2) / c^2: positive terms, no E[y^2] - E[y]^2 cancellation; a few roundings.
    c = divisor(p, scale)
    mean = p * mu / c
    std = math.sqrt(p * (sigma * sigma + (1.0 - p) * mu * mu)) / c
    return Moments(mean, std, fperr.bound(mean, 8.0), fperr.bound(std, 16.0))


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

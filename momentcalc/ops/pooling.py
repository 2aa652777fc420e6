"""Window ops (max and average pooling), declared once: parameters, reduction, closed forms over n iid normals.

A window op takes n iid copies of its input (n = k**dims, or n=N). For
X_i ~ N(mu, sigma^2), max_i X_i = mu + sigma * M_n with M_n the max of n
standard normals, and the average is N(mu, sigma^2 / n). Stride and padding
matter only on a feature map of a given size (estimate(..., size=I)).
"""

from __future__ import annotations

import math

from ..catalog import WINDOW, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES
from . import fperr

_SQRT_PI = math.sqrt(math.pi)

# How a window op combines its n inputs. Every method that branches on a reduction refuses one it does
# not know; MAP_REDUCE says how whole-map simulation pools with numpy: (ufunc name, padding value).
MAX = "max"
MIN = "min"
MEAN = "mean"
REDUCTIONS = (MAX, MIN, MEAN)
MAP_REDUCE = {MAX: ("maximum", -math.inf), MIN: ("minimum", math.inf), MEAN: ("add", 0.0)}

# E[M_n] and E[M_n^2] for the max of n iid standard normals. Means: David &
# Nagaraja, Order Statistics (3rd ed.), sec. 3.2 (n <= 5); second moments
# for n <= 4 follow from E[X_(n)^2] of the same section.
_MAX_MEAN = {
    1: 0.0,
    2: 1.0 / _SQRT_PI,
    3: 3.0 / (2.0 * _SQRT_PI),
    4: 6.0 / (math.pi * _SQRT_PI) * math.atan(math.sqrt(2.0)),
    5: 5.0 / (4.0 * _SQRT_PI) * (1.0 + 6.0 / math.pi * math.asin(1.0 / 3.0)),
}
_MAX_SECOND = {
    1: 1.0,
    2: 1.0,
    3: 1.0 + math.sqrt(3.0) / (2.0 * math.pi),
    4: 1.0 + math.sqrt(3.0) / math.pi,
}


def max_closed(n: int, mu: float, sigma: float) -> Moments | None:
    if n not in _MAX_MEAN:
        return None
    # The table's constants are a few roundings each (up to 8 for n = 4, 5), E[M^2] - E[M]^2 loses up to a factor
    # (E[M^2] + E[M]^2) / Var[M] < 6 to cancellation, and mu + sigma E[M] what its terms' sizes allow (fperr.py).
    mean = _MAX_MEAN[n]
    found = mu + sigma * mean
    mean_err = fperr.bound(abs(mu) + sigma * abs(mean), 16.0) if n > 1 else 0.0
    if n not in _MAX_SECOND:
        return Moments(found, None, mean_err)
    std = math.sqrt(_MAX_SECOND[n] - mean * mean)
    std_err = fperr.std_bound(std, fperr.bound(_MAX_SECOND[n] + mean * mean, 16.0)) if n > 1 else 0.0
    return Moments(found, sigma * std, mean_err, sigma * std_err + fperr.bound(sigma * std, 2.0) * (n > 1))


def min_closed(n: int, mu: float, sigma: float) -> Moments | None:
    # min_i X_i = -max_i(-X_i), and -X_i are iid N(-mu, sigma^2): the max's table, mirrored.
    found = max_closed(n, -mu, sigma)
    return None if found is None else Moments(-found.mean, found.std, found.mean_err, found.std_err)


def avg_closed(n: int, mu: float, sigma: float) -> Moments:
    # The mean is mu itself; sigma / sqrt(n) is two roundings .
    std = sigma / math.sqrt(n)
    exact = n & (n - 1) == 0 and n.bit_length() % 2 == 1  # n = 4^j: sqrt(n) = 2^j, an exact division
    return Moments(mu, std, 0.0, 0.0 if exact else fperr.bound(std, 2.0))


def max_density_ball(b, n: int, lib):
    """Density n phi(b) Phi(b)^(n-1) of the max of n standard normals at a ball b (the certified method).

    Phi^(n-1) as exp((n-1) log Phi): no underflow and n up to millions; lib.log checks its branch cut.
    """
    phi = lib.exp(-b * b / 2) / lib.sqrt(2 * lib.pi())
    if n == 1:
        return phi
    return n * phi * lib.exp((n - 1) * lib.log(lib.erfc(-b / lib.sqrt(2)) / 2))


WINDOW_PARAMS = (
    Param("k", int, None, accepted="window side", bounds=PARAM_RANGES["count"]),
    Param("dims", int, 2, lambda v: v in (1, 2, 3), "1, 2 or 3"),
    Param("n", int, None, accepted="window size", bounds=PARAM_RANGES["count"]),
    # Stride and padding (with k= only). They matter only on a feature map of a given size
    # (estimate(..., size=I)); without one a window op means an interior window of n iid inputs.
    Param("s", int, None, accepted="stride, default k", bounds=PARAM_RANGES["count"]),
    Param("p", int, 0, accepted="padding, at most k/2", bounds=PARAM_RANGES["padding"]),
)
# PyTorch's flag: padding zeros count in the divisor (true) or only real inputs do (false).
AVG_PARAMS = WINDOW_PARAMS + (Param("count_include_pad", bool, True, accepted="true or false"),)


def _pad_fits(values: dict) -> bool:
    """PyTorch's rule for pooling: p <= k/2."""
    return values["k"] is None or 2 * values["p"] <= values["k"]


def window_op(
    name: str, description: str, reduction: str, params: tuple[Param, ...], closed, ball_density=None
) -> OpInfo:
    """Declare a window op; closed(n, mu, sigma) gives its moments over n iid N(mu, sigma^2) inputs, or None."""
    return register(
        OpInfo(
            name,
            WINDOW,
            description,
            params,
            _pad_fits,
            "p <= k/2",
            reduction=reduction,
            closed=lambda op, mu, sigma: closed(op.window_size, mu, sigma),
            ball_density=ball_density,
        )
    )


window_op("maxpool", "max over a window of n iid copies of its input", MAX, WINDOW_PARAMS, max_closed, max_density_ball)
# The min of n is minus the max of n mirrored: the same density, of -b.
window_op("minpool", "min over a window of n iid copies of its input", MIN, WINDOW_PARAMS, min_closed, max_density_ball)
window_op("avgpool", "mean over a window of n iid copies of its input", MEAN, AVG_PARAMS, avg_closed)

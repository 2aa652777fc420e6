"""Window ops (max and average pooling): closed forms over n iid normals.

A window op takes n iid copies of its input. For X_i ~ N(mu, sigma^2),
max_i X_i = mu + sigma * M_n with M_n the max of n standard normals, and
the average is N(mu, sigma^2 / n).
"""

from __future__ import annotations

import math

from .activations import Moments

_SQRT_PI = math.sqrt(math.pi)

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
    mean = _MAX_MEAN[n]
    std = math.sqrt(_MAX_SECOND[n] - mean * mean) if n in _MAX_SECOND else None
    return Moments(mu + sigma * mean, None if std is None else sigma * std)


def avg_closed(n: int, mu: float, sigma: float) -> Moments:
    return Moments(mu, sigma / math.sqrt(n))

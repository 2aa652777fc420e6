"""Normal pdf and cdf in plain ``math``, shared by the closed forms."""

import math

SQRT2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / SQRT_2PI


def cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / SQRT2)

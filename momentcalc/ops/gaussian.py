"""Normal pdf and cdf in plain ``math``, shared by the closed forms."""

import math

SQRT2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / SQRT_2PI


def cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / SQRT2)


def _pdf_at(z: float) -> float:
    return 0.0 if math.isinf(z) else pdf(z)


def mass(alpha: float, beta: float) -> float:
    """P(alpha < Z < beta), from the tail that keeps its digits."""
    if alpha >= 0.0:
        return 0.5 * (math.erfc(alpha / SQRT2) - math.erfc(beta / SQRT2))
    if beta <= 0.0:
        return 0.5 * (math.erfc(-beta / SQRT2) - math.erfc(-alpha / SQRT2))
    return 1.0 - 0.5 * math.erfc(beta / SQRT2) - 0.5 * math.erfc(-alpha / SQRT2)


def partial_moments(alpha: float, beta: float, kmax: int) -> list[float]:
    """E[Z^k; alpha < Z < beta] for k = 0..kmax, Z ~ N(0, 1); the bounds may be infinite.

    Integration by parts: M_k = (k - 1) M_(k-2) + alpha^(k-1) phi(alpha) - beta^(k-1) phi(beta).
    """

    def edge(z: float, k: int) -> float:
        return 0.0 if math.isinf(z) else z ** (k - 1) * pdf(z)

    m = [mass(alpha, beta), _pdf_at(alpha) - _pdf_at(beta)]
    for k in range(2, kmax + 1):
        m.append((k - 1) * m[k - 2] + edge(alpha, k) - edge(beta, k))
    return m[: kmax + 1]


def log_cdf(z: float) -> float:
    """log Phi(z), without underflow far in the lower tail (asymptotic Mills-ratio series there)."""
    if z > -30.0:
        return math.log(0.5 * math.erfc(-z / SQRT2))
    r = 1.0 / (z * z)
    return -0.5 * z * z - math.log(-z * SQRT_2PI) + math.log1p(r * (-1.0 + r * (3.0 + r * (-15.0 + 105.0 * r))))


def exp_partial(t: float, c: float, mu: float, sigma: float) -> float:
    """E[exp(t X); X < c] for X ~ N(mu, sigma^2) = exp(t mu + t^2 sigma^2 / 2) Phi((c - mu - t sigma^2) / sigma)."""
    return math.exp(t * mu + 0.5 * (t * sigma) ** 2 + log_cdf((c - mu - t * sigma * sigma) / sigma))

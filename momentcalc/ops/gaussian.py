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
    """E[exp(t X); X < c] for X ~ N(mu, sigma^2) = exp(t mu + t^2 sigma^2 / 2) Phi(w), w = (c - mu) / sigma - t sigma.

    For w < 0, Phi(w) = erfcx(-w / sqrt 2) exp(-w^2 / 2) / 2, and the exponents combine exactly into
    t c - (c - mu)^2 / (2 sigma^2): no large terms cancel when t sigma is large.
    """
    w = (c - mu) / sigma - t * sigma
    if w < 0.0:
        d = (c - mu) / sigma
        return math.exp(t * c - 0.5 * d * d) * 0.5 * erfcx(-w / SQRT2)
    return math.exp(t * mu + 0.5 * (t * sigma) ** 2 + log_cdf(w))


def _cf_terms(a: float) -> int:
    """Terms the continued fractions below need for full double precision (checked at a = 1, 2, 3, 5)."""
    return 160 if a >= 2.0 else 700


def mills_tail(a: float, k: int) -> list[float]:
    """[R, T_1, ..., T_k] for a >= 1: R(a) = Q(a) / phi(a) (the Mills ratio) = 1 / (a + T_1),
    T_j = j / (a + T_(j+1)), from its continued fraction evaluated backwards (all terms positive, no cancellation).

    With them the moments of the upper tail about its edge are products, J_j = int_0^inf s^j phi(a + s) ds
    = phi(a) R T_1 ... T_j, e.g. E[max(Z - a, 0)] = phi(a) R T_1 with no subtraction of nearly equal terms.
    """
    t = 0.0
    ts = []
    for j in range(_cf_terms(a), 0, -1):
        t = j / (a + t)
        if j <= k:
            ts.append(t)
    ts.reverse()
    return [1.0 / (a + ts[0] if ts else a + t)] + ts


def erfcx(x: float) -> float:
    """exp(x^2) erfc(x) for x >= 0, without overflow or lost digits for large x."""
    if x < 2.0:
        return math.exp(x * x) * math.erfc(x)
    return math.sqrt(2.0 / math.pi) * mills_tail(SQRT2 * x, 0)[0]


def tail_moments(a: float, k: int) -> list[float]:
    """J_j = int_0^inf s^j phi(a + s) ds for j = 0..k: moments of the tail beyond a, about its edge.

    For a >= 1 from the continued fraction (mills_tail); otherwise by the recursion
    J_(j+1) = j J_(j-1) - a J_j, which loses at most half a digit there.
    """
    if a >= 1.0:
        r = mills_tail(a, k)
        out = [pdf(a) * r[0]]
        for t in r[1:]:
            out.append(out[-1] * t)
        return out
    q = 0.5 * math.erfc(a / SQRT2)
    out = [q, pdf(a) - a * q]
    for j in range(1, k):
        out.append(j * out[j - 1] - a * out[j])
    return out[: k + 1]


def exp_times(x: float, factor: float) -> float:
    """exp(x) * factor where exp(x) alone may underflow but the product need not: as a product while exp(x) is a
    normal double (one rounding more, no rounded logarithm), else exp(x + log|factor|)."""
    if factor == 0.0:
        return 0.0
    if x > -700.0:
        return math.exp(x) * factor
    return math.copysign(math.exp(x + math.log(abs(factor))), factor)

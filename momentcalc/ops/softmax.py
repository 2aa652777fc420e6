"""softmax(n, t=1): one output p_1 = exp(x_1 / t) / sum_j exp(x_j / t) of softmax over n iid N(mu, sigma^2) logits.

Its mean is 1/n exactly, for every mu, sigma and t (the n outputs are exchangeable and sum to 1); mu cancels
altogether. The Jacobian is (diag(p) - p p^T) / t, so the squared gradient reaching logit 1 from unit-variance
output gradients is sum_j J_j1^2 = p_1^2 ((1 - p_1)^2 + |p|^2 - p_1^2) / t^2. E[p_1^2] and the backward constant
have no closed form (the law of a sum of lognormals). Monte Carlo samples the n logits; quadrature conditions
on one logit: with a = x_1 / t ~ N(0, s^2) (mu cancels), s = sigma / t, D = e^a + S and S the sum of the other
exponentials, independent of a, 1 / D^k = (1 / (k-1)!) int_0^inf u^(k-1) e^(-u D) du gives
E[p_1^k] = (1 / (k-1)!) int u^(k-1) G_k(u) L(u)^(n-1) du and E[p_1^2 p_2^2] = (1/3!) int u^3 G_2(u)^2 L(u)^(n-2) du,
with G_k(u) = E[e^(k a) e^(-u e^a)] and L = G_0 one-dimensional Gaussian integrals (L^(n-1) as
exp((n-1) log1p(E[expm1(-u e^a)])), exact for n up to 10^6). The backward constant is
(E[p_1^2] - 2 E[p_1^3] + E[p_1^4] + (n - 1) E[p_1^2 p_2^2]) / t^2. The mean by the same integral (k = 1) checks it
against 1/n.
"""

from __future__ import annotations

from .._lazy import lazy_module
from ..catalog import JOINT, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES

np = lazy_module("numpy")  # only where the op is sampled: `momentcalc list` and --help load no numpy


def _sample(op, x: np.ndarray):
    z = x / op.get("t")
    z -= z.max(axis=1, keepdims=True)  # no overflow: the largest exponent is 0
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    p1, rest = p[:, 0], p[:, 1:]
    # (1 - p_1)^2 + |p|^2 - p_1^2 from the other outputs' sums: neither difference cancels where p_1 is near 1
    grad = p1 * p1 * (rest.sum(axis=1) ** 2 + (rest * rest).sum(axis=1)) / op.get("t") ** 2
    return p1, grad


# Where the block's inputs are this small (|x| / t <= sqrt(sum x^2) / t <= SHIFTLESS), exp(x / t) neither overflows
# nor underflows, nor does its square: the rows need no shift by their largest logit (softmax does not change with
# one), and the block's exponentials are one vector loop.
SHIFTLESS = 300.0


def _rows(x, count, n, inv_t, b, y, g, exp):
    """_sample's compiled form (catalog.OpInfo.rows): the exponentials (each row shifted by its largest logit unless
    the block's inputs are small, SHIFTLESS), then the sums of the other exponentials and of their squares, 1 - p_1
    and |p|^2 - p_1^2 without a difference. exp: the kernels' exp (x <= 709), which vectorizes (math.exp is a call
    per value). Overwrites x with the exponentials."""
    total = count * n
    ss = 0.0
    for j in range(total):
        ss += x[j] * x[j]
    if ss * (inv_t * inv_t) <= SHIFTLESS * SHIFTLESS:
        for j in range(total):
            x[j] = exp(x[j] * inv_t)
    else:
        for r in range(count):
            base = r * n
            top = x[base]
            for j in range(base + 1, base + n):
                top = x[j] if x[j] > top else top
            for j in range(base, base + n):
                x[j] = exp((x[j] - top) * inv_t)
    for r in range(count):
        base = r * n
        rest = rest2 = 0.0
        for j in range(base + 1, base + n):
            rest += x[j]
            rest2 += x[j] * x[j]
        s = x[base] + rest
        p1 = x[base] / s
        y[r] = p1
        g[r] = p1 * p1 * ((rest * rest + rest2) / (s * s)) * (inv_t * inv_t)


# No ball enclosure: E[p_1^2] would be an Arb integral over u of Gaussian integrals raised to the power n - 1,
# each evaluated on complex balls of u, with proven tail bounds on both; not written (quadrature bounds its error).
CERTIFIED_DECLINES = (
    "E[p^2] has no closed form and its nested integral (in u, of Gaussian integrals to the power n - 1) has no "
    "ball enclosure here; quadrature gives it with an error bound"
)
QUAD_SPREAD_MAX = 4.0  # s = sigma / t beyond which quadrature declines (the lognormals' tails need wider ranges)
_INNER_REL = 1e-12  # the inner integrals' relative tolerance; their share of the error is bounded by 1e-9 relative


def _g(k: float, u: float, s: float, expm1: bool = False) -> float:
    """E[e^(k a) e^(-u e^a)] for a ~ N(0, s^2), or E[expm1(-u e^a)] with expm1=True, split at the integrand's peak."""
    import math

    from scipy import integrate, special

    def lambert_peak(k):  # the peak of k a - u e^a - a^2 / (2 s^2): a = k s^2 - W(u s^2 e^(k s^2))
        return k * s * s - special.lambertw(u * s * s * math.exp(min(k * s * s, 700.0))).real

    if expm1:
        # expm1(-u e^a) ~ -u e^a where u e^a is small: the integrand then peaks where k = 1's does, far below
        # -log(u) when u is small and s narrow; one split at -log(u) alone let quad miss that peak (and give 0)
        cuts = sorted({lambert_peak(1), -math.log(u)})

        def f(a):
            return math.expm1(-u * math.exp(min(a, 700.0))) * math.exp(-a * a / (2 * s * s))
    else:
        cuts = [lambert_peak(k)]

        def f(a):
            return math.exp(k * a - u * math.exp(min(a, 700.0)) - a * a / (2 * s * s))

    ends = [-math.inf, *cuts, math.inf]
    parts = [
        integrate.quad(f, lo, hi, epsabs=0, epsrel=_INNER_REL, limit=200)[0] for lo, hi in zip(ends[:-1], ends[1:])
    ]
    return sum(parts) / (s * math.sqrt(2 * math.pi))


def _quad_law(op, mu, sigma):
    """(mean, std, their errors, backward constant, its error) by conditioning on one logit; for s > 4 the reason
    it declines."""
    import math

    from scipy import integrate

    n, t = op.get("n"), op.get("t")
    s = sigma / t
    if s > QUAD_SPREAD_MAX:
        return (
            f"sigma / t = {s:g} is above {QUAD_SPREAD_MAX:g}: E[e^(k x / t)] = e^(k^2 s^2 / 2) then grows so fast that "
            f"the outer integral's fixed range in log u does not bound its tails; use montecarlo"
        )

    def log_l(u):
        l1 = _g(0, u, s, expm1=True)
        if l1 > -0.5:
            return math.log1p(l1)
        direct = _g(0, u, s)
        return math.log(direct) if direct > 0 else -math.inf

    def integrand(v, k, others):
        u = math.exp(v)
        log_rest = others * log_l(u) if others else 0.0  # n = 2: no other logits (0 * -inf is nan)
        if log_rest == -math.inf:
            return 0.0
        if k == "pair":
            g = _g(2, u, s)
            return u**4 / 6 * g * g * math.exp(log_rest)
        return u**k / math.factorial(k - 1) * _g(k, u, s) * math.exp(log_rest)

    # u of order 1 / S, S ~ (n - 1) e^(s^2 / 2); beyond 40 in log u either side the integrands are below e^-80
    center = -math.log(n) - s * s / 2

    def moment(k, others):
        parts = [
            integrate.quad(integrand, lo, hi, args=(k, others), epsabs=0, epsrel=1e-10, limit=200)
            for lo, hi in ((center - 40, center), (center, center + 40 + 10 * s))
        ]
        value = sum(p[0] for p in parts)
        return value, sum(p[1] for p in parts) + 1e-9 * abs(value)

    mean, mean_err = moment(1, n - 1)
    p2, p2_err = moment(2, n - 1)
    p3, p3_err = moment(3, n - 1)
    p4, p4_err = moment(4, n - 1)
    pair, pair_err = moment("pair", n - 2) if n > 1 else (0.0, 0.0)
    var = p2 - 1.0 / (n * n)  # the mean is 1/n exactly
    std = math.sqrt(max(var, 0.0))
    std_err = p2_err / (2 * std) if std > 0 else math.sqrt(p2_err)
    grad = (p2 - 2 * p3 + p4 + (n - 1) * pair) / (t * t)
    grad_err = (p2_err + 2 * p3_err + p4_err + (n - 1) * pair_err) / (t * t)
    return mean, std, mean_err, std_err, grad, grad_err


def _trusted_samples(op, mu, sigma):
    """The std comes from the sample mean of p_1^2, of relative variance (E[p_1^4] / E[p_1^2]^2 - 1) / N, with a
    skewed law: a sample that misses the rare large values gives a std and an SE both too small. For large n the
    denominator concentrates and p_1 is nearly lognormal with log-sd s = sigma / t, so the ratio is about e^(4 s^2);
    it is at most n^2 for any n (p_1 <= 1 and E[p_1^2] >= 1/n^2). At N(0, 1), n = 256, 100 seeds: s = 1.5 with
    N = 4096 (e^(4 s^2) = 8103) put 4 stds beyond 4.5 SEs of the quadrature value; s = 1 with N = 4096 (e^4 = 55)
    none, its worst at -4.36. Trusted from N >= 256 min(e^(4 s^2), n^2): a relative SE of E[p_1^2] of 1/16 or less."""
    import math

    s = sigma / op.get("t")
    least = math.ceil(256 * min(math.exp(min(4 * s * s, 700.0)), float(op.get("n")) ** 2))
    why = f"the outputs are heavy-tailed at sigma / t = {s:g} (nearly lognormal: a small sample misses their rare"
    return least, why + " large values, and its std and SE are both too small)"


register(
    OpInfo(
        "softmax",
        JOINT,
        "one output of softmax over n iid logits divided by the temperature t",
        (
            Param("n", int, None, accepted="the number of logits", bounds=PARAM_RANGES["count"]),
            Param("t", float, 1.0, lambda v: 1e-3 <= v <= 1e3, "the temperature, in [0.001, 1000]"),
        ),
        closed=lambda op, mu, sigma: Moments(1.0 / op.get("n"), None),
        size=lambda op: op.get("n"),
        sample=_sample,
        rows=_rows,
        rows_args=lambda op: (1.0 / op.get("t"), 0.0),
        quad_law=_quad_law,
        trusted_samples=_trusted_samples,
        declined=(
            ("certified", CERTIFIED_DECLINES),
            ("qmc", "quasi-Monte Carlo does not sample ops of several inputs (n logits); use montecarlo"),
        ),
    )
)

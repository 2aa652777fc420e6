"""The mean and std of the max of n iid standard normals, by one vectorised Gauss-Kronrod pass.

maxpool(n) of a normal input (and minpool, and a max taken through a monotone chain that leaves no stage
behind) is Y = mu + sigma B, B the max of n standard normals, with density p(b) = n phi(b) Phi(b)^(n-1).
tracked.py's general path hands QUADPACK a Python callable: three rough passes and two resolutions, about
3,200 scalar evaluations (4-7 ms). Here p is evaluated with numpy on all nodes of the 21-point Kronrod rule of
every piece at once; pieces whose 10-point Gauss and 21-point Kronrod results differ by more than rounding are
halved and evaluated again (a round or two), and the two moments are sums over the same nodes.

The density is evaluated as q = p times a constant (the exponent without log n - log sqrt(2 pi), whose
rounding moved p by up to 10 eps the same way at every node), and each moment is a ratio to q's mass, so that
the factor cancels. The error bound of each integral adds
* the quadrature error: per piece |K21 - G10|. Kronrod's rule is exact to degree 31, Gauss's to 19, and p is
  entire: where G10 has converged (the pieces are halved until it has), K21's error is far below their
  difference;
* rounding: eps times the integral of r(b) |h(b)| q(b), r(b) a bound on the relative error of h q computed at
  b (the exponent's terms, log Phi's error times n - 1, exp, h, the sum), plus the integral of |b| |(h q)'|:
  each node b is rounded relative to b. The pieces' edges lie on a dyadic grid, so that they meet exactly;
* the tails beyond [lo, hi], where p < e^-80 of its scale, bounded in closed form (Mills' ratio).
tests/test_max_normal.py holds the values and bounds to mpmath, and a rule starved of pieces to its bound.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

_EPS = 2.0**-52
_TAIL_LOG = 80.0  # [lo, hi] leaves out tails of relative size e^-80
_PIECES = 16  # to start with; halved where G10 has not converged
_ROUNDS = 12  # halvings at most; what is left then says so in its bound
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# The 21-point Gauss-Kronrod rule on [-1, 1] (QUADPACK's qk21, Piessens et al. 1983): nodes >= 0, Kronrod
# weights, and the 10-point Gauss weights at the odd positions (0 elsewhere).
_X = (
    0.0,
    0.148874338981631210884826001129720,
    0.294392862701460198131126603103866,
    0.433395394129247190799265943165784,
    0.562757134668604683339000099272694,
    0.679409568299024406234327365114874,
    0.780817726586416897063717578345042,
    0.865063366688984510732096688423493,
    0.930157491355708226001207180059508,
    0.973906528517171720077964012084452,
    0.995657163025808080735527280689003,
)
_WK = (
    0.149445554002916905664936468389821,
    0.147739104901338491374841515972068,
    0.142775938577060080797094273138717,
    0.134709217311473325928054001771707,
    0.123491976262065851077958109831074,
    0.109387158802297641899210590325805,
    0.093125454583697605535065465083366,
    0.075039674810919952767043140916190,
    0.054755896574351996031381300244580,
    0.032558162307964727478818972459390,
    0.011694638867371874278064396062192,
)
_WG = (0.0, 0.295524224714752870173892994651338, 0.0, 0.269266719309996355091226921569469, 0.0)
_WG += (0.219086362515982043995534934228163, 0.0, 0.149451349150580593145776339657697, 0.0)
_WG += (0.066671344308688137593568809893332, 0.0)


def _symmetric(half: tuple[float, ...], sign: float) -> np.ndarray:
    return np.array([sign * v for v in half[:0:-1]] + list(half))


NODES = _symmetric(_X, -1.0)  # 21 nodes on [-1, 1], ascending
KRONROD = _symmetric(_WK, 1.0)
GAUSS = _symmetric(_WG, 1.0)


def std_moments(mu: float, sigma: float, n: int) -> tuple[float, float, float, float]:
    """(mean, std, mean error bound, std error bound) of mu + sigma B, B the max of n >= 2 standard normals."""
    m, s, m_err, s_err = moments(n)
    mean = mu + sigma * m
    # the product and the sum each round by eps of their size
    mean_err = abs(sigma) * m_err + 2.0 * _EPS * (abs(mu) + abs(sigma * m))
    std = abs(sigma) * s
    return mean, std, mean_err, abs(sigma) * s_err + _EPS * std


def moments(n: int) -> tuple[float, float, float, float]:
    """(mean, std, mean error bound, std error bound) of the max of n >= 2 iid standard normals."""
    lo, hi, c = _range(n)
    b, half, parts = _nodes(n, lo, hi, c)
    args = (b, half) + tuple(parts)
    # q is p up to a constant factor; every moment is a ratio to its mass, in which the factor cancels.
    mass, mass_err = _integral(np.ones_like(b), np.zeros_like(b), *args)
    e0 = mass_err / mass + _tail(n, lo, hi, 0.0, 0)  # relative to the mass, as every error below
    if not e0 < 1.0:  # pragma: no cover (a rule starved past the point where its mass means anything)
        return math.nan, math.nan, math.inf, math.inf
    i1, e1 = _integral(b - c, np.ones_like(b), *args)
    j1 = i1 / mass
    mean = c + j1
    # (I + a) / (1 + d) - I = (a - I d) / (1 + d); the division and the sum round by eps
    mean_err = (e1 / mass + _tail(n, lo, hi, abs(c), 1) + abs(j1) * e0) / (1.0 - e0) + _EPS * (abs(j1) + abs(mean))
    u = b - mean
    i2, e2 = _integral(u * u, 2.0 * u, *args)
    j2 = i2 / mass
    # the mean's error moves the central moment about it by its square
    var_err = (e2 / mass + _tail(n, lo, hi, abs(mean), 2) + j2 * e0) / (1.0 - e0) + _EPS * j2 + mean_err**2
    std = math.sqrt(max(j2, 0.0))
    return mean, std, mean_err, _sqrt_err(std, var_err) + _EPS * std


def _range(n: int) -> tuple[float, float, float]:
    """[lo, hi] with p's tails beyond it below e^-80 (n Phi(lo)^(n-1) = n phi(hi) sqrt(2 pi) = e^-80), and the
    median c, about which the mean is integrated (so that |c| costs no digits)."""
    t = _TAIL_LOG + math.log(n)
    lo = float(special.ndtri_exp(-t / (n - 1)))
    hi = math.sqrt(2.0 * t)
    c = float(special.ndtri_exp(-math.log(2.0) / n))
    return lo, hi, c


def _nodes(n: int, lo: float, hi: float, c: float):
    """The Kronrod nodes of every piece, as (P, 21) arrays: b, the half width of its piece, and _density's three.
    Pieces are halved until G10 agrees with K21 to rounding on q, (b - c) q and (b - c)^2 q, whose combinations are
    every integrand here."""
    step = 2.0 ** math.floor(math.log2((hi - lo) / _PIECES))  # a dyadic grid: edges and centres are exact
    first = math.floor(lo / step)
    starts = (first + np.arange(math.ceil(hi / step) - first)) * step
    widths = np.full(starts.shape, step)
    done: list[tuple[np.ndarray, ...]] = []
    for last in range(_ROUNDS + 1):
        half = 0.5 * widths[:, None]
        b = (starts[:, None] + half) + half * NODES
        parts = _density(n, b, c)
        ok = np.ones(len(starts), dtype=bool) if last == _ROUNDS else _converged(b - c, half, parts[0])
        done.append((b[ok], half[ok]) + tuple(v[ok] for v in parts))
        if ok.all():
            break
        widths = 0.5 * widths[~ok]
        starts = np.concatenate([starts[~ok], starts[~ok] + widths])
        widths = np.concatenate([widths, widths])
    b, half, *parts = (np.concatenate(col) for col in zip(*done))
    return b, half, parts


def _converged(u: np.ndarray, half: np.ndarray, p: np.ndarray) -> np.ndarray:
    ok = np.ones(len(u), dtype=bool)
    for f in (p, u * p, u * u * p):
        diff = np.abs((f @ KRONROD) - (f @ GAUSS)) * half[:, 0]
        size = (np.abs(f) @ KRONROD) * half[:, 0]
        ok &= diff <= np.maximum(_FLOOR * size, _ABS_TOL)
    return ok


_FLOOR = 32.0 * _EPS  # below this |K21 - G10| is the rounding of the sums themselves
_ABS_TOL = 2.0**-60  # the integrals here are 0.01 to 10: far below their rounding


def _density(n: int, b: np.ndarray, c: float):
    """q(b) = p(b) sqrt(2 pi) exp(c^2 / 2) / n, d log q / db, and a bound on q's relative rounding (over eps).

    Leaving out the constant log n - log sqrt(2 pi) and writing b^2 - c^2 as (b - c)(b + c) keeps the exponent's
    terms small where q is not: at n = 10^6 each was about 13 near the mode."""
    log_cdf = special.log_ndtr(b)
    log_q = (n - 1) * log_cdf - 0.5 * (b - c) * (b + c)
    q = np.exp(log_q)
    # phi / Phi, with log Phi already known: d log p / db = -b + (n - 1) phi / Phi
    d_log_q = (n - 1) * np.exp(-0.5 * b * b - _LOG_SQRT_2PI - log_cdf) - b
    # log_ndtr's relative error: 3 eps below 0, b^2 eps above (it rounds b / sqrt 2 before erfc: tests); then the
    # product by n - 1, (b - c)(b + c) to 3 eps, the last sum (|log q|), exp (4). Twice that, for margin.
    log_cdf_rel = 8.0 + np.where(b > 0.0, b * b, 0.0)
    rel = 2.0 * (1.5 * np.abs((b - c) * (b + c)) + log_cdf_rel * (n - 1) * np.abs(log_cdf) + np.abs(log_q) + 4.0)
    return q, d_log_q, rel


def _integral(h, dh, b, half, p, d_log_p, rel) -> tuple[float, float]:
    """(K21 sum of h p over the pieces, its error bound without the tails); p here is _density's q."""
    f = h * p
    per_piece = (f @ KRONROD) * half[:, 0]
    quad_err = np.abs(per_piece - (f @ GAUSS) * half[:, 0]).sum()
    # Rounding: h p at each node (rel + 4 for h, + 32 for summing a thousand terms), and the node itself,
    # rounded by eps |b|, which moves h p by eps |b| |(h p)'|; integrated with the same rule, doubled.
    slope = np.abs(dh * p + f * d_log_p)
    rounding = ((np.abs(f) * (rel + 36.0) + np.abs(b) * slope) @ KRONROD) @ half[:, 0]
    return float(per_piece.sum()), float(quad_err + 2.0 * _EPS * rounding)


def _tail(n: int, lo: float, hi: float, shift: float, power: int) -> float:
    """A bound on int |b - s|^power p(b) db beyond [lo, hi], |s| <= shift < hi, power 0, 1 or 2.

    Below lo, p <= n Phi(lo)^(n-1) phi = e^-80 phi, and int |b - s|^k phi <= E_phi (|b| + shift)^k. Above hi,
    p <= n phi, and int_hi^inf (b + shift)^k phi follows from int_hi^inf b phi = phi(hi) and Mills' ratio
    Q(hi) <= phi(hi) / hi.
    """
    below = math.exp(-_TAIL_LOG) * (1.0 + shift) ** power
    n_phi = n * math.exp(-0.5 * hi * hi - _LOG_SQRT_2PI)
    above = n_phi * (1.0 / hi, 1.0 + shift / hi, hi + 1.0 / hi + 2.0 * shift + shift * shift / hi)[power]
    return 2.0 * (below + above)  # margin for the rounding of lo and hi


def _sqrt_err(root: float, e: float) -> float:
    """|sqrt(v + e) - sqrt(v)| <= min(e / (2 sqrt v), sqrt e) for root = sqrt(v)."""
    return min(e / (2.0 * root), math.sqrt(e)) if root > 0.0 else math.sqrt(e)

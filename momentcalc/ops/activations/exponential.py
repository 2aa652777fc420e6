"""The exponential-linear activations elu, celu, selu and softplus: their closed forms (one family in lam, alpha,
t), ball functions and bounds on their derivatives in their parameters."""

from __future__ import annotations

import math

from ...result import Moments
from .. import fperr, gaussian, piecewise
from ..piecewise import INF
from .shared import _BALL_1, _BALL_X

# Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14 (to the digits printed there).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


def elu(x, a, b):
    return x if x > 0.0 else a * math.expm1(x)


def elu_grad(x, a, b):
    return 1.0 if x > 0.0 else a * math.exp(x)


def celu(x, a, b):
    return x if x > 0.0 else a * math.expm1(x / a)


def celu_grad(x, a, b):
    return 1.0 if x > 0.0 else math.exp(x / a)


def selu(x, a, b):
    # a = alpha, b = scale (lambda); b * a * ... is the same double product as the paper's constants inlined.
    if x > 0.0:
        return b * x
    return b * a * math.expm1(x)


def selu_grad(x, a, b):
    if x > 0.0:
        return b
    return b * a * math.exp(x)


def _exp_family_closed(lam, alpha, t, mu, sigma):
    """Moments of lam * x (x > 0), lam * alpha * (exp(t x) - 1) (x <= 0): elu, celu, selu.

    E[exp(t X); X < 0] = exp(t mu + t^2 sigma^2 / 2) Phi(-(mu + t sigma^2) / sigma) (complete the square).
    Where all the mass lies on one side of the kink (40 sigma away) the moments are those of that side alone,
    exactly: lam X, or k expm1(t X) with variance k^2 exp(2 t mu + t^2 sigma^2) expm1(t^2 sigma^2). Elsewhere
    the terms are summed and the result declined (None) when they cancel by more than
    piecewise.CANCELLATION_LIMIT (e.g. at sigma << 1 near the kink).
    """
    k = lam * alpha
    if mu > 40.0 * sigma:  # the other side weighs phi(40) ~ 1e-350 relative: only the products' rounding
        return Moments(lam * mu, lam * sigma, fperr.bound(lam * mu, 2.0), fperr.bound(lam * sigma, 2.0))
    if mu + 2.0 * t * sigma * sigma < -40.0 * sigma:
        return _exp_side(k, t, mu, sigma)
    if abs(t) * sigma <= 1e-3:
        # Near the kink at small t sigma, exp(t x) - 1 by its Taylor polynomial (degree 10: the remainder is below
        # 1e-18 of the value for |t x| <= 0.08, i.e. within 40 sigma of a mu that is itself within 40 sigma of 0),
        # and the moments of the piecewise polynomial; the terms e1 - P(X < 0) would cancel instead.
        series = (0.0,) + tuple(k * t**j / math.factorial(j) for j in range(1, 11))
        found = piecewise.moments(((-INF, 0.0, series), (0.0, INF, (0.0, lam))), mu, sigma)
        if found is None:
            return None
        mean, std, mean_err, std_err = found
        remainder = 1e-18 * (abs(mean) + std)
        return Moments(mean, std, mean_err + remainder, std_err + remainder)
    below = gaussian.mass(-INF, -mu / sigma)
    e1 = gaussian.exp_partial(t, 0.0, mu, sigma)
    e2 = gaussian.exp_partial(2.0 * t, 0.0, mu, sigma)
    pos, pos_size, _ = piecewise.piece_moment((0.0, lam), 0.0, INF, mu, sigma, 0.0, 1)
    # u = mean + k = pos + k (e1 + P(X > 0)) directly: k + mean would cancel where mean ~ -k (mu << 0).
    u = pos + k * (e1 + gaussian.mass(-mu / sigma, INF))
    mean = u - k
    mean_size = pos_size + abs(k) * (e1 + below)
    var, var_size, _ = piecewise.piece_moment((0.0, lam), 0.0, INF, mu, sigma, mean, 2)
    var += k * k * e2 - 2.0 * k * u * e1 + u * u * below
    var_size += k * k * e2 + 2.0 * abs(k * u) * e1 + u * u * below
    var = max(var, 0.0)
    std = math.sqrt(var)
    limit = piecewise.CANCELLATION_LIMIT
    if var_size > limit * var or mean_size > limit * (abs(mean) + std):
        return None
    e = _exp_exponent(t, mu, sigma)
    mean_err = fperr.bound(mean_size, 32.0, e)
    var_err = fperr.bound(var_size, 32.0, _exp_exponent(2.0 * t, mu, sigma)) + mean_err * mean_err
    return Moments(mean, std, mean_err, fperr.std_bound(std, var_err))


def _exp_exponent(t, mu, sigma):
    """The largest exponent whose rounding reaches E[exp(t X); X < 0] or P(X < 0) (fperr.py): d^2 / 2 of the kink's
    pdf and erfc (d = mu / sigma), t mu + (t sigma)^2 / 2 and w^2 / 2 of gaussian.exp_partial."""
    d = abs(mu) / sigma
    w = d + abs(t) * sigma
    return 0.5 * d * d + abs(t * mu) + (t * sigma) ** 2 + 0.5 * w * w


def _exp_side(k, t, mu, sigma):
    """All the mass on the exponential side (40 sigma and more): k expm1(t X) exactly, mean k expm1(x) and std
    |k| exp(x) sqrt(expm1((t sigma)^2)), x = t mu + (t sigma)^2 / 2. x carries a rounding error of up to
    3 U (|t mu| + (t sigma)^2), which expm1(x) turns into a relative error of that times e^x / |expm1(x)|."""
    ts = t * sigma
    x = t * mu + 0.5 * ts * ts
    mean = k * math.expm1(x)
    std = abs(k) * math.exp(x) * math.sqrt(math.expm1(ts * ts))
    spread = abs(t * mu) + ts * ts
    gain = math.exp(x) / abs(math.expm1(x)) if x != 0.0 else 1.0
    mean_err = fperr.bound(mean, 16.0, spread * max(gain, 1.0))
    return Moments(mean, std, mean_err, fperr.bound(std, 16.0, spread))


def _exp_family_grad(lam, alpha, t, mu, sigma):
    # f' = lam (x > 0), lam alpha t exp(t x) (x < 0): a sum of positive terms.
    above = gaussian.mass(-mu / sigma, INF)
    value = lam * lam * (above + (alpha * t) ** 2 * gaussian.exp_partial(2.0 * t, 0.0, mu, sigma))
    return value, fperr.bound(value, 32.0, _exp_exponent(2.0 * t, mu, sigma))


def softplus(x, a, b):
    z = a * x
    tail = math.log1p(math.exp(-abs(z)))
    pos = (z + tail) / a
    neg = tail / a
    return pos if z > 0.0 else neg


def softplus_grad(x, a, b):
    z = a * x
    e = math.exp(-abs(z))
    pos = 1.0 / (1.0 + e)
    neg = e / (1.0 + e)
    return pos if z >= 0.0 else neg


def _softplus_ball(x, a, b, lib):
    return lib.log1p(lib.exp(a * x)) / a


def _selu_constants(a, b, lib):
    """(scale, alpha) as balls: the paper's 32 digits for the default parameters (so certified digits of `selu`
    stay those of the paper's constants), the exact doubles otherwise; balls (the unknowns of an interval Newton) as
    they are, even where one equals a default's double."""
    if isinstance(a, float) and isinstance(b, float) and a == SELU_ALPHA and b == SELU_LAMBDA:
        return lib.num("1.0507009873554804934193349852946"), lib.num("1.6732632423543772848170429916717")
    return lib.num(b), lib.num(a)


_ELU_BALL = (
    (lambda x, a, b, lib: a * lib.expm1(x), lambda x, a, b, lib: a * lib.exp(x)),
    (_BALL_X, _BALL_1),
)
_CELU_BALL = (
    (lambda x, a, b, lib: a * lib.expm1(x / a), lambda x, a, b, lib: lib.exp(x / a)),
    (_BALL_X, _BALL_1),
)


def _selu_below(x, a, b, lib):
    lam, alpha = _selu_constants(a, b, lib)
    return lam * alpha * lib.expm1(x)


def _selu_below_grad(x, a, b, lib):
    lam, alpha = _selu_constants(a, b, lib)
    return lam * alpha * lib.exp(x)


_SELU_BALL = (
    (_selu_below, _selu_below_grad),
    (
        lambda x, a, b, lib: _selu_constants(a, b, lib)[0] * x,
        lambda x, a, b, lib: _selu_constants(a, b, lib)[0] + 0 * x,
    ),
)


# |f| <= scale alpha + scale |x|, |f'| <= scale max(alpha, 1); 1.001 covers the paper's digits beyond the doubles.
_SELU_GROWTH = lambda a, b: (b * a * 1.001, b * 1.001, b * max(a, 1.0) * 1.001)  # noqa: E731


# Bounds on |df/dp| and |df'/dp| (OpInfo.param_growth), each derived on the op's pieces, with 0.1% room:
# selu: d/dalpha = scale (e^x - 1), scale e^x (x < 0): <= scale; d/dscale = x or alpha (e^x - 1), 1 or alpha e^x.
_SELU_PARAM_GROWTH = lambda a, b: ((b * 1.001, 0.0, 0.0), (max(a, 1.0) * 1.001, 1.001, 0.0))  # noqa: E731
# celu, t = x / alpha <= 0: d/dalpha = e^t - 1 - t e^t in (-1, 1/e]; d/dalpha f' = -(t / alpha) e^t in [0, 1/(e alpha)].
_CELU_PARAM_GROWTH = lambda a, b: ((max(1.0, 0.3679 / a) * 1.001, 0.0, 0.0), (0.0, 0.0, 0.0))  # noqa: E731
# softplus, L(z) = log(1 + e^z) <= log 2 + |z|: d/dbeta = (-L(beta x) + beta x sigmoid(beta x)) / beta^2, at most
# 0.7 / beta^2 + 2 |x| / beta; d/dbeta f' = x sigmoid'(beta x), at most |x| / 4.
_SOFTPLUS_PARAM_GROWTH = lambda a, b: ((0.7 / (a * a) * 1.001, max(2.0 / a, 0.25) * 1.001, 0.0), (0.0, 0.0, 0.0))  # noqa: E731

"""mpmath references for the activations: f, f' and the moments of f(X), X ~ N(mu, sigma^2), at 30 digits.

Written from the textbook definitions, independently of momentcalc.ops.activations, in forms that keep their
digits at any x (log1p, expm1, sigmoid(-x) for 1 - sigmoid(x)), so that they are references in the far tails too.
"""

from functools import cache

import mpmath as mp

MP_DPS = 30
SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")
SELU_LAMBDA = mp.mpf("1.0507009873554804934193349852946")


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def _sp(x):
    # log1p: log(1 + exp(x)) would round 1 + exp(x) to 1 at the working precision for x < -46 (30 digits)
    return mp.log1p(mp.exp(x))


def _gelu_tanh_u(x):
    return mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)


def quad(f, cuts):
    """The integral of f over the pieces between cuts, each by mpmath raising the degree until successive ones agree
    to the working precision: Gauss-Legendre on finite pieces, where the integrands are smooth (split at the kinks)
    and it takes under half tanh-sinh's time for the same digits; tanh-sinh on an infinite end, where mapped to a
    finite one Gauss-Legendre runs to its last degree (seconds at mu - 12 sigma = -12000)."""
    return mp.fsum(
        mp.quad(f, [a, b], method="tanh-sinh" if mp.isinf(a) or mp.isinf(b) else "gauss-legendre")
        for a, b in zip(cuts[:-1], cuts[1:])
    )


# name -> (f, f', kinks); parameters as in the spec given to make()
def make(name, **p):
    alpha = mp.mpf(p.get("alpha", 1))
    slope = mp.mpf(p.get("slope", "0.01"))
    beta = mp.mpf(p.get("beta", 1))
    lo, hi = mp.mpf(p.get("min_val", -1)), mp.mpf(p.get("max_val", 1))
    table = {
        "relu": (lambda x: max(x, 0), lambda x: 1 if x > 0 else 0, (0,)),
        "sigmoid": (_sig, lambda x: _sig(x) * _sig(-x), ()),
        "tanh": (mp.tanh, lambda x: mp.sech(x) ** 2, ()),
        "gelu": (lambda x: x * mp.ncdf(x), lambda x: mp.ncdf(x) + x * mp.npdf(x), ()),
        "gelu_tanh": (
            lambda x: x * _sig(2 * _gelu_tanh_u(x)),  # (1 + tanh(u)) / 2 = sigmoid(2u), without cancellation
            lambda x: (
                _sig(2 * _gelu_tanh_u(x))
                + x / 2 * mp.sech(_gelu_tanh_u(x)) ** 2 * mp.sqrt(2 / mp.pi) * (1 + 3 * mp.mpf("0.044715") * x**2)
            ),
            (),
        ),
        "silu": (lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * _sig(-x)), ()),
        "swish": (lambda x: x * _sig(beta * x), lambda x: _sig(beta * x) * (1 + beta * x * _sig(-beta * x)), ()),
        "elu": (lambda x: x if x > 0 else alpha * mp.expm1(x), lambda x: 1 if x > 0 else alpha * mp.exp(x), (0,)),
        "celu": (
            lambda x: x if x > 0 else alpha * mp.expm1(x / alpha),
            lambda x: 1 if x > 0 else mp.exp(x / alpha),
            (0,),
        ),
        "selu": (
            lambda x: SELU_LAMBDA * (x if x > 0 else SELU_ALPHA * mp.expm1(x)),
            lambda x: SELU_LAMBDA * (1 if x > 0 else SELU_ALPHA * mp.exp(x)),
            (0,),
        ),
        "softplus": (lambda x: _sp(beta * x) / beta, lambda x: _sig(beta * x), ()),
        "leaky_relu": (lambda x: x if x > 0 else slope * x, lambda x: 1 if x > 0 else slope, (0,)),
        "mish": (lambda x: x * mp.tanh(_sp(x)), lambda x: mp.tanh(_sp(x)) + x * mp.sech(_sp(x)) ** 2 * _sig(x), ()),
        "hardswish": (
            lambda x: 0 if x <= -3 else (x if x >= 3 else x * (x + 3) / 6),
            lambda x: 0 if x <= -3 else (1 if x >= 3 else (2 * x + 3) / 6),
            (-3, 3),
        ),
        "hardsigmoid": (lambda x: min(max(x + 3, 0), 6) / 6, lambda x: mp.mpf(1) / 6 if -3 < x < 3 else 0, (-3, 3)),
        "hardtanh": (lambda x: min(max(x, lo), hi), lambda x: 1 if lo < x < hi else 0, (lo, hi)),
        "relu6": (lambda x: min(max(x, 0), 6), lambda x: 1 if 0 < x < 6 else 0, (0, 6)),
        "softsign": (lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2, (0,)),
        "erf": (mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x), ()),
        "abs": (abs, lambda x: 1 if x > 0 else -1, (0,)),
        "log_sigmoid": (lambda x: -_sp(-x), lambda x: _sig(-x), ()),
        "identity": (lambda x: x, lambda x: 1, ()),
    }
    return table[name]


@cache
def moments(name, mu, sigma, params=()):
    """(mean, std, E[f'(X)^2]) of f(X) by mpmath quadrature."""
    f, df, kinks = make(name, **dict(params))
    with mp.workdps(MP_DPS):
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        cuts = [-mp.inf] + sorted(set([mu - 8 * sigma, mu, mu + 8 * sigma] + [mp.mpf(k) for k in kinks])) + [mp.inf]
        dens = lambda x: mp.npdf(x, mu, sigma)  # noqa: E731
        m1 = quad(lambda x: f(x) * dens(x), cuts)
        m2 = quad(lambda x: (f(x) - m1) ** 2 * dens(x), cuts)
        g2 = quad(lambda x: df(x) ** 2 * dens(x), cuts)
        return float(m1), float(mp.sqrt(m2)), float(g2)


def max_moments(name: str, mu: float, sigma: float, n: int = 1, params=()) -> tuple[float, float]:
    """(mean, std) of f(max of n iid N(mu, sigma^2)) by mpmath, the max's density n phi Phi^(n-1): for monotone
    f that is the max of n f(X)."""
    f, _, kinks = make(name, **dict(params))
    with mp.workdps(MP_DPS):
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        marks = [mu + k * sigma for k in (-8, -1, 0, 1, 8)] + [mp.mpf(x) for x in (-20, -5, -1, 0, 1, 5, 20, *kinks)]
        cuts = [-mp.inf] + sorted(set(marks)) + [mp.inf]
        density = lambda x: n * mp.npdf(x, mu, sigma) * mp.ncdf(x, mu, sigma) ** (n - 1)  # noqa: E731
        m1 = mp.quad(lambda x: f(x) * density(x), cuts)
        m2 = mp.quad(lambda x: (f(x) - m1) ** 2 * density(x), cuts)
        return float(m1), float(mp.sqrt(m2))

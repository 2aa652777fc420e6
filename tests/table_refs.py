"""Independent references for the default table, and one shared build of it.

Every expected number here comes from a closed form or from mpmath
integration written out in this file, never from momentcalc itself.
"""

from __future__ import annotations

from functools import cache

import mp_activations
import mpmath as mp
import numpy as np
import op_cases

mp.mp.dps = 30

# The other activations of the default table (spec -> mpmath reference name in mp_activations).
ACTIVATIONS = {c.spec: c.ref for c in op_cases.suite("table")}


def _phi(x):
    return mp.npdf(x)


def _cdf(x):
    return mp.ncdf(x)


def max_of_normals(n: int) -> tuple[float, float]:
    """E and SD of the max of n iid N(0,1): density n phi(x) Phi(x)^(n-1)."""
    density = lambda x: n * _phi(x) * _cdf(x) ** (n - 1)  # noqa: E731
    m1 = mp.quad(lambda x: x * density(x), [-mp.inf, 0, mp.inf])
    m2 = mp.quad(lambda x: x * x * density(x), [-mp.inf, 0, mp.inf])
    return float(m1), float(mp.sqrt(m2 - m1 * m1))


def relu() -> tuple[float, float]:
    # E[relu X] = 1/sqrt(2 pi); E[relu X ^2] = 1/2.
    mean = 1 / mp.sqrt(2 * mp.pi)
    return float(mean), float(mp.sqrt(mp.mpf(1) / 2 - mean**2))


def sigmoid() -> tuple[float, float]:
    # sigmoid(x) - 1/2 is odd, so the mean is exactly 1/2; E[s^2] by quadrature.
    second = mp.quad(lambda x: _phi(x) / (1 + mp.exp(-x)) ** 2, [-mp.inf, 0, mp.inf])
    return 0.5, float(mp.sqrt(second - mp.mpf(1) / 4))


def relu_normalize_max(n: int) -> tuple[float, float]:
    """Max of n iid copies of (relu(X) - m) / s, with m, s the exact ReLU moments.

    Y has an atom at a = -m/s (probability 1/2) and CDF Phi(m + s y) above it,
    so with M >= a: E[M] = a + int_a^inf (1 - F^n) dy and
    E[(M - a)^2] = int_a^inf 2 (y - a) (1 - F^n) dy.
    """
    m = 1 / mp.sqrt(2 * mp.pi)
    s = mp.sqrt(mp.mpf(1) / 2 - m * m)
    a = -m / s
    tail = lambda y: 1 - _cdf(m + s * y) ** n  # noqa: E731
    e1 = mp.quad(tail, [a, 0, mp.inf])
    e2 = mp.quad(lambda y: 2 * (y - a) * tail(y), [a, 0, mp.inf])
    return float(a + e1), float(mp.sqrt(e2 - e1 * e1))


def dropout(p: float, scale: str) -> tuple[float, float]:
    # Kept with probability p, divided by 1, sqrt(p) or p: Var = p / divisor^2 for X ~ N(0, 1).
    divisor = {"none": 1.0, "sqrt": mp.sqrt(p), "inverse": mp.mpf(p)}[scale]
    return 0.0, float(mp.sqrt(p) / divisor)


def gated(gate) -> tuple[float, float]:
    """x * h(g), x and g iid N(0, 1): mean E[x] E[h] = 0, E[y^2] = E[x^2] E[h^2] = E[h(g)^2]."""
    return 0.0, float(mp.sqrt(mp.quad(lambda g: gate(g) ** 2 * _phi(g), [-mp.inf, 0, mp.inf])))


def chi(n: int) -> tuple[float, float]:
    """sqrt of a chi-square with n degrees of freedom: E = sqrt(2) Gamma((n+1)/2) / Gamma(n/2), E[y^2] = n."""
    mean = mp.sqrt(2) * mp.gamma(mp.mpf(n + 1) / 2) / mp.gamma(mp.mpf(n) / 2)
    return float(mean), float(mp.sqrt(n - mean**2))


def residual_relu(tau: float) -> tuple[float, float]:
    """sqrt(1 - tau) x + sqrt(tau) (relu(x) - m) / s at N(0, 1): mean 0, E[y^2] = 1 + 2 sqrt(tau (1 - tau)) / (2 s)
    (E[x relu(x)] = 1/2)."""
    s = mp.sqrt(mp.mpf(1) / 2 - 1 / (2 * mp.pi))
    return 0.0, float(mp.sqrt(1 + mp.sqrt(tau * (1 - mp.mpf(tau))) / s))


def softmax(n: int) -> tuple[float, float]:
    """One output p_1 of softmax over n iid N(0, 1) logits: E[p_1] = 1/n (exchangeable outputs that sum to 1) and
    E[p_1^2] = int_0^inf u G(u) L(u)^(n-1) du (from 1 / D^2 = int_0^inf u e^(-u D) du with D = e^a + S, S the sum of
    the other exponentials, a = x_1 independent of S), with G(u) = E[e^(2a) e^(-u e^a)] and L(u) = E[e^(-u e^a)].

    Not momentcalc's code path (adaptive scipy quad, nested): the trapezoid rule on a fixed grid, in a for the inner
    Gaussian integrals and in v = log u for the outer one, each integrand analytic in a strip about the real line
    and decaying at least exponentially, so the rule converges geometrically in the step (error ~ exp(-pi^2 / h)
    in a; halving both steps moves E[p_1^2] by < 1e-13 relative for n in 2..4096). check_softmax_rule pins it
    at n = 2, where p_1 is a sigmoid, and its own mean against 1/n.
    """
    mean, second = _softmax_rule(n)
    return 1.0 / n, float(np.sqrt(second - 1.0 / (n * n)))


def _softmax_rule(n: int, h: float = 0.1) -> tuple[float, float]:
    """(E[p_1], E[p_1^2]) by the trapezoid rule of step h in a (|a| <= 14: the weight there is below 1e-42) and in
    log u (40 either side of where u D ~ 1, 20 above: the integrands are below e^-40 of their peak beyond)."""
    a = np.arange(-14.0, 14.0 + h / 2, h)
    weight = h * np.exp(-a * a / 2) / np.sqrt(2 * np.pi)
    center = -np.log(n) - 0.5  # log of 1 / E[D], E[e^a] = e^(1/2)
    v = np.arange(center - 40, center + 20, h)
    ue = np.exp(v)[:, None] * np.exp(a)[None, :]  # u e^a
    l_minus_1 = (np.expm1(-ue) * weight).sum(axis=1)  # L - 1 without cancellation where L is near 1
    with np.errstate(divide="ignore"):
        log_l = np.where(l_minus_1 > -0.5, np.log1p(np.maximum(l_minus_1, -0.5)), np.log((np.exp(-ue) * weight).sum(1)))
    rest = np.exp((n - 1) * log_l)  # L^(n-1)
    g1 = (np.exp(a - ue) * weight).sum(axis=1)
    g2 = (np.exp(2 * a - ue) * weight).sum(axis=1)
    return float(h * (np.exp(v) * g1 * rest).sum()), float(h * (np.exp(2 * v) * g2 * rest).sum())


def check_softmax_rule() -> None:
    """The rule reproduces what is known: E[p_1] = 1/n, and at n = 2, E[p_1^2] = E[sigmoid(sqrt(2) z)^2] (mpmath)."""
    for n in (2, 4096):
        mean, _ = _softmax_rule(n)
        assert abs(mean * n - 1) < 1e-12, (n, mean)
    s = mp.sqrt(2)
    want = mp.quad(lambda z: mp.npdf(z) / (1 + mp.exp(-s * z)) ** 2, [-mp.inf, 0, mp.inf])
    assert abs(_softmax_rule(2)[1] / float(want) - 1) < 1e-12


_SIG = lambda g: 1 / (1 + mp.exp(-g))  # noqa: E731


# Canonical spellings of the default table's specs, with their true moments at N(0, 1).
REFERENCES = {
    "relu": relu,
    "sigmoid": sigmoid,
    **{f"maxpool(k={k})": (lambda k=k: max_of_normals(k * k)) for k in (2, 3, 4, 5)},
    **{f"avgpool(k={k})": (lambda k=k: (0.0, 1.0 / k)) for k in (2, 3, 4, 5)},
    **{
        (f"dropout(p={p})" if scale == "sqrt" else f"dropout(p={p},scale={scale})"): (
            lambda p=p, scale=scale: dropout(p, scale)
        )
        for p in (0.5, 0.8, 0.9)
        for scale in ("none", "sqrt", "inverse")
    },
    "relu | normalize | maxpool(k=3)": lambda: relu_normalize_max(9),
    **{spec: (lambda name=name: mp_activations.moments(name, 0.0, 1.0)[:2]) for spec, name in ACTIVATIONS.items()},
    "glu": lambda: gated(_SIG),
    "swiglu": lambda: gated(lambda g: g * _SIG(g)),
    "geglu": lambda: gated(lambda g: g * _cdf(g)),
    "reglu": lambda: gated(lambda g: max(g, 0)),
    # one coordinate of a normalized vector at N(0, 1): mean 0 and E[y^2] = 1 exactly (the Beta law of x_1^2 / |x|^2)
    **{f"{norm}(d={d})": (lambda: (0.0, 1.0)) for norm in ("rmsnorm", "layernorm") for d in (64, 768, 4096)},
    **{f"lppool(p=2,k={k})": (lambda k=k: chi(k * k)) for k in (2, 3)},
    **{f"residual(f=relu | normalize,tau={tau})": (lambda tau=tau: residual_relu(tau)) for tau in (0.1, 0.5)},
    **{f"softmax(n={n})": (lambda n=n: softmax(n)) for n in (16, 64, 256, 1024, 4096)},
}


@cache
def truth(spec: str) -> tuple[float, float]:
    return REFERENCES[spec]()


@cache
def default_doc() -> dict:
    """The default table as committed (tables/normprop.json): the content tests check it against the independent
    references here. That it is what this code generates is proven by a fresh build in tests_long/test_long_tables.py
    (and by `momentcalc tables check` in .ci/run): a build takes 40 s of CPU, most of the suite's budget."""
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parent.parent / "tables" / "normprop.json").read_text())


@cache
def fresh_doc() -> dict:
    """The default table built now, once per test session."""
    from momentcalc import tables

    return tables.build()


def untimed(value):
    """A table document (or part of one) without its `seconds` fields: the one thing two builds may differ in."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value

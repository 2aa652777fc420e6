"""The certified method: every enclosure holds an independent mpmath value, and the double is the correctly rounded one.

References are mpmath integrals at 40 digits, written here and in tests/mp_activations.py from the textbook
definitions, independently of momentcalc's declarations.
"""

import json
import math
from decimal import Decimal

import mpmath as mp
import op_cases
import pytest
from mp_activations import make, quad  # quad: 1e-21 (relative) from tanh-sinh alone, or closer
from typer.testing import CliRunner

import momentcalc as mc
from momentcalc import catalog
from momentcalc.cli import app
from momentcalc.estimators import NotApplicable, certified, certified_chain
from momentcalc.spec import Op, Spec, parse

DPS = 40


ACTIVATIONS = [(c.spec, c.ref, dict(c.params)) for c in op_cases.suite("certified")]


def _selu():
    # The constants to all the digits Klambauer et al. print (mp_activations holds them at 15 digits).
    lam, alpha = mp.mpf("1.0507009873554804934193349852946"), mp.mpf("1.6732632423543772848170429916717")
    f = lambda x: lam * (x if x > 0 else alpha * mp.expm1(x))  # noqa: E731
    return f, lambda x: lam * (1 if x > 0 else alpha * mp.exp(x)), (0,)


def _mp_relu(mu, sigma):
    """relu's moments from the textbook closed forms (mpmath's quadrature misses the far tail at mu = -30)."""
    with mp.workdps(400):
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        z = mu / sigma
        m1 = sigma * mp.npdf(z) + mu * mp.ncdf(z)
        m2 = (mu**2 + sigma**2) * mp.ncdf(z) + mu * sigma * mp.npdf(z)
        return m1, mp.sqrt(m2 - m1**2), mp.ncdf(z)


def _mp_moments(name, params, mu, sigma):
    """(mean, std, E[f'^2]) as mpf at DPS digits (60 for selu, whose mean at N(0, 1) is 1e-32)."""
    if name == "relu":
        return _mp_relu(mu, sigma)
    with mp.workdps(60 if name == "selu" else DPS):
        f, df, kinks = _selu() if name == "selu" else make(name, **params)
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        near = [mp.mpf(k) + d for k in kinks for d in (-0.5, 0, 0.5)]
        inner = [mu + k * sigma for k in (-12, -6, -2, -0.5, 0, 0.5, 2, 6, 12)] + near
        cuts = [-mp.inf] + sorted(set(inner)) + [mp.inf]
        dens = lambda x: mp.npdf(x, mu, sigma)  # noqa: E731
        m1 = quad(lambda x: f(x) * dens(x), cuts)
        m2 = quad(lambda x: (f(x) - m1) ** 2 * dens(x), cuts)
        g2 = quad(lambda x: mp.mpf(df(x)) ** 2 * dens(x), cuts)
        return m1, mp.sqrt(m2), g2


def _check(found: certified.Certified, true):
    """true lies in [lo, hi], and value is the double nearest to it."""
    with mp.workdps(DPS):
        if abs(true) < 1e-35 and found.lo <= 0.0 <= found.hi:
            return  # an exact zero (odd function, centred input): mpmath leaves noise of 1e-40
        assert mp.mpf(found.lo) <= true <= mp.mpf(found.hi), (found, true)
        nearest = float(true)  # mpmath rounds to nearest
    # 40 digits leave no doubt unless true sits within 1e-35 (relative) of a midpoint between doubles.
    assert found.value == nearest, (found, true)


@pytest.mark.parametrize("text,name,params", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_every_activation_at_a_standard_and_a_shifted_input(text, name, params):
    for mu, sigma in ((0.0, 1.0), (0.7, 1.9)):
        true = _mp_moments(name, params, mu, sigma)
        found = certified.estimate(parse(text), mu, sigma)
        for quantity, value in zip(("mean", "std", "grad_sq"), true):
            _check(found[quantity], value)


FAR = [
    ("relu", "relu", {}, -30.0, 1.0),
    ("relu", "relu", {}, 0.0, 1e3),
    ("hardswish", "hardswish", {}, 0.0, 1e-3),
    ("sigmoid", "sigmoid", {}, -30.0, 1.0),
    ("log_sigmoid", "log_sigmoid", {}, -30.0, 1.0),
    ("leaky_relu", "leaky_relu", {"slope": 0.01}, 0.0, 1e3),
    ("elu", "elu", {}, 0.5, 1e-3),
    ("relu6", "relu6", {}, 5.0, 1e-3),
]


@pytest.mark.parametrize("text,name,params,mu,sigma", FAR, ids=[f"{a[0]}@{a[3]},{a[4]}" for a in FAR])
def test_far_inputs(text, name, params, mu, sigma):
    true = _mp_moments(name, params, mu, sigma)
    found = certified.estimate(parse(text), mu, sigma)
    for quantity, value in zip(("mean", "std", "grad_sq"), true):
        _check(found[quantity], value)


def _mp_max(n):
    """E[M] and std of M, the max of n standard normals, by mpmath."""
    with mp.workdps(DPS):
        dens = lambda z: n * mp.npdf(z) * mp.ncdf(z) ** (n - 1)  # noqa: E731
        cuts = [-mp.inf] + [mp.mpf(k) / 2 for k in range(-16, 17)] + [mp.inf]
        m1 = quad(lambda z: z * dens(z), cuts)
        m2 = quad(lambda z: (z - m1) ** 2 * dens(z), cuts)
        return m1, mp.sqrt(m2)


@pytest.mark.parametrize("n", [2, 9, 1000, 10**6])
def test_max_of_n_standard_normals(n):
    found = certified.estimate(parse(f"maxpool(n={n})"), 0.0, 1.0)
    mean, std = _mp_max(n)
    _check(found["mean"], mean)
    _check(found["std"], std)
    assert "grad_sq" not in found
    if n == 2:
        with mp.workdps(DPS):
            _check(found["mean"], 1 / mp.sqrt(mp.pi))
            _check(found["std"], mp.sqrt(1 - 1 / mp.pi))
    if n == 9:
        assert abs(found["mean"].value - 1.485013162209237006) < 3e-16


def test_min_avg_and_scaled_inputs_follow_from_the_max():
    mean, std = _mp_max(3)
    with mp.workdps(DPS):
        found = certified.estimate(parse("minpool(k=3,dims=1)"), 0.5, 2.0)
        _check(found["mean"], mp.mpf(0.5) - 2 * mean)
        _check(found["std"], 2 * std)
        found = certified.estimate(parse("maxpool(k=3,dims=1)"), 0.5, 2.0)
        _check(found["mean"], mp.mpf(0.5) + 2 * mean)
        avg = certified.estimate(parse("avgpool(k=2)"), 1.0, 3.0)
        _check(avg["mean"], mp.mpf(1))
        _check(avg["std"], mp.mpf(3) / 2)


def test_monotone_activation_then_max_commutes():
    # max of 3 relu values = relu of the max of 3 normals.
    with mp.workdps(DPS):
        dens = lambda z: 3 * mp.npdf(z) * mp.ncdf(z) ** 2  # noqa: E731
        m1 = quad(lambda z: z * dens(z), [0, mp.inf])
        m2 = quad(lambda z: (max(z, 0) - m1) ** 2 * dens(z), [-mp.inf, 0, mp.inf])
    found = certified.estimate(parse("relu | maxpool(k=3,dims=1)"), 0.0, 1.0)
    _check(found["mean"], m1)
    _check(found["std"], mp.sqrt(m2))


def test_dropout_and_normalize():
    m1, s1, g1 = _mp_moments("relu", {}, 0.0, 1.0)
    with mp.workdps(DPS):
        p = mp.mpf(0.8)
        found = certified.estimate(parse("relu | dropout(p=0.8,scale=inverse)"), 0.0, 1.0)
        _check(found["mean"], m1)
        _check(found["std"], mp.sqrt((s1**2 + (1 - p) * m1**2) / p))
        _check(found["grad_sq"], g1 / p)
        found = certified.estimate(parse("relu | normalize"), 0.0, 1.0)
        assert (found["mean"].value, found["mean"].lo, found["mean"].hi) == (0.0, 0.0, 0.0)
        assert (found["std"].value, found["std"].lo, found["std"].hi) == (1.0, 1.0, 1.0)
        _check(found["grad_sq"], g1 / s1**2)
        # relu | normalize | maxpool(k=3): max of 9 relu values, shifted and scaled by relu's exact moments.
        dens = lambda z: 9 * mp.npdf(z) * mp.ncdf(z) ** 8  # noqa: E731
        e1 = quad(lambda z: (max(z, 0) - m1) / s1 * dens(z), [-mp.inf, 0, mp.inf])
        e2 = quad(lambda z: ((max(z, 0) - m1) / s1 - e1) ** 2 * dens(z), [-mp.inf, 0, mp.inf])
        found = certified.estimate(parse("relu | normalize | maxpool(k=3)"), 0.0, 1.0)
        _check(found["mean"], e1)
        _check(found["std"], mp.sqrt(e2))


def test_the_precision_rises_until_the_ends_round_alike(monkeypatch):
    # relu's mean at mu=-30 is 1.6e-199: 64 bits do not pin it, 128 do.
    found = certified.certify(parse("relu"), -30.0, 1.0, "mean")
    assert found.prec > certified.PRECS[0]
    certified._quantity.cache_clear()
    certified._moments.cache_clear()
    monkeypatch.setattr(certified, "PRECS", (64,))
    with pytest.raises(NotApplicable, match="could not be certified"):
        certified.certify(parse("relu"), -30.0, 1.0, "mean")
    certified._quantity.cache_clear()
    certified._moments.cache_clear()


def test_a_slow_input_declines_within_its_budget_and_caches_nothing(monkeypatch):
    # silu at sigma=1e4: its first (64-bit) pass alone takes over 100,000 evaluations. With a budget of 2,000 it
    # must give up inside that pass, not after it, and keep none of the balls cut short in the caches.
    monkeypatch.setattr(certified, "EVALS", 2000)
    cached = certified._quantity.cache_info().currsize, certified._moments.cache_info().currsize
    with pytest.raises(NotApplicable, match=r"could not be certified in 2000 integrand evaluations \(< 64 bits\)"):
        certified.certify(parse("silu"), 0.0, 1e4, "mean")
    assert (certified._quantity.cache_info().currsize, certified._moments.cache_info().currsize) == cached


def test_digits_are_correctly_rounded():
    found = certified.certify(parse("gelu"), 0.0, 1.0, "mean", digits=30)
    with mp.workdps(60):
        true = Decimal(mp.nstr(1 / (2 * mp.sqrt(mp.pi)), 55))
    assert found.digits == f"{true:.29e}"  # Decimal formats with ties to even


@pytest.mark.parametrize(
    "text",
    [
        "gelu | maxpool(k=2)",  # max does not commute with a non-monotone activation
        "dropout(p=0.5) | relu",
        "relu | avgpool(k=2) | relu",
        "maxpool(k=2) | minpool(k=2)",
        "expr(x * x)",
    ],
)
def test_what_it_refuses(text):
    with pytest.raises(NotApplicable):
        certified.estimate(parse(text), 0.0, 1.0)


def test_refuses_a_window_beyond_its_limit():
    # The parser already refuses windows of more than 10**6 values (settings.WINDOW_MAX); certified checks on its own.
    spec = Spec((Op("maxpool", (("n", certified_chain.MAX_N + 1),)),))
    with pytest.raises(NotApplicable, match="not certified"):
        certified.estimate(spec, 0.0, 1.0)


def test_engine_makes_certified_the_value_of_record():
    r = mc.estimate("relu", methods=("certified", "closed", "quadrature"))
    assert [e.method for e in r.estimates][:2] == ["certified", "closed"]
    assert r.method == "certified" and r.agree
    e = r.estimates[0]
    assert e.mean_interval[0] <= e.mean <= e.mean_interval[1]
    assert e.mean_se == (e.mean_interval[1] - e.mean_interval[0]) / 2
    assert r.grad_sq == 0.5 and r.grad_sq_record.method == "certified"
    json.dumps(r.to_dict())
    only = mc.estimate("maxpool(k=3)", method="certified", digits=20)
    assert only.estimates[0].mean_digits.startswith("1.4850131622092370")
    assert math.isclose(only.mean, 1.485013162209237, rel_tol=0, abs_tol=3e-16)


def test_every_activation_declares_its_balls():
    for op in catalog.jitted_activations():
        a, b = 1.0, 2.0
        assert op.ball is not None and op.growth is not None, op.name
        assert len(op.ball) == len(op.kinks(a, b)) + 1, op.name


def test_cli_method_certified_with_digits():
    out = CliRunner().invoke(app, ["estimate", "maxpool(k=3)", "--method", "certified", "--digits", "25", "--json"])
    assert out.exit_code == 0, out.output
    (e,) = json.loads(out.stdout)["estimates"]
    assert e["method"] == "certified" and e["mean_digits"].startswith("1.48501316220923700")
    assert e["mean_interval"][0] <= e["mean"] <= e["mean_interval"][1]
    table = CliRunner().invoke(app, ["estimate", "relu", "--method", "certified", "--digits", "12"])
    assert "certified mean: 3.98942280401e-1" in table.stdout

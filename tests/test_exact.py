"""Closed forms and quadrature against independent derivations (mpmath, textbook forms)."""

import math

import mpmath as mp
import pytest
from naive import std_normal_max_moment

import momentcalc as mc
from momentcalc.estimators import NotApplicable, closed, quadrature
from momentcalc.spec import parse

MP_DPS = 30


def mp_moments(f, mu, sigma, points=(0,)):
    """Mean and std of f(X), X ~ N(mu, sigma^2), by mpmath quadrature at 30 digits."""
    with mp.workdps(MP_DPS):
        density = lambda x: mp.npdf(x, mu, sigma)  # noqa: E731
        cuts = [-mp.inf] + sorted(set([mu - 8 * sigma, mu, mu + 8 * sigma] + list(points))) + [mp.inf]
        m1 = mp.quad(lambda x: f(x) * density(x), cuts)
        m2 = mp.quad(lambda x: (f(x) - m1) ** 2 * density(x), cuts)
        return float(m1), float(mp.sqrt(m2))


def relu_mp(x):
    return x if x > 0 else mp.mpf(0)


def sigmoid_mp(x):
    return 1 / (1 + mp.exp(-x))


INPUTS = [(0.0, 1.0), (0.5, 2.0), (-1.3, 0.4), (3.0, 0.7)]


@pytest.mark.parametrize("mu, sigma", INPUTS)
def test_relu_closed_and_quadrature_match_mpmath(mu, sigma):
    want_mean, want_std = mp_moments(relu_mp, mu, sigma)
    got = closed.estimate_moments(parse("relu"), mu, sigma)
    assert got.mean == pytest.approx(want_mean, abs=1e-13)
    assert got.std == pytest.approx(want_std, abs=1e-13)
    mean, std, mean_err, std_err = quadrature.estimate_moments(parse("relu"), mu, sigma)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12
    assert mean_err < 1e-11 and std_err < 1e-11


@pytest.mark.parametrize("mu, sigma", INPUTS)
def test_sigmoid_quadrature_matches_mpmath(mu, sigma):
    want_mean, want_std = mp_moments(sigmoid_mp, mu, sigma)
    mean, std, _, _ = quadrature.estimate_moments(parse("sigmoid"), mu, sigma)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12


def test_sigmoid_closed_mean_is_one_half_only_at_mu_zero():
    assert closed.estimate_moments(parse("sigmoid"), 0.0, 3.0).mean == 0.5
    with pytest.raises(NotApplicable):
        closed.estimate_moments(parse("sigmoid"), 0.2, 1.0)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 9, 16, 25])
@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (0.7, 1.9)])
def test_max_of_n_matches_mpmath_order_statistics(n, mu, sigma):
    m1 = std_normal_max_moment(n, 1)
    m2 = std_normal_max_moment(n, 2)
    want_mean, want_std = mu + sigma * m1, sigma * math.sqrt(m2 - m1 * m1)
    mean, std, _, _ = quadrature.estimate_moments(parse(f"maxpool(n={n})"), mu, sigma)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12
    if n <= 5:
        got = closed.estimate_moments(parse(f"maxpool(n={n})"), mu, sigma)
        assert abs(got.mean - want_mean) <= 1e-13
        if n <= 4:
            assert abs(got.std - want_std) <= 1e-13
        else:
            assert got.std is None


def test_global_pooling_over_ten_thousand_values():
    # Below 1.5 the density of the max of 10,000 normals is under exp(-600); the upper tail matters.
    n = 10_000
    with mp.workdps(MP_DPS):
        f = lambda x, p: x**p * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1)  # noqa: E731
        cuts = [1.5, 3, 3.5, 3.8, 4.1, 4.5, 6.5, 10, mp.inf]
        m1 = mp.quad(lambda x: f(x, 1), cuts)
        var = mp.quad(lambda x: f(x, 2), cuts) - m1**2
    mean, std, _, _ = quadrature.estimate_moments(parse("maxpool(n=10000)"), 0.0, 1.0)
    assert abs(mean - float(m1)) <= 1e-11 and abs(std - float(mp.sqrt(var))) <= 1e-11


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_avgpool_is_normal_with_std_sigma_over_k(k):
    r = mc.estimate(f"avgpool(k={k})", mu=0.4, sigma=2.0, method="closed")
    assert r.mean == 0.4 and r.std == pytest.approx(2.0 / k, abs=1e-15)
    mean, std, _, _ = quadrature.estimate_moments(parse(f"avgpool(k={k})"), 0.4, 2.0)
    assert abs(mean - 0.4) <= 1e-12 and abs(std - 2.0 / k) <= 1e-12


@pytest.mark.parametrize("p", [0.5, 0.8, 0.9, 1.0])
@pytest.mark.parametrize("scale, divisor", [("none", lambda p: 1.0), ("sqrt", math.sqrt), ("inverse", lambda p: p)])
def test_dropout_moments(p, scale, divisor):
    # y = x r / c: E[y] = p mu / c, E[y^2] = p (mu^2 + sigma^2) / c^2.
    mu, sigma, c = 0.3, 1.7, divisor(p)
    want_mean = p * mu / c
    want_std = math.sqrt(p * (mu**2 + sigma**2) / c**2 - want_mean**2)
    spec = parse(f"dropout(p={p},scale={scale})")
    got = closed.estimate_moments(spec, mu, sigma)
    assert got.mean == pytest.approx(want_mean, abs=1e-14) and got.std == pytest.approx(want_std, abs=1e-14)
    mean, std, _, _ = quadrature.estimate_moments(spec, mu, sigma)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12


def test_normprop_pool_pipeline_matches_mpmath():
    # relu | normalize | maxpool(k=3): relu is monotone, so the max of 9 normalized relus is
    # (relu(M_9) - m) / s with m, s the relu moments (closed form) and M_9 the max of 9 normals.
    m, s = 1 / math.sqrt(2 * math.pi), math.sqrt(0.5 - 1 / (2 * math.pi))
    with mp.workdps(MP_DPS):
        dens = lambda x: 9 * mp.npdf(x) * mp.ncdf(x) ** 8  # noqa: E731
        y = lambda x: (relu_mp(x) - m) / s  # noqa: E731
        cuts = [-mp.inf, -4, 0, 2, 4, mp.inf]
        m1 = mp.quad(lambda x: y(x) * dens(x), cuts)
        m2 = mp.quad(lambda x: (y(x) - m1) ** 2 * dens(x), cuts)
    mean, std, _, _ = quadrature.estimate_moments(parse("relu | normalize | maxpool(k=3)"), 0.0, 1.0)
    assert abs(mean - float(m1)) <= 1e-12 and abs(std - float(mp.sqrt(m2))) <= 1e-12


def test_normalize_gives_zero_mean_unit_std():
    for spec in [
        "relu | normalize",
        "sigmoid | normalize",
        "maxpool(k=3) | normalize",
        "relu | dropout(p=0.5) | normalize",
    ]:
        mean, std, _, _ = quadrature.estimate_moments(parse(spec), 0.2, 1.3)
        assert abs(mean) <= 1e-12 and abs(std - 1.0) <= 1e-12, spec


def test_nested_max_is_a_larger_max():
    # max of 4 maxes of 4 iid normals is the max of 16.
    a = quadrature.estimate_moments(parse("maxpool(k=2) | maxpool(k=2)"), 0.0, 1.0)
    b = quadrature.estimate_moments(parse("maxpool(n=16)"), 0.0, 1.0)
    assert a[0] == pytest.approx(b[0], abs=1e-13) and a[1] == pytest.approx(b[1], abs=1e-13)


def test_relu_after_relu_finds_the_flat_kink():
    want_mean, want_std = mp_moments(relu_mp, 0.0, 1.0)
    mean, std, _, _ = quadrature.estimate_moments(parse("relu | relu"), 0.0, 1.0)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12


class TestSeedValues:
    """The figures of the NormProp note (shared/seeds/000), to their printed digits."""

    def test_relu(self):
        r = mc.estimate("relu", method="quadrature")
        assert round(r.mean, 4) == 0.3989 and round(r.std, 4) == 0.5838

    def test_sigmoid_std(self):
        assert round(mc.estimate("sigmoid", method="quadrature").std, 4) == 0.2083

    def test_max_3x3(self):
        r = mc.estimate("maxpool(k=3)", method="quadrature")
        assert round(r.mean, 4) == 1.4850 and round(r.std, 4) == 0.5978

    @pytest.mark.parametrize("k", [2, 3, 4])
    def test_avgpool_std_is_one_over_k(self, k):
        assert mc.estimate(f"avgpool(k={k})", method="closed").std == pytest.approx(1 / k, abs=1e-15)

    @pytest.mark.parametrize("p", [0.5, 0.8])
    def test_dropout_std_is_sqrt_p(self, p):
        assert mc.estimate(f"dropout(p={p},scale=none)", method="closed").std == pytest.approx(math.sqrt(p), abs=1e-15)

    def test_the_2x2_max_figures_were_monte_carlo_noise(self):
        # Exact: E[M_4] = 6 arctan(sqrt 2) / pi^1.5, E[M_4^2] = 1 + sqrt(3)/pi (David & Nagaraja).
        mean = 6 * math.atan(math.sqrt(2)) / math.pi**1.5
        std = math.sqrt(1 + math.sqrt(3) / math.pi - mean**2)
        assert round(mean, 6) == 1.029375 and round(std, 6) == 0.701224
        r = mc.estimate("maxpool(k=2)", method="closed")
        assert (r.mean, r.std) == pytest.approx((mean, std), abs=1e-15)
        printed_mean, printed_std = 1.0291, 0.7010
        # The note's figures miss the exact values in the 4th digit ...
        assert round(mean, 4) != printed_mean and round(std, 4) != printed_std
        # ... by less than one standard error of the 100,000-sample run it describes: noise, not digits.
        se_mean, se_std = std / math.sqrt(1e5), 0.00158  # SE(std) from the kurtosis of M_4, below
        assert abs(printed_mean - mean) < se_mean
        m4 = (
            std_normal_max_moment(4, 4)
            - 4 * mean * std_normal_max_moment(4, 3)
            + 6 * mean**2 * std_normal_max_moment(4, 2)
            - 3 * mean**4
        )
        assert math.sqrt((m4 - std**4) / 1e5) / (2 * std) == pytest.approx(se_std, rel=0.05)
        assert abs(printed_std - std) < se_std


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_max_after_dropout_goes_through_the_cdf(p):
    # Two iid copies of dropout(p, none) of N(0,1): both kept (p^2): E[max] = 1/sqrt(pi), E[max^2] = 1;
    # one kept (2p(1-p)): E[max(X,0)] = 1/sqrt(2 pi), E[max(X,0)^2] = 1/2; none kept: 0.
    m1 = p * p / math.sqrt(math.pi) + 2 * p * (1 - p) / math.sqrt(2 * math.pi)
    m2 = p * p + p * (1 - p)
    mean, std, mean_err, _ = quadrature.estimate_moments(
        parse(f"dropout(p={p},scale=none) | maxpool(k=2,dims=1)"), 0.0, 1.0
    )
    assert abs(mean - m1) <= 1e-11 and abs(std - math.sqrt(m2 - m1 * m1)) <= 1e-11
    assert mean_err < 1e-10


def test_max_after_a_non_monotone_activation_goes_through_the_cdf():
    # |X| is half-normal with CDF 2 Phi(y) - 1; the max of two has CDF (2 Phi(y) - 1)^2 on y >= 0.
    with mp.workdps(MP_DPS):
        survival = lambda y: 1 - (2 * mp.ncdf(y) - 1) ** 2  # noqa: E731
        m1 = mp.quad(survival, [0, 2, 6, mp.inf])
        m2 = mp.quad(lambda y: 2 * y * survival(y), [0, 2, 6, mp.inf])
    mean, std, _, _ = quadrature.estimate_moments(parse("abs | maxpool(k=2,dims=1)"), 0.0, 1.0)
    assert abs(mean - float(m1)) <= 1e-11 and abs(std - float(mp.sqrt(m2 - m1**2))) <= 1e-11


def test_gelu_max_pool_exact_agrees_with_monte_carlo():
    r = mc.estimate("gelu | maxpool(k=3)", samples=1 << 20, seed=12)
    assert [e.method for e in r.estimates] == ["quadrature", "montecarlo"] and r.agree

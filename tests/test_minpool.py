"""minpool: the min over a window, by its closed form, quadrature, Monte Carlo and QMC, against mpmath."""

import mp_activations as ref
import mpmath as mp
import pytest

import momentcalc as mc
from momentcalc.estimators import closed, montecarlo, quadrature
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5
MU, SIGMA = 0.3, 1.4


def _min_moments(n, mu, sigma, g=lambda x: x, kinks=()):
    """Mean and std of g(min of n iid N(mu, sigma^2)) for non-decreasing g, from the min's density
    n phi (1 - Phi)^(n - 1), at 30 digits."""
    with mp.workdps(30):
        mu, sigma = mp.mpf(mu), mp.mpf(sigma)
        dens = lambda x: n * mp.npdf(x, mu, sigma) * (1 - mp.ncdf(x, mu, sigma)) ** (n - 1)  # noqa: E731
        cuts = [-mp.inf] + sorted({mu - 8 * sigma, mu, mu + 8 * sigma, *map(mp.mpf, kinks)}) + [mp.inf]
        m1 = mp.quad(lambda x: g(x) * dens(x), cuts)
        m2 = mp.quad(lambda x: (g(x) - m1) ** 2 * dens(x), cuts)
        return float(m1), float(mp.sqrt(m2))


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_closed_form_matches_mpmath(n):
    got = closed.estimate_moments(parse(f"minpool(n={n})"), MU, SIGMA)
    mean, std = _min_moments(n, MU, SIGMA)
    assert got.mean == pytest.approx(mean, abs=1e-14)
    if n <= 4:  # the max's table has second moments up to n = 4
        assert got.std == pytest.approx(std, abs=1e-14)


@pytest.mark.parametrize(
    "spec, n, g, kinks",
    [
        ("minpool(k=3)", 9, lambda x: x, ()),
        ("minpool(n=2)", 2, lambda x: x, ()),
        ("relu | minpool(k=2)", 4, lambda x: max(x, 0), (0,)),  # relu commutes with the min
    ],
)
def test_quadrature_matches_mpmath(spec, n, g, kinks):
    mean, std, mean_err, std_err = quadrature.estimate_moments(parse(spec), MU, SIGMA)
    want_mean, want_std = _min_moments(n, MU, SIGMA, g, kinks)
    assert abs(mean - want_mean) <= 1e-11 and abs(std - want_std) <= 1e-11
    assert mean_err < 1e-9 and std_err < 1e-9


def test_non_monotone_min_and_max_of_a_pair_add_up_to_the_pair():
    # min + max = Y1 + Y2 and min^2 + max^2 = Y1^2 + Y2^2: with E[Y], E[Y^2] of gelu from mpmath, an exact
    # check of the min's path through the CDF (gelu is not monotone).
    lo = quadrature.estimate_moments(parse("gelu | minpool(n=2)"), MU, SIGMA)
    hi = quadrature.estimate_moments(parse("gelu | maxpool(n=2)"), MU, SIGMA)
    mean, std, _ = ref.moments("gelu", MU, SIGMA)
    assert lo[0] + hi[0] == pytest.approx(2 * mean, abs=1e-10)
    second = lambda m: m[1] ** 2 + m[0] ** 2  # noqa: E731
    assert second(lo) + second(hi) == pytest.approx(2 * (std**2 + mean**2), abs=1e-9)
    assert lo[0] < mean < hi[0]


# tanh | minpool(k=2) | avgpool(k=2), nested windows whose kernel no other test compiles (about 4 s of CPU, cold):
# in tests_long/test_long_minpool.py (the suite's 3-minute budget).
@pytest.mark.parametrize("spec", ["minpool(k=3)", "relu | minpool(k=2)"])
def test_monte_carlo_within_z_se_of_quadrature(spec):
    mean, std, _, _ = quadrature.estimate_moments(parse(spec), MU, SIGMA)
    got = montecarlo.run(montecarlo.compile_program(parse(spec), MU, SIGMA), RunSettings(samples=1 << 17, seed=5))
    assert abs(got.mean - mean) <= Z * got.mean_se and abs(got.std - std) <= Z * got.std_se


@pytest.mark.parametrize("spec", ["minpool(k=2)", "relu | minpool(k=2,dims=1)"])
def test_every_method_agrees(spec):
    result = mc.estimate(spec, mu=MU, sigma=SIGMA, method="all", samples=1 << 16)
    assert result.agree and {"quadrature", "qmc", "montecarlo"} <= {e.method for e in result.estimates}


def test_border_windows_of_a_feature_map():
    # Padding for a min is +inf: a border window of r real inputs is the min of r copies.
    result = mc.estimate("minpool(k=3,s=1,p=1)", size=5, samples=2048)
    assert result.agree
    corner = min(result.kinds, key=lambda kind: kind.real_inputs)
    assert corner.real_inputs == 4 and corner.mean == pytest.approx(_min_moments(4, 0.0, 1.0)[0], abs=1e-12)

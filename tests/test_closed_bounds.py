"""Every stated bound holds: the exact methods' values against mpmath computed here, in the far tails (down to
stds of 1e-308), across the domain for the closed forms, and for the correlation maps; QMC's t quantile; solve's
exact input variance. References: tests/mp_tails.py (exact truncated-normal formulas at 60 digits) and mpmath
closed forms written below from their derivations."""

import math

import mpmath as mp
import pytest
from mp_tails import moments as mp_moments
from scipy import stats

from momentcalc import cmap, crosscheck, engine, solve
from momentcalc.errors import MomentcalcError
from momentcalc.result import Estimate

EXACT = ("certified", "closed", "quadrature")
QUANTITIES = ("mean", "std", "grad_sq")
NORMAL_MIN = 2.0**-1022

# (spec, mp_tails name and parameters, mu, sigma): the tails where certified declines (the kink 47-56 sigma away)
# and the closed forms used to print 0 +- 0 or to disagree with certified (relu at -5 ... -45: exit 1).
TAILS = [
    *[("relu", "relu", {}, mu, 1.0) for mu in (-5.0, -10.0, -30.0, -38.0, -40.0, -45.0, -50.0, -53.0)],
    ("leaky_relu(slope=0)", "leaky_relu", {"slope": "0"}, -50.0, 1.0),
    ("leaky_relu(slope=0)", "leaky_relu", {"slope": "0"}, -30.0, 1.0),
    ("relu6", "relu6", {}, 56.0, 1.0),
    ("relu6", "relu6", {}, -40.0, 1.0),
    ("hardtanh", "hardtanh", {}, -49.0, 1.0),
    ("hardtanh", "hardtanh", {}, 45.0, 1.0),
    ("celu(alpha=0.5)", "celu", {"alpha": "0.5"}, -356.023, 0.221069),
    ("celu(alpha=0.5)", "celu", {"alpha": "0.5"}, -10.0, 1.0),
    ("relu", "relu", {}, -1000.0, 20.0),
    # hardtanh's f'^2 piece is 2e-6 sigma wide at 0.001 sigma: the rounding of its ends costs 500 ulps
    ("hardtanh", "hardtanh", {}, 1000.0, 1e6),
]


def assert_within_bounds(result, truth):
    """Every exact estimate of every quantity lies within its stated bound of the truth (mpf), and the methods agree."""
    assert result.agree, result.disagreements
    for e in result.estimates:
        for q in QUANTITIES:
            value, bound = getattr(e, q), getattr(e, q + "_se")
            if value is None or e.method not in EXACT:
                continue
            with mp.workdps(60):
                error = abs(mp.mpf(value) - truth[q])
            assert error <= bound, f"{e.method} {q}: {value!r} is {mp.nstr(error, 3)} from the truth, bound {bound!r}"


@pytest.mark.parametrize(("spec", "name", "params", "mu", "sigma"), TAILS)
def test_tail_moments_hold_their_bounds_and_never_print_zero_for_a_normal_double(spec, name, params, mu, sigma):
    truth = dict(zip(QUANTITIES, mp_moments(name, mu, sigma, **params)))
    result = engine.estimate(spec, mu, sigma, methods=EXACT)
    assert_within_bounds(result, truth)
    for q in QUANTITIES:
        record = result.record_of(q)
        if record is not None and abs(truth[q]) >= NORMAL_MIN:  # a normal double: the record gives its digits
            assert getattr(record, q) != 0.0
            assert abs(getattr(record, q) - truth[q]) <= 1e-9 * abs(truth[q])


def test_the_std_of_record_is_the_truth_where_only_sqrt_of_the_density_is_a_double():
    # relu at N(-50, 1): phi(50) underflows, its square root does not; 9.2884578858166815e-275 (mpmath here),
    # as exp(-625) times factors: a few roundings.
    truth = mp_moments("relu", -50.0, 1.0)[1]
    found = engine.estimate("relu", -50.0, 1.0, methods=("closed",)).estimates[0]
    assert abs(found.std - truth) <= 4 * math.ulp(found.std)
    assert abs(found.std - truth) <= found.std_se


# Closed forms across the domain, against mpmath closed forms of the same quantities (derived independently).
def mp_gelu_mean(mu, sigma):
    # E[X Phi(X)] = mu Phi(mu / s) + sigma^2 phi(mu / s) / s, s = sqrt(1 + sigma^2) (Stein's lemma)
    s = mp.sqrt(1 + sigma**2)
    return mu * mp.ncdf(mu / s) + sigma**2 * mp.npdf(mu / s) / s


def mp_erf(mu, sigma):
    mean = mp.erf(mu / mp.sqrt(1 + 2 * sigma**2))
    std = mp.sqrt(2 / mp.pi * mp.asin(2 * sigma**2 / (1 + 2 * sigma**2))) if mu == 0 else None
    grad = 4 / mp.pi * mp.exp(-2 * mu**2 / (1 + 4 * sigma**2)) / mp.sqrt(1 + 4 * sigma**2)
    return mean, std, grad


GRID = [(0.0, 1.0), (1.5, 0.5), (-2.0, 3.0), (0.3, 1e-3), (-10.0, 1.0), (20.0, 7.0), (0.0, 1e-4), (-7.0, 0.5)]


@pytest.mark.parametrize(("mu", "sigma"), GRID)
@pytest.mark.parametrize(
    ("spec", "name", "params"),
    [
        ("relu", "relu", {}),
        ("leaky_relu(slope=0.1)", "leaky_relu", {"slope": "0.1"}),
        ("relu6", "relu6", {}),
        ("hardtanh", "hardtanh", {}),
        ("hardswish", "hardswish", {}),
        ("elu", "elu", {}),
        ("celu(alpha=0.5)", "celu", {"alpha": "0.5"}),
    ],
)
def test_piecewise_closed_forms_hold_their_bounds(spec, name, params, mu, sigma):
    truth = dict(zip(QUANTITIES, mp_moments(name, mu, sigma, **params)))
    try:
        result = engine.estimate(spec, mu, sigma, methods=("closed",))
    except MomentcalcError as why:  # a closed form may decline where it cancels: then it says so
        assert "no closed form" in str(why) or "no method" in str(why)
        return
    assert_within_bounds(result, truth)


@pytest.mark.parametrize(("mu", "sigma"), GRID)
def test_gelu_and_erf_closed_forms_hold_their_bounds(mu, sigma):
    with mp.workdps(50):
        gelu = {"mean": mp_gelu_mean(mp.mpf(mu), mp.mpf(sigma)), "std": None, "grad_sq": None}
        erf = dict(zip(QUANTITIES, mp_erf(mp.mpf(mu), mp.mpf(sigma))))
    for spec, truth in (("gelu", gelu), ("erf", erf)):
        closed = engine.estimate(spec, mu, sigma, methods=("closed",)).estimates[0]
        for q in QUANTITIES:
            if truth[q] is not None and getattr(closed, q) is not None:
                with mp.workdps(50):
                    assert abs(mp.mpf(getattr(closed, q)) - truth[q]) <= getattr(closed, q + "_se"), (spec, q)


def mp_max_moments(n):
    """Mean and std of the max of n standard normals by mpmath quadrature of its density n phi Phi^(n-1)."""
    with mp.workdps(40):
        density = lambda x: n * mp.npdf(x) * mp.ncdf(x) ** (n - 1)  # noqa: E731
        m1 = mp.quad(lambda x: x * density(x), [-mp.inf, -3, 0, 3, mp.inf])
        m2 = mp.quad(lambda x: (x - m1) ** 2 * density(x), [-mp.inf, -3, 0, 3, mp.inf])
        return m1, mp.sqrt(m2)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_max_pool_closed_forms_are_not_exact_but_hold_their_bounds(n):
    mean, std = mp_max_moments(n)
    closed = engine.estimate(f"maxpool(n={n})", 0.0, 1.0, methods=("closed",)).estimates[0]
    assert closed.mean_se > 0 and closed.std_se > 0  # irrational constants: no +- 0
    with mp.workdps(40):
        assert abs(mp.mpf(closed.mean) - mean) <= closed.mean_se
        assert abs(mp.mpf(closed.std) - std) <= closed.std_se


def test_exact_by_construction_keeps_zero_bounds_and_others_do_not():
    sigmoid = engine.estimate("sigmoid", 0.0, 1.0, methods=("closed",)).estimates[0]
    assert (sigmoid.mean, sigmoid.mean_se) == (0.5, 0.0)
    avg = engine.estimate("avgpool(n=6)", 0.0, 1.0, methods=("closed",)).estimates[0]
    assert avg.mean_se == 0.0 and avg.std_se > 0  # 1 / sqrt(6) is rounded
    with mp.workdps(40):
        assert abs(mp.mpf(avg.std) - 1 / mp.sqrt(6)) <= avg.std_se
    four = engine.estimate("avgpool(n=4)", 0.0, 1.0, methods=("closed",)).estimates[0]
    assert (four.std, four.std_se) == (0.5, 0.0)


# Correlation maps: relu's arc-cosine kernel and erf's arcsine kernel, written here from their derivations.
def mp_relu_c(c):
    k = (mp.sqrt(1 - c * c) + (mp.pi - mp.acos(c)) * c) / (2 * mp.pi)
    m2, v = 1 / (2 * mp.pi), mp.mpf(1) / 2 - 1 / (2 * mp.pi)
    return k, (k - m2) / v


def mp_erf_c(c):
    k = 2 / mp.pi * mp.asin(2 * c / 3)
    return k, k / (2 / mp.pi * mp.asin(mp.mpf(2) / 3))


@pytest.mark.parametrize("c", [-0.999, -0.9, -0.3, 0.5, 0.99, 0.999])
@pytest.mark.parametrize(("spec", "reference"), [("relu", mp_relu_c), ("erf", mp_erf_c)])
def test_correlation_maps_state_true_bounds(spec, reference, c):
    found = cmap.cmap(spec, c, methods=("certified", "closed"))
    with mp.workdps(50):
        k, corr = reference(mp.mpf(c))
        for e in found.estimates:
            assert abs(mp.mpf(e.mean) - k) <= e.mean_se, e.method
        assert abs(mp.mpf(found.corr) - corr) <= found.corr_se


def test_qmc_agreement_uses_students_t_with_the_replicas_degrees_of_freedom():
    assert crosscheck.quantile(4.5, 15) == pytest.approx(stats.t.isf(math.erfc(4.5 / math.sqrt(2)) / 2, 15), 1e-9)
    for dof in (1, 2, 5, 15, 40):
        for t in (0.3, 3.0, 6.7):
            assert crosscheck.t_tail(t, dof) == pytest.approx(2 * stats.t.sf(t, dof), rel=1e-9, abs=1e-15)
    exact = Estimate("certified", 1.0, None, 0.0, None)
    # 5.9 SEs (the worst z seen in 3,200 QMC runs): within t's 6.73 for QMC, a disagreement for Monte Carlo.
    assert crosscheck.compare((exact, Estimate("qmc", 1.0 + 5.9e-6, None, 1e-6, None, samples=1 << 16)))[0].ok
    assert not crosscheck.compare((exact, Estimate("montecarlo", 1.0 + 5.9e-6, None, 1e-6, None, samples=1 << 16)))[
        0
    ].ok


def selu_moments(alpha, lam, mu, var):
    """Mean and variance of selu(alpha, lam) at X ~ N(mu, var) by completing the square (E[e^X; X < 0] =
    e^(mu + var / 2) Phi(-mu / s - s)), in mpmath."""
    s = mp.sqrt(var)
    z = mu / s
    pos1 = mu * mp.ncdf(z) + s * mp.npdf(z)
    pos2 = (mu * mu + var) * mp.ncdf(z) + mu * s * mp.npdf(z)
    e1 = mp.exp(mu + var / 2) * mp.ncdf(-z - s)
    e2 = mp.exp(2 * mu + 2 * var) * mp.ncdf(-z - 2 * s)
    below = mp.ncdf(-z)
    mean = lam * (pos1 + alpha * (e1 - below))
    second = lam**2 * (pos2 + alpha**2 * (e2 - 2 * e1 + below))
    return mean, second - mean**2


def test_fixed_point_takes_the_variance_as_posed():
    # The SNNs notebook's fixed point N(-0.1, 2) -> N(-0.1, 2), with the variance exactly 2 (not fl(sqrt 2)^2).
    with mp.workdps(40):
        root = mp.findroot(
            lambda a, lam: [m - t for m, t in zip(selu_moments(a, lam, mp.mpf("-0.1"), 2), (mp.mpf("-0.1"), 2))],
            (mp.mpf("1.97"), mp.mpf("1.07")),
        )
        want = {"alpha": float(root[0]), "scale": float(root[1])}
    result = solve.solve("selu(alpha=?,scale=?)", mean=-0.1, var=2.0, mu=-0.1, sigma=math.sqrt(2.0), input_var=2.0)
    (found,) = result.solutions
    assert found.values == want
    assert found.method == "certified (Krawczyk)"
    with pytest.raises(MomentcalcError, match="input_var"):
        solve.solve("selu(alpha=?,scale=?)", mean=-0.1, var=2.0, mu=-0.1, sigma=1.0, input_var=2.0)

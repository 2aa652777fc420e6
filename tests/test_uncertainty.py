"""Monte Carlo estimates without a usable standard error: all samples equal, or too few samples.

Expected values come from closed forms: for X ~ N(mu, 1), E[relu X] = mu Phi(mu) + phi(mu).
"""

import math

import pytest

import momentcalc as mc
from momentcalc import crosscheck
from momentcalc.estimators.moments import Summary
from momentcalc.result import MIN_SAMPLES, Estimate, Result, informative


def relu_mean(mu: float) -> float:
    return mu * 0.5 * math.erfc(-mu / math.sqrt(2)) + math.exp(-mu * mu / 2) / math.sqrt(2 * math.pi)


def montecarlo_checks(r):
    return [c for c in r.checks if "montecarlo" in (c.a, c.b)]


def test_relu_far_in_the_tail_all_samples_zero_is_no_disagreement():
    r = mc.estimate("relu", mu=-5.0, samples=65536, seed=0)
    e = r.estimates[-1]
    assert e.method == "montecarlo" and (e.mean, e.std, e.mean_se, e.std_se) == (0.0, 0.0, 0.0, 0.0)
    assert not informative(e, "mean") and not informative(e, "std") and not informative(e, "grad_sq")
    assert montecarlo_checks(r) == []  # not compared: 0 +- 0 from equal samples is no bound
    assert any("all 65536 outputs equal 0.0" in note and "rule of three" in note for note in e.notes)
    # The certified mean is the record, not Monte Carlo's 0.
    assert r.mean_record.method == "certified" and r.mean == pytest.approx(relu_mean(-5.0), rel=1e-12)
    assert r.mean > 0.0


def test_relu_far_in_the_tail_is_estimated_where_samples_reach_it():
    r = mc.estimate("relu", mu=-3.0, samples=1 << 20, seed=1)
    e = r.estimates[-1]
    assert informative(e, "mean") and e.mean_se > 0.0
    assert abs(e.mean - relu_mean(-3.0)) <= 4.5 * e.mean_se
    assert montecarlo_checks(r) and all(c.ok for c in montecarlo_checks(r))


@pytest.mark.parametrize("samples", [1, 2, 3, MIN_SAMPLES - 1])
def test_too_few_samples_are_never_a_disagreement(samples):
    for seed in range(4):
        r = mc.estimate("relu", samples=samples, seed=seed)
        e = r.estimates[-1]
        assert e.method == "montecarlo" and not informative(e, "mean") and not informative(e, "std")
        assert montecarlo_checks(r) == [] and r.agree
        assert any(f"only {e.samples} samples" in note for note in e.notes)
        assert r.mean == pytest.approx(relu_mean(0.0), rel=1e-15) and r.method == "certified"


def test_enough_samples_are_checked():
    r = mc.estimate("relu", samples=MIN_SAMPLES, seed=0)
    # Monte Carlo against certified, closed and quadrature, for the mean, the std and E[f'(X)^2].
    assert len(montecarlo_checks(r)) == 9 and not r.estimates[-1].notes


def test_a_rounding_level_spread_counts_as_equal_samples():
    # Shifted sums can leave a spread of a few ulps for equal samples: it is not a standard error.
    s = Summary(mean=6.0, std=2 * math.ulp(6.0), mean_se=1e-18, std_se=1e-18, samples=1000)
    e = s.estimate("montecarlo", seed=0, seconds=0.0)
    assert (e.mean_se, e.std_se) == (0.0, 0.0) and not informative(e, "mean")
    genuine = Summary(mean=6.0, std=1e-9, mean_se=3e-11, std_se=2e-11, samples=1000).estimate("montecarlo", 0, 0.0)
    assert genuine.mean_se == 3e-11 and informative(genuine, "mean") and not genuine.notes


def test_an_uninformative_estimate_is_the_record_only_when_alone():
    alone = mc.estimate("relu", mu=-5.0, method="montecarlo", samples=65536)
    assert alone.method == "montecarlo" and alone.mean == 0.0 and alone.checks == () and alone.agree
    # QMC (also statistical) is preferred over an uninformative Monte Carlo, whatever the precedence.
    qmc = Estimate("qmc", 1.0, None, 1e-3, None, samples=1024)
    few = Estimate("montecarlo", 1.1, None, 0.5, None, samples=3)
    r = Result("x", 0.0, 1.0, (few, qmc), crosscheck.compare((few, qmc)))
    assert r.mean_record is qmc and r.checks == ()

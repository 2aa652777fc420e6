"""Quasi-Monte Carlo: agreement with exact values within z * SE, tol, determinism."""

import pytest

import momentcalc as mc
from momentcalc.estimators import quadrature
from momentcalc.spec import parse

Z = 4.5


@pytest.mark.parametrize(
    "spec, mu, sigma, seed",
    [
        ("maxpool(k=3)", 0.0, 1.0, 1),
        ("relu | normalize | maxpool(k=3)", 0.0, 1.0, 2),
        ("sigmoid", 0.5, 2.0, 3),
        ("relu | dropout(p=0.5) | avgpool(k=2)", 0.1, 1.2, 4),
    ],
)
def test_qmc_agrees_with_exact_within_z_se(spec, mu, sigma, seed):
    mean, std, _, _ = quadrature.estimate_moments(parse(spec), mu, sigma)
    (e,) = mc.estimate(spec, mu=mu, sigma=sigma, method="qmc", samples=1 << 16, seed=seed).estimates
    assert e.method == "qmc" and e.samples == 1 << 16
    assert abs(e.mean - mean) <= Z * e.mean_se and abs(e.std - std) <= Z * e.std_se


def test_qmc_meets_tol_and_is_reproducible():
    a = mc.estimate("maxpool(k=2)", method="qmc", tol=1e-4, seed=5).record
    b = mc.estimate("maxpool(k=2)", method="qmc", tol=1e-4, seed=5).record
    assert a.mean_se <= 1e-4 and a.std_se <= 1e-4
    assert (a.mean, a.std, a.samples) == (b.mean, b.std, b.samples)


def test_all_adds_qmc_to_the_cross_check():
    r = mc.estimate("maxpool(k=3)", method="all", samples=1 << 16, seed=6)
    assert [e.method for e in r.estimates] == ["certified", "quadrature", "qmc", "montecarlo"]
    assert r.agree and r.method == "certified"
    assert any(c.a == "qmc" or c.b == "qmc" for c in r.checks)


def test_qmc_refuses_huge_windows():
    with pytest.raises(mc.MomentcalcError, match="at most 1024"):
        mc.estimate("maxpool(n=10000)", method="qmc")

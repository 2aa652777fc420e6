"""lppool: (sum |x|^p)^(1/p) over n iid normals, against scipy's chi and noncentral chi-square laws, a 2-D integral."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

import momentcalc as mc
from momentcalc import MomentcalcError


def l2_truth(n: int, mu: float, sigma: float) -> tuple[float, float]:
    """(mean, std) of sigma sqrt(X), X ~ noncentral chi^2_n(n mu^2 / sigma^2), by scipy's expectation."""
    if mu == 0.0:
        law = stats.chi(n)
        return sigma * law.mean(), sigma * law.std()
    law = stats.ncx2(n, n * mu * mu / (sigma * sigma))
    mean = sigma * law.expect(np.sqrt, epsabs=1e-13, epsrel=1e-13)
    return mean, math.sqrt(n * (sigma * sigma + mu * mu) - mean * mean)


@pytest.mark.parametrize("spec, n, mu, sigma", [
    ("lppool(p=2,k=2)", 4, 0.0, 1.0), ("lppool(p=2,k=3)", 9, 0.0, 2.0), ("lppool(p=2,n=5)", 5, 0.7, 1.5),
    ("lppool(p=2,k=2,dims=1)", 2, -2.0, 0.5), ("lppool(p=2,n=4096)", 4096, 0.0, 1.0),
])  # fmt: skip
def test_l2_pool_is_certified_against_the_chi_laws(spec, n, mu, sigma):
    mean, std = l2_truth(n, mu, sigma)
    e = mc.estimate(spec, mu=mu, sigma=sigma, method="certified").estimates[0]
    assert e.mean == pytest.approx(mean, rel=1e-10) and e.std == pytest.approx(std, rel=1e-8)
    assert e.grad_sq == 1.0 / n  # x_1^2 / |x|^2: the n shares sum to 1


@pytest.mark.parametrize("spec, p", [("lppool(p=2,k=2)", 2.0), ("lppool(p=3,k=2,dims=1)", 3.0)])
def test_monte_carlo_agrees(spec, p):
    n = 4 if "dims" not in spec else 2
    if p == 2.0:
        mean, std = l2_truth(n, 0.0, 1.0)
        grad = 1 / n
    else:  # two inputs: a 2-D integral over the positive quadrant, four times (|x| is even)
        phi = stats.norm.pdf
        moment = lambda f: 4 * integrate.dblquad(lambda a, b: f(a, b) * phi(a) * phi(b), 0, 12, 0, 12)[0]  # noqa: E731
        mean = moment(lambda a, b: (a**3 + b**3) ** (1 / 3))
        std = math.sqrt(moment(lambda a, b: (a**3 + b**3) ** (2 / 3)) - mean * mean)
        grad = moment(lambda a, b: (a / (a**3 + b**3) ** (1 / 3)) ** 4)
    e = mc.estimate(spec, method="montecarlo", samples=1 << 16, seed=5).estimates[0]
    assert abs(e.mean - mean) <= 4.5 * e.mean_se and abs(e.std - std) <= 4.5 * e.std_se
    assert abs(e.grad_sq - grad) <= 4.5 * e.grad_sq_se


def test_other_powers_are_sampled_only_and_the_window_is_checked():
    assert [e.method for e in mc.estimate("lppool(p=3,k=2)", samples=1 << 12).estimates] == ["montecarlo"]
    # after relu it is sampled (tests/test_several_pipelines.py); nothing but normalize may follow it, and that
    # only where it comes first
    for bad in ("lppool(p=2)", "lppool(p=2,k=2,n=4)", "lppool(p=0.5,k=2)", "relu | lppool(p=2,k=2) | normalize"):
        with pytest.raises(MomentcalcError):
            mc.estimate(bad)

"""max_normal.py: the max of n standard normals by a vectorised Gauss-Kronrod rule, held to mpmath; its bound
follows the rule's own error when the rule is starved; it is what quadrature runs for maxpool(n) and minpool."""

import math
from functools import lru_cache

import mpmath as mp
import numpy as np
import pytest

from momentcalc.estimators import max_normal, quadrature
from momentcalc.spec import parse


@pytest.mark.parametrize("k", range(32))
def test_kronrod_exact_to_degree_31_and_gauss_to_19(k):
    want = 2.0 / (k + 1) if k % 2 == 0 else 0.0  # int_-1^1 x^k dx
    powers = max_normal.NODES**k
    assert powers @ max_normal.KRONROD == pytest.approx(want, abs=4e-16)
    gauss = powers @ max_normal.GAUSS
    if k < 20:
        assert gauss == pytest.approx(want, abs=4e-16)
    elif k % 2 == 0:
        assert abs(gauss - want) > 1e-7  # not a rule of higher degree: the Gauss nodes are the 10-point ones


def test_gauss_weights_sit_on_the_ten_point_gauss_nodes():
    nodes, weights = np.polynomial.legendre.leggauss(10)
    on = max_normal.GAUSS != 0.0
    assert np.allclose(max_normal.NODES[on], nodes, rtol=0, atol=1e-15)
    assert np.allclose(max_normal.GAUSS[on], weights, rtol=0, atol=1e-15)


@lru_cache
def _truth(n: int) -> tuple[float, float]:
    """Mean and std of the max of n standard normals by mpmath at 25 digits, split about the bulk."""
    with mp.workdps(25):
        f = lambda x, k: x**k * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1)  # noqa: E731
        mid = math.sqrt(2.0 * math.log(n))
        cuts = [-mp.inf, mid - 4, mid - 1, mid, mid + 1, mid + 4, mp.inf]
        m1 = mp.quad(lambda x: f(x, 1), cuts)
        var = mp.quad(lambda x: (x - m1) ** 2 * f(x, 0), cuts)
        return m1, mp.sqrt(var)


@pytest.mark.parametrize("n", [2, 7, 10**4, 10**12])
def test_within_its_bounds_of_mpmath(n):
    mean, std, mean_err, std_err = max_normal.moments(n)
    want_mean, want_std = _truth(n)
    assert abs(mean - want_mean) <= mean_err and abs(std - want_std) <= std_err
    assert mean_err < 4e-14 and std_err < 4e-14  # about 100 ulps: the rounding of a thousand nodes, not slack


@pytest.mark.parametrize("pieces, rounds, at_least", [(1, 0, 1e-3), (4, 0, 1e-9)])
@pytest.mark.parametrize("n", [2, 10**4])
def test_a_starved_rule_says_so_in_its_bound(monkeypatch, n, pieces, rounds, at_least):
    monkeypatch.setattr(max_normal, "_PIECES", pieces)
    monkeypatch.setattr(max_normal, "_ROUNDS", rounds)
    mean, std, mean_err, std_err = max_normal.moments(n)
    want_mean, want_std = _truth(n)
    assert abs(mean - want_mean) <= mean_err and abs(std - want_std) <= std_err
    assert max(mean_err, std_err) > at_least


@pytest.mark.parametrize("n", [9, 10**4, 10**6])
def test_evaluates_a_few_hundred_nodes(monkeypatch, n):
    # The point of the module: QUADPACK's passes took about 3,200 scalar evaluations for the same bound.
    seen = []
    density = max_normal._density
    monkeypatch.setattr(max_normal, "_density", lambda n, b, *rest: seen.append(b.size) or density(n, b, *rest))
    max_normal.moments(n)
    assert sum(seen) <= 1200


@pytest.mark.parametrize("spec, mu, sigma, sign", [("maxpool(n=7)", 0.7, 1.9, 1.0), ("minpool(n=7)", -3.0, 0.5, -1.0)])
def test_quadrature_runs_it_for_max_and_min_pooling(spec, mu, sigma, sign):
    mean, std, mean_err, std_err = quadrature.estimate_moments(parse(spec), mu, sigma)
    m1, s1 = _truth(7)
    with mp.workdps(25):
        want_mean, want_std = mu + sign * sigma * m1, sigma * s1
    assert abs(mean - want_mean) <= mean_err and abs(std - want_std) <= std_err
    assert (mean, std) == pytest.approx(max_normal.std_moments(mu, sign * sigma, 7)[:2], abs=0.0)

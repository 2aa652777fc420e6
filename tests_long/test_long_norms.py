"""rmsnorm at a shifted input: quadrature against scipy's dblquad over the noncentral chi-square law.

Why in tests_long/: the reference (a dblquad to 1e-10) and the estimate's run take about 18 s of CPU, one test;
tests/test_norms.py checks rmsnorm's exact methods against the beta and chi-square laws in the main suite.
"""

from scipy import stats

import momentcalc as mc


def test_rmsnorm_quadrature_at_a_shifted_input_against_scipy():
    # d = 5, mu = 0.5: E[y] = E[sqrt(5) x_1 / sqrt(x_1^2 + sigma^2 Q)], Q ~ ncx2(4, 4 mu^2 / sigma^2), by dblquad.
    import math

    from scipy import integrate

    mu, sigma, d = 0.5, 1.0, 5
    law = stats.ncx2(d - 1, (d - 1) * mu * mu / sigma**2)
    phi = stats.norm(mu, sigma).pdf
    mean = integrate.dblquad(
        lambda q, x: math.sqrt(d) * x / math.sqrt(x * x + q) * phi(x) * law.pdf(q),
        mu - 10,
        mu + 10,
        0,
        200,
        epsabs=1e-12,
        epsrel=1e-10,
    )[0]
    found = mc.estimate(f"rmsnorm(d={d})", mu=mu, sigma=sigma, samples=1 << 16)
    by = {e.method: e for e in found.estimates}
    assert set(by) == {"quadrature", "montecarlo"} and found.agree
    assert abs(by["quadrature"].mean - mean) <= 2 * by["quadrature"].mean_se + 1e-12
    # at mu = 0 the quadrature meets the exact values
    q = mc.estimate("rmsnorm(d=64)", method="quadrature").estimates[0]
    assert abs(q.std - 1) <= 2 * q.std_se and abs(q.grad_sq - 63 / 62) <= 2 * q.grad_sq_se and q.std_se < 1e-8

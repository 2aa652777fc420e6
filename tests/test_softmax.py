"""softmax(n, t): one output of softmax over n iid normal logits; n = 2 against mpmath (p_1 is a sigmoid there)."""

import mpmath as mp
import pytest
from typer.testing import CliRunner

import momentcalc as mc
from momentcalc import MomentcalcError, catalog, engine
from momentcalc.cli import app

mp.mp.dps = 25


def two_logits(sigma: float, t: float) -> dict:
    """n = 2: p_1 = sigmoid((x_1 - x_2) / t), x_1 - x_2 ~ N(0, 2 sigma^2); sum_j J_j1^2 = 2 p_1^2 (1 - p_1)^2 / t^2."""
    s = mp.sqrt(2) * sigma / t

    def expect(f):
        return mp.quad(lambda z: f(1 / (1 + mp.exp(-s * z))) * mp.npdf(z), [-mp.inf, 0, mp.inf])

    second = expect(lambda p: p * p)
    return {
        "std": float(mp.sqrt(second - mp.mpf(1) / 4)),
        "grad_sq": float(expect(lambda p: 2 * p * p * (1 - p) ** 2) / t**2),
    }


@pytest.mark.parametrize("mu, sigma, t", [(0.0, 1.0, 1.0), (3.0, 2.0, 0.5)])
def test_two_logits_against_mpmath(mu, sigma, t):
    want = two_logits(sigma, t)
    found = mc.estimate(f"softmax(n=2,t={t})", mu=mu, sigma=sigma, samples=1 << 18, seed=2)
    closed, quad, sampled = found.estimates
    assert closed.method == "closed" and closed.mean == 0.5 and found.agree
    assert abs(quad.std - want["std"]) <= max(2 * quad.std_se, 1e-15)
    assert abs(quad.grad_sq - want["grad_sq"]) <= max(2 * quad.grad_sq_se, 1e-15)
    assert abs(sampled.std - want["std"]) <= 4.5 * sampled.std_se
    assert abs(sampled.grad_sq - want["grad_sq"]) <= 4.5 * sampled.grad_sq_se


@pytest.mark.parametrize("n", [16, 4096])
def test_the_mean_is_one_over_n(n):
    # quadrature integrates the mean as it integrates E[p_1^2]: it must find 1/n, which symmetry gives exactly
    # sigma = 0.8: Monte Carlo is trusted from 256 e^(4 * 0.64) = 3314 samples (ops/softmax.py)
    found = mc.estimate(f"softmax(n={n})", mu=-1.0, sigma=0.8, samples=1 << 12)
    closed, quad, sampled = found.estimates
    assert closed.mean == 1 / n and closed.std is None
    assert abs(quad.mean - 1 / n) <= max(2 * quad.mean_se, 1e-15 / n) and quad.mean_se < 1e-8 / n
    assert abs(sampled.mean - 1 / n) <= 4.5 * sampled.mean_se and found.agree


def test_softmax_declines_what_it_cannot_do_and_says_why():
    # each refusal is the op's own one-line reason, and `list` shows it
    with pytest.raises(MomentcalcError, match=r"^certified declines softmax\(n=4\): .*no ball enclosure"):
        mc.estimate("softmax(n=4)", method="certified")
    with pytest.raises(MomentcalcError, match=r"^qmc declines softmax\(n=4\): quasi-Monte Carlo does not sample"):
        mc.estimate("softmax(n=4)", method="qmc")
    with pytest.raises(MomentcalcError, match=r"quadrature declines .*sigma / t = 10 is above 4: E\[e\^\(k x / t\)\]"):
        mc.estimate("softmax(n=4,t=0.1)", method="quadrature")  # sigma / t = 10: the tails outgrow the range
    support = engine.methods.method_support(catalog.lookup("softmax"))
    assert support["certified"].startswith("E[p^2] has no closed form") and support["quadrature"] is None
    listed = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "softmax: certified declines: E[p^2] has no closed form" in listed.stdout
    with pytest.raises(MomentcalcError, match="comes first"):
        mc.estimate("softmax(n=4) | relu")


@pytest.mark.parametrize("n", [256, 4096])
def test_the_mean_is_one_over_n_at_a_narrow_spread(n):
    # sigma / t = 0.25: the inner integral of expm1(-u e^a) peaks near a = s^2, far below -log(u) for small u;
    # split only at -log(u), quad missed that peak and the mean missed 1/n by 6e-9 relative, beyond its bound
    found = mc.estimate(f"softmax(n={n},t=4)", method="quadrature")
    (quad,) = found.estimates
    assert abs(quad.mean - 1 / n) <= max(2 * quad.mean_se, 1e-15 / n) and quad.mean_se < 1e-8 / n


def test_monte_carlo_declines_a_sample_too_small_for_heavy_tails():
    # sigma / t = 1.5: 4096 samples put 4 of 100 stds beyond 4.5 SEs (ops/softmax.py); declined before any drawing,
    # with the count it trusts: 256 e^(4 * 1.5^2) = 256 e^9
    with pytest.raises(MomentcalcError, match=r"montecarlo declines .* heavy-tailed .* at least 2074390 samples"):
        mc.estimate("softmax(n=4096)", sigma=1.5, method="montecarlo", samples=4096)
    with pytest.raises(MomentcalcError, match=r"at least 2074390 samples"):
        mc.estimate("softmax(n=4096,t=2)", sigma=3.0, method="montecarlo")  # the default count too; t counts
    # bounded outputs: at n = 2 the bound is 256 n^2 = 1024 samples, whatever the spread
    found = mc.estimate("softmax(n=2,t=0.5)", sigma=2.0, method="montecarlo", samples=1024)
    assert found.estimates[0].samples == 1024

"""residual(f=SPEC, tau): sqrt(1 - tau) x + sqrt(tau) F(x), against closed forms for F = relu | normalize."""

import math

import mpmath as mp
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError


def relu_branch_truth(tau: float) -> dict:
    """At N(0, 1): F = (relu(x) - m) / s, m = 1/sqrt(2 pi), s^2 = 1/2 - 1/(2 pi); E[x relu(x)] = 1/2, E[F] = 0,
    E[F^2] = 1, F' = 1{x > 0} / s."""
    s = math.sqrt(0.5 - 1 / (2 * math.pi))
    a, b = math.sqrt(1 - tau), math.sqrt(tau)
    second = a * a + 2 * a * b * 0.5 / s + b * b
    grad = a * a + 2 * a * b * 0.5 / s + b * b * 0.5 / (s * s)
    return {"mean": 0.0, "std": math.sqrt(second), "grad_sq": grad}


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_relu_branch_by_quadrature_and_monte_carlo(tau):
    want = relu_branch_truth(tau)
    found = mc.estimate(f"residual(f=relu | normalize,tau={tau})", samples=1 << 18, seed=4)
    assert [e.method for e in found.estimates] == ["quadrature", "montecarlo"] and found.agree
    quad, sampled = found.estimates
    for quantity, value in want.items():
        assert abs(getattr(quad, quantity) - value) <= max(2 * getattr(quad, quantity + "_se"), 1e-13)
        assert abs(getattr(sampled, quantity) - value) <= 4.5 * getattr(sampled, quantity + "_se")


def test_a_shifted_input_against_mpmath():
    mu, sigma, tau = 0.5, 2.0, 0.3
    a, b = math.sqrt(1 - tau), math.sqrt(tau)

    def expect(f):
        return mp.quad(lambda x: f(x) * mp.npdf(x, mu, sigma), [-mp.inf, mu, mp.inf])

    mean = expect(lambda x: a * x + b * mp.tanh(x))
    std = mp.sqrt(expect(lambda x: (a * x + b * mp.tanh(x) - mean) ** 2))
    grad = expect(lambda x: (a + b / mp.cosh(x) ** 2) ** 2)
    e = mc.estimate(f"residual(f=tanh,tau={tau})", mu=mu, sigma=sigma, method="quadrature").estimates[0]
    assert (e.mean, e.std) == (pytest.approx(float(mean), rel=1e-12), pytest.approx(float(std), rel=1e-12))
    assert e.grad_sq == pytest.approx(float(grad), rel=1e-8)  # a numerical derivative is not used: F' is tanh's own


@pytest.mark.parametrize(
    "bad", ["residual(f=relu|normalize,tau=0.5)", "residual(f=maxpool(k=2),tau=0.5)", "residual(f=relu,tau=2)"]
)
def test_bad_branches_are_refused(bad):
    with pytest.raises(MomentcalcError):
        mc.estimate(bad)


def test_residual_declines_what_it_cannot_do():
    for method in ("certified", "closed", "qmc"):
        with pytest.raises(MomentcalcError):
            mc.estimate("residual(f=relu,tau=0.5)", method=method)

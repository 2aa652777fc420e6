"""Gated units y = x * h(g), value x and gate g independent N(mu, sigma^2): every method against mpmath.

The expected values are one-dimensional Gaussian integrals of the gate function h, computed here with mpmath
at 30 digits, and combined by independence (E[y] = mu E[h], E[y^2] = (mu^2 + sigma^2) E[h^2]; the value's
backward constant E[h^2], the gate's (mu^2 + sigma^2) E[h'^2]). h and h' are written here from their
textbook definitions, not taken from the package.
"""

import math

import mpmath as mp
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError

mp.mp.dps = 30


# spec -> (h, h') in mpmath
def _sigmoid(t):
    return 1 / (1 + mp.exp(-t))


def _swish(beta):
    return (
        lambda g: g * _sigmoid(beta * g),
        lambda g: _sigmoid(beta * g) + beta * g * _sigmoid(beta * g) * (1 - _sigmoid(beta * g)),
    )


GATES = {
    "glu": (_sigmoid, lambda g: _sigmoid(g) * (1 - _sigmoid(g))),
    "swiglu": _swish(1),
    "swiglu(beta=2.5)": _swish(2.5),
    "geglu": (lambda g: g * mp.ncdf(g), lambda g: mp.ncdf(g) + g * mp.npdf(g)),
    "reglu": (lambda g: mp.mpf(max(g, 0)), lambda g: mp.mpf(1 if g > 0 else 0)),
    "bilinear": (lambda g: g, lambda g: mp.mpf(1)),
}
CLOSED = ["reglu", "bilinear"]  # gates whose moments have closed forms: the closed method applies too
INPUTS = [(0.0, 1.0), (0.5, 2.0), (-1.25, 0.5)]


def gaussian(f, mu, sigma):
    density = lambda t: mp.exp(-((t - mu) ** 2) / (2 * sigma**2)) / (sigma * mp.sqrt(2 * mp.pi))  # noqa: E731
    cuts = sorted({-mp.inf, mu - 5 * sigma, mu, 0, mu + 5 * sigma, mp.inf})  # 0: relu's kink
    return mp.quad(lambda t: f(t) * density(t), cuts)


def with_wrt(spec: str, wrt: str) -> str:
    return f"{spec[:-1]},wrt={wrt})" if spec.endswith(")") else f"{spec}(wrt={wrt})"


def truth(spec: str, mu: float, sigma: float) -> dict:
    h, dh = GATES[spec]
    m_h = gaussian(h, mu, sigma)
    s_h = gaussian(lambda t: h(t) ** 2, mu, sigma)
    g_h = gaussian(lambda t: dh(t) ** 2, mu, sigma)
    second_x = mp.mpf(mu) ** 2 + mp.mpf(sigma) ** 2
    mean = mu * m_h
    return {
        "mean": float(mean),
        "std": float(mp.sqrt(second_x * s_h - mean**2)),
        "value": float(s_h),
        "gate": float(second_x * g_h),
    }


@pytest.mark.parametrize("mu, sigma", INPUTS)
@pytest.mark.parametrize("spec", sorted(GATES))
def test_exact_methods_match_mpmath(spec, mu, sigma):
    want = truth(spec, mu, sigma)
    for wrt in ("value", "gate"):
        found = mc.estimate(with_wrt(spec, wrt), mu=mu, sigma=sigma, methods=("certified", "quadrature"))
        by = {e.method: e for e in found.estimates}
        assert set(by) == {"certified", "quadrature"}
        cert = by["certified"]
        for quantity, key in (("mean", "mean"), ("std", "std"), ("grad_sq", wrt)):
            lo, hi = getattr(cert, quantity + "_interval")
            assert lo <= want[key] <= hi or want[key] == pytest.approx(getattr(cert, quantity), abs=1e-300), quantity
            assert getattr(cert, quantity) == pytest.approx(want[key], rel=1e-15, abs=1e-300), quantity
            q, q_err = getattr(by["quadrature"], quantity), getattr(by["quadrature"], quantity + "_se")
            assert abs(q - want[key]) <= max(2 * q_err, 1e-15 * abs(want[key])), (quantity, q, want[key], q_err)


@pytest.mark.parametrize("mu, sigma", INPUTS)
@pytest.mark.parametrize("spec", CLOSED)
def test_closed_forms_match_mpmath(spec, mu, sigma):
    want = truth(spec, mu, sigma)
    for wrt in ("value", "gate"):
        e = mc.estimate(with_wrt(spec, wrt), mu=mu, sigma=sigma, method="closed").estimates[0]
        for quantity, key in (("mean", "mean"), ("std", "std"), ("grad_sq", wrt)):
            assert getattr(e, quantity) == pytest.approx(want[key], rel=1e-13, abs=1e-300), quantity


@pytest.mark.parametrize("spec", sorted(GATES))
def test_monte_carlo_samples_the_op_within_its_standard_errors(spec):
    mu, sigma = 0.5, 2.0
    want = truth(spec, mu, sigma)
    for wrt in ("value", "gate"):
        e = mc.estimate(with_wrt(spec, wrt), mu=mu, sigma=sigma, method="montecarlo", samples=1 << 18, seed=7)
        e = e.estimates[0]
        assert abs(e.mean - want["mean"]) <= 4.5 * e.mean_se
        assert abs(e.std - want["std"]) <= 4.5 * e.std_se
        assert abs(e.grad_sq - want[wrt]) <= 4.5 * e.grad_sq_se
        assert e.mean_se < 0.02 and e.grad_sq_se < 0.05 * want[wrt]  # the check above is not vacuous


def test_an_op_of_several_inputs_is_refused_in_a_pipeline_and_by_qmc():
    with pytest.raises(MomentcalcError, match="comes first"):
        mc.estimate("relu | glu")
    with pytest.raises(MomentcalcError, match="several inputs"):
        mc.estimate("glu", method="qmc")


def test_swiglu_at_n01_has_edm2s_silu_rms():
    # Karras et al. 2024 (EDM2, "Analyzing and Improving the Training Dynamics of Diffusion Models") divide SiLU by
    # 0.596, its RMS on N(0, 1); swiglu at N(0, 1) has mean 0 and E[y^2] = E[x^2] E[silu(g)^2] = E[silu(g)^2].
    found = mc.estimate("swiglu", method="certified").estimates[0]
    assert found.mean == 0.0 and round(found.std, 3) == 0.596


def test_bilinear_in_closed_form():
    # x g with x, g iid N(mu, sigma^2): E = mu^2, Var = (mu^2 + sigma^2)^2 - mu^4, E[g^2] = mu^2 + sigma^2.
    mu, sigma = 0.5, 2.0
    e = mc.estimate("bilinear", mu=mu, sigma=sigma, method="certified").estimates[0]
    assert (e.mean, e.std, e.grad_sq) == (0.25, math.sqrt(4.25**2 - 0.0625), 4.25)


@pytest.mark.parametrize("spec", ["swiglu", "reglu"])
def test_normalize_after_a_gated_unit(spec):
    # (y - E[y]) / std(y): mean 0, std 1, and the value's backward constant E[h^2] / Var[y].
    mu, sigma = 0.5, 2.0
    want = truth(spec, mu, sigma)
    found = mc.estimate(f"{spec} | normalize", mu=mu, sigma=sigma, samples=1 << 18, seed=9)
    by = {e.method: e for e in found.estimates}
    assert {"quadrature", "montecarlo"} <= set(by) and "certified" not in by and found.agree
    quad, sampled = by["quadrature"], by["montecarlo"]
    assert quad.mean == pytest.approx(0.0, abs=1e-13) and quad.std == pytest.approx(1.0, rel=1e-13)
    assert quad.grad_sq == pytest.approx(want["value"] / want["std"] ** 2, rel=1e-12)
    assert abs(sampled.grad_sq - want["value"] / want["std"] ** 2) <= 4.5 * sampled.grad_sq_se
    with pytest.raises(MomentcalcError, match="comes first"):
        mc.estimate(f"{spec} | relu")


def test_list_shows_closed_only_where_every_factor_has_closed_forms():
    from momentcalc.cli.list_ops import _op_rows

    rows = {name: methods for name, _, _, methods in _op_rows()}
    assert rows["reglu"] == rows["bilinear"] == "certified, closed¹, quadrature, montecarlo"
    assert rows["glu"] == rows["swiglu"] == rows["geglu"] == "certified, quadrature, montecarlo"
    for spec in ("glu", "geglu", "swiglu"):  # and estimate agrees: closed declines
        with pytest.raises(MomentcalcError):
            mc.estimate(spec, method="closed")

"""The backward constant E[f'(X)^2]: closed forms, quadrature against mpmath, Monte Carlo within z * SE, chain rule."""

import math

import mp_activations as ref
import mpmath as mp
import numpy as np
import pytest
from test_activations import MU, SIGMA, SPECS

import momentcalc as mc
from momentcalc.estimators import closed, montecarlo, quadrature
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5


@pytest.mark.parametrize("spec", SPECS)
def test_quadrature_grad_sq_matches_mpmath(spec):
    _, _, want = ref.moments(SPECS[spec][0], MU, SIGMA, SPECS[spec][1])
    value, err = quadrature.grad_sq(parse(spec), MU, SIGMA)
    assert abs(value - want) <= 1e-12 and err < 1e-10


@pytest.mark.parametrize(
    "spec",
    [
        "relu",
        "leaky_relu(slope=0.2)",
        "identity",
        "abs",
        "relu6",
        "hardtanh(min_val=-0.5,max_val=2)",
        "hardsigmoid",
        "hardswish",
        "elu(alpha=0.5)",
        "celu(alpha=0.3)",
        "selu",
        "erf",
    ],
)
def test_closed_grad_sq_matches_mpmath_and_quadrature(spec):
    _, _, want = ref.moments(SPECS[spec][0], MU, SIGMA, SPECS[spec][1])
    got, bound = closed.grad_sq(parse(spec), MU, SIGMA)
    assert abs(got - want) <= 1e-12
    assert bound < 1e-13 * max(abs(got), 1.0)  # a bound of a few ulps, not a shrug
    assert abs(got - quadrature.grad_sq(parse(spec), MU, SIGMA)[0]) <= 1e-12


def test_textbook_closed_forms():
    # relu: P(X > 0) = Phi(mu / sigma); leaky: that plus slope^2 P(X < 0); identity 1.
    phi = 0.5 * math.erfc(-MU / SIGMA / math.sqrt(2))
    assert closed.grad_sq(parse("relu"), MU, SIGMA)[0] == pytest.approx(phi, abs=1e-15)
    leaky = closed.grad_sq(parse("leaky_relu(slope=0.2)"), MU, SIGMA)[0]
    assert leaky == pytest.approx(phi + 0.04 * (1 - phi), abs=1e-15)
    assert closed.grad_sq(parse("identity"), MU, SIGMA) == (1.0, 0.0)  # exact: f' = 1


@pytest.mark.parametrize("spec", SPECS)
def test_monte_carlo_grad_sq_within_z_se(spec):
    _, _, want = ref.moments(SPECS[spec][0], MU, SIGMA, SPECS[spec][1])
    s = montecarlo.run(montecarlo.compile_program(parse(spec), MU, SIGMA), RunSettings(samples=1 << 17, seed=11))
    if s.grad_sq_se == 0.0:  # a constant derivative: identity, abs
        assert s.grad_sq == pytest.approx(want, abs=1e-15)
    else:
        assert abs(s.grad_sq - want) <= Z * s.grad_sq_se


def test_chain_rule_through_normalize_and_dropout_matches_mpmath():
    # y = tanh((leaky(x) - m) / s) after dropout(p) with 1/sqrt(p) scaling on the kept values:
    # dy/dx = tanh'(.) * leaky'(x) / s / sqrt(p) when kept, 0 when dropped.
    spec, p, slope = "leaky_relu(slope=0.2) | normalize | dropout(p=0.8) | tanh", 0.8, mp.mpf("0.2")
    m, s, _ = ref.moments("leaky_relu", MU, SIGMA, (("slope", "0.2"),))
    with mp.workdps(30):
        leaky = lambda x: x if x > 0 else slope * x  # noqa: E731
        dleaky = lambda x: 1 if x > 0 else slope  # noqa: E731
        c = mp.sqrt(p)
        g = lambda x: (mp.sech((leaky(x) - m) / s / c) ** 2 * dleaky(x) / s / c) ** 2 * mp.npdf(x, MU, SIGMA)  # noqa: E731
        want = float(p * mp.quad(g, [-mp.inf, MU - 8 * SIGMA, 0, MU + 8 * SIGMA, mp.inf]))
    r = mc.estimate(spec, mu=MU, sigma=SIGMA, samples=1 << 18, seed=2)
    assert r.method == "quadrature" and abs(r.grad_sq - want) <= 1e-10
    mc_est = next(e for e in r.estimates if e.method == "montecarlo")
    assert abs(mc_est.grad_sq - want) <= Z * mc_est.grad_sq_se
    assert any(c.quantity == "grad_sq" for c in r.checks) and r.agree


def test_result_carries_grad_sq_and_json_key():
    r = mc.estimate("relu", samples=1 << 16, seed=1)
    # certified (the record), closed, quadrature and Monte Carlo: 6 pairs; certified's se is half its interval.
    assert r.grad_sq == 0.5 and r.grad_sq_se <= 1.2e-16 and r.grad_sq_record.method == "certified"
    assert [c.quantity for c in r.checks].count("grad_sq") == 6
    d = r.to_dict()
    assert d["grad_sq"] == 0.5 and d["grad_sq_se"] == r.grad_sq_se
    assert all(e["grad_sq"] is not None for e in d["estimates"])


def test_no_grad_sq_for_window_ops():
    r = mc.estimate("relu | maxpool(k=2)", samples=1 << 14)
    assert r.grad_sq is None and r.grad_sq_se is None and r.to_dict()["grad_sq"] is None


def test_user_callable_with_its_derivative_and_with_central_differences():
    f = lambda x: np.tanh(x)  # noqa: E731
    _, _, want = ref.moments("tanh", 0.0, 1.0)
    given = mc.estimate(f, grad=lambda x: 1 - np.tanh(x) ** 2, samples=1 << 16)
    numeric = mc.estimate(f, samples=1 << 16)
    assert abs(given.grad_sq - want) <= 1e-12 and given.estimates[0].notes == ()
    assert abs(numeric.grad_sq - want) <= 1e-9
    assert all("numerical derivative" in e.notes[0] for e in numeric.estimates)
    assert given.agree and numeric.agree

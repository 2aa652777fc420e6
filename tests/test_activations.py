"""Activations: quadrature and closed forms against mpmath (30 digits), Monte Carlo within z * SE, flags, bad input."""

import math

import mp_activations as ref
import numpy as np
import op_cases
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError, catalog
from momentcalc.estimators import NotApplicable, closed, dispatch, montecarlo, quadrature
from momentcalc.estimators.dispatch import CODES
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5
ACTIVATIONS = {op.name: op for op in catalog.jitted_activations()}
MU, SIGMA = 0.3, 1.4

# spec -> (reference name, reference params)
SPECS = {c.spec: (c.ref, c.params) for c in op_cases.suite("moments")}


def test_every_builtin_activation_is_covered_here():
    assert {parse(s).last.name for s in SPECS} == set(ACTIVATIONS)


@pytest.mark.parametrize("spec", SPECS)
def test_quadrature_matches_mpmath(spec):
    want_mean, want_std, _ = ref.moments(*SPECS[spec][:1], MU, SIGMA, SPECS[spec][1])
    mean, std, mean_err, std_err = quadrature.estimate_moments(parse(spec), MU, SIGMA)
    assert abs(mean - want_mean) <= 1e-12 and abs(std - want_std) <= 1e-12
    assert mean_err < 1e-10 and std_err < 1e-10


@pytest.mark.parametrize("spec", SPECS)
def test_closed_forms_match_mpmath_and_quadrature(spec):
    want_mean, want_std, _ = ref.moments(SPECS[spec][0], MU, SIGMA, SPECS[spec][1])
    try:
        got = closed.estimate_moments(parse(spec), MU, SIGMA)
    except NotApplicable:
        return
    assert abs(got.mean - want_mean) <= 1e-12
    if got.std is not None:
        assert abs(got.std - want_std) <= 1e-12


@pytest.mark.parametrize(
    "spec, mu, with_std",
    [
        ("identity", 2.0, True),
        ("leaky_relu", 3.0, True),
        ("abs", -0.4, True),
        ("relu6", 5.5, True),
        ("hardtanh", 0.9, True),
        ("hardsigmoid", -2.0, True),
        ("hardswish", 1.0, True),
        ("elu", -1.0, True),
        ("selu", 0.0, True),
        ("celu(alpha=2)", 0.5, True),
        ("gelu", -0.7, False),
        ("erf", 1.1, False),
        ("erf", 0.0, True),
        ("tanh", 0.0, False),
        ("softsign", 0.0, False),
    ],
)
def test_which_closed_forms_exist(spec, mu, with_std):
    name, params = parse(spec).last.name, tuple((k, str(v)) for k, v in parse(spec).last.params)
    want_mean, want_std, _ = ref.moments(name, mu, 0.8, params)
    got = closed.estimate_moments(parse(spec), mu, 0.8)
    assert abs(got.mean - want_mean) <= 1e-12
    assert (got.std is not None) == with_std
    if with_std:
        assert abs(got.std - want_std) <= 1e-12


def test_closed_forms_keep_their_digits_far_in_the_tails():
    # relu6 at mu = 40: the output is 6 except with probability Phi(-34/1); mean 6 - tiny.
    got = closed.estimate_moments(parse("relu6"), 40.0, 1.0)
    assert got.mean == 6.0 and got.std < 1e-100
    # celu with a small alpha: exp(x / alpha) needs the log-space Gaussian tail.
    want_mean, want_std, _ = ref.moments("celu", 0.0, 1.0, (("alpha", "0.01"),))
    got = closed.estimate_moments(parse("celu(alpha=0.01)"), 0.0, 1.0)
    assert abs(got.mean - want_mean) <= 1e-12 and abs(got.std - want_std) <= 1e-12


def test_selu_fixed_point():
    """SELU maps N(0, 1) to mean 0, std 1 (Klambauer et al. 2017).

    With the published 32-digit constants mpmath gives |mean| ~ 1e-32 and |var - 1| ~ 1e-32; rounded to
    doubles, mean = 2.7e-17 and var = 1 - 1.3e-16 (mpmath, 40 digits). So 1e-15 is what double precision allows.
    """
    for method in ("closed", "quadrature"):
        r = mc.estimate("selu", method=method)
        assert abs(r.mean) <= 1e-15 and abs(r.std - 1.0) <= 1e-15, method
    mean, std, _ = ref.moments("selu", 0.0, 1.0)
    assert abs(mean) <= 1e-15 and abs(std - 1.0) <= 1e-15


@pytest.mark.parametrize("spec", SPECS)
def test_monte_carlo_agrees_within_z_se(spec):
    want_mean, want_std, _ = ref.moments(SPECS[spec][0], MU, SIGMA, SPECS[spec][1])
    got = montecarlo.run(montecarlo.compile_program(parse(spec), MU, SIGMA), RunSettings(samples=1 << 18, seed=7))
    assert abs(got.mean - want_mean) <= Z * got.mean_se
    assert abs(got.std - want_std) <= Z * got.std_se


def test_jitted_dispatch_matches_the_python_functions_value_by_value():
    x = np.concatenate([np.linspace(-8, 8, 161), [-800.0, 800.0]])
    for name, act in ACTIVATIONS.items():
        a, b = (-1.0, 1.0) if name == "hardtanh" else (0.7, 0.0)
        if name == "gelu":
            a = 1.0
        want = np.array([act.f(v, a, b) for v in x])
        want_grad = np.array([act.df(v, a, b) for v in x])
        np.testing.assert_allclose(
            dispatch.activation_array(CODES[name], a, b, x, False), want, rtol=1e-14, atol=1e-300, err_msg=name
        )
        np.testing.assert_allclose(
            dispatch.activation_array(CODES[name], a, b, x, True), want_grad, rtol=1e-14, atol=1e-300, err_msg=name
        )


def test_monotone_flags_and_kinks():
    not_monotone = {"gelu", "silu", "swish", "mish", "hardswish", "abs"}
    assert {n for n, a in ACTIVATIONS.items() if not a.monotone} == not_monotone
    kinks = {n: a.kinks(-1.0, 1.0) for n, a in ACTIVATIONS.items()}
    assert kinks["hardtanh"] == (-1.0, 1.0) and kinks["relu6"] == (0.0, 6.0) and kinks["hardswish"] == (-3.0, 3.0)
    assert kinks["abs"] == kinks["leaky_relu"] == kinks["elu"] == kinks["celu"] == (0.0,)


@pytest.mark.parametrize("spec", SPECS)
def test_declared_shapes_hold_for_the_mpmath_derivative(spec):
    # monotone: f' >= 0 everywhere; valley (the Monte Carlo kernels take a max pool's max at the window's least
    # or greatest input): f' <= 0, then >= 0. Signs of the independent mpmath f' on a grid, kinks included.
    name, params = SPECS[spec]
    f, df, _ = ref.make(name, **dict(params))
    grid = np.linspace(-30.0, 30.0, 1201)
    signs = [np.sign(float(df(ref.mp.mpf(x)))) for x in grid]
    info = ACTIVATIONS[parse(spec).last.name]
    assert not (info.monotone and info.valley)
    if info.monotone:
        assert min(signs) >= 0
    if info.valley:
        first_rise = next(i for i, s in enumerate(signs) if s > 0)
        assert max(signs[:first_rise]) <= 0 and min(signs[first_rise:]) >= 0
    if math.isfinite(info.valley_split):
        # Every value left of the split is at most every value right of it.
        values = np.array([float(f(ref.mp.mpf(x))) for x in grid])
        assert values[grid <= info.valley_split].max() <= values[grid >= info.valley_split].min()
    valleys = {"gelu", "silu", "swish", "mish", "hardswish", "abs"}
    assert {n for n, a in ACTIVATIONS.items() if a.valley} == valleys


@pytest.mark.parametrize(
    "spec, words",
    [
        ("leaky_relu(slope=-0.1)", "within [0, 1000]"),
        ("softplus(beta=0)", "within [0.001, 1000]"),
        ("softplus(beta=-1)", "within [0.001, 1000]"),
        ("celu(alpha=0)", "within [0.001, 1000]"),
        ("elu(alpha=-1)", "within [0.001, 1000]"),
        ("hardtanh(min_val=1,max_val=1)", "min_val < max_val"),
        ("gelu(approximate=yes)", "none, tanh"),
        ("tanh(k=2)", "unknown parameter"),
    ],
)
def test_bad_parameters_say_what_is_accepted(spec, words):
    with pytest.raises(MomentcalcError, match="out of range|bad value|unknown parameter") as info:
        parse(spec)
    assert words in str(info.value)


def test_canonical_spelling_drops_defaults():
    assert str(parse("leaky_relu(slope=0.01)")) == "leaky_relu"
    assert str(parse("gelu(approximate=none)")) == "gelu"
    assert str(parse("hardtanh(max_val=2.0, min_val=-1)")) == "hardtanh(max_val=2)"


def test_softplus_is_exact_far_out_and_never_overflows():
    f = ACTIVATIONS["softplus"].f
    assert f(1000.0, 1.0, 0.0) == 1000.0 and f(-1000.0, 1.0, 0.0) == 0.0
    assert f(30.0, 1.0, 0.0) == pytest.approx(30.0 + math.exp(-30.0), rel=1e-16)  # no threshold=20 linear regime
    assert f(-40.0, 1.0, 0.0) == pytest.approx(math.exp(-40.0), rel=1e-15)


@pytest.mark.parametrize("x", [-800.0, -30.0, -2.5, -1e-300, 0.0, 1e-300, 0.7, 3.0, 40.0, 800.0])
def test_swish_with_beta_one_is_silu(x):
    swish, silu = ACTIVATIONS["swish"], ACTIVATIONS["silu"]
    assert swish.f(x, 1.0, 0.0) == silu.f(x, 0.0, 0.0)
    assert swish.df(x, 1.0, 0.0) == silu.df(x, 0.0, 0.0)


def test_swish_moments_of_the_default_equal_silu_by_every_method():
    a, b = mc.estimate("swish", method="all", samples=1 << 16), mc.estimate("silu", method="all", samples=1 << 16)
    for x, y in zip(a.estimates, b.estimates):
        assert (x.method, x.mean, x.std) == (y.method, y.mean, y.std)

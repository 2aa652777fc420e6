"""User-defined activations: expr(...) specs and Python callables; whitelisted parsing, NaN/inf refused."""

import math

import mp_activations as ref
import numpy as np
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError, exprlang
from momentcalc.estimators import vectorized
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5
MISH = "x * tanh(log1p(exp(x)))"


def test_canonical_form_normalizes_whitespace():
    assert str(parse(f"expr(  {MISH} )")) == "expr(x*tanh(log1p(exp(x))))"
    assert str(parse("relu |expr( where(x > 0, x, 0.1 * x) )")) == "relu | expr(where(x>0,x,0.1*x))"
    assert parse(str(parse(f"expr({MISH})"))) == parse(f"expr({MISH})")


@pytest.mark.parametrize(
    "text, words",
    [
        ("expr(foo(x))", "unknown function 'foo'"),
        ("expr(np.exp(x))", "attribute access"),
        ("expr(x.real)", "attribute access"),
        ("expr(y + 1)", "unknown name 'y'"),
        ("expr(__import__('os'))", "unknown function"),
        ("expr(exp(x, 2))", "takes 1"),
        ("expr(lambda: 1)", "not allowed"),
        ("expr([x])", "not allowed"),
        ("expr('a')", "only real numbers"),
        ("expr(x +)", "malformed expression"),
        ("expr()", "needs an expression"),
    ],
)
def test_anything_outside_the_whitelist_is_a_clear_error(text, words):
    with pytest.raises(MomentcalcError) as info:
        parse(text)
    assert words in str(info.value)


def test_windows_after_expr_are_refused_with_a_reason():
    with pytest.raises(MomentcalcError, match="only with elementwise ops, normalize and dropout"):
        parse("expr(x) | maxpool(k=2)")


@pytest.mark.parametrize(
    "text", ["expr(log(x))", "expr(1 / x)", "expr(sqrt(x))", "expr(exp(x ** 2))", "relu | expr(log(x))"]
)
def test_nan_or_inf_or_no_variance_is_an_error_never_a_nan(text):
    with pytest.raises(MomentcalcError, match="NaN or inf|grows too fast"):
        mc.estimate(text, samples=1 << 14)


def test_expr_mish_matches_mpmath_and_the_builtin():
    want_mean, want_std, want_g2 = ref.moments("mish", 0.3, 1.4)
    r = mc.estimate(f"expr({MISH})", mu=0.3, sigma=1.4, samples=1 << 18, seed=4)
    assert [e.method for e in r.estimates] == ["quadrature", "montecarlo"] and r.agree
    assert abs(r.mean - want_mean) <= 1e-12 and abs(r.std - want_std) <= 1e-12
    assert abs(r.grad_sq - want_g2) <= 1e-9  # central differences
    assert "numerical derivative" in r.estimates[0].notes[0]
    m = r.estimates[1]
    assert abs(m.mean - want_mean) <= Z * m.mean_se and abs(m.std - want_std) <= Z * m.std_se


def test_expr_in_a_pipeline_with_builtins_dropout_and_normalize():
    # relu(x)^2 normalized: E[relu^2] = 1/2, Var[relu^2] = E[x^4; x > 0] - 1/4 = 3/2 - 1/4 (X ~ N(0, 1)).
    r = mc.estimate("relu | expr(x ** 2) | normalize | dropout(p=0.5,scale=none)", samples=1 << 18, seed=1)
    assert abs(r.mean) <= 1e-12 and abs(r.std - math.sqrt(0.5)) <= 1e-12
    # dy/dx = 2 relu(x) / s with s^2 = 5/4, kept with probability 1/2: E = 0.5 * 4 * (1/2) / (5/4).
    assert abs(r.grad_sq - 0.8) <= 1e-9 and r.agree


def test_numpy_monte_carlo_is_reproducible_and_follows_the_seed():
    a, b, c = (mc.estimate("expr(tanh(x))", method="montecarlo", samples=100_000, seed=s) for s in (3, 3, 4))
    assert a.mean == b.mean and a.mean != c.mean


def test_numpy_path_draws_chunk_j_from_chunk_generator_j():
    stage = vectorized.callable_stage(lambda x: x, None, "id")
    from momentcalc.estimators import montecarlo

    got = vectorized.run_numpy([stage], 0.0, 1.0, RunSettings(samples=3 * vectorized.CHUNK, seed=9))
    x = np.concatenate([montecarlo.chunk_generator(9, j).standard_normal(vectorized.CHUNK) for j in range(3)])
    assert got.samples == x.size and got.mean == pytest.approx(x.mean(), abs=1e-15)


def test_library_callable():
    r = mc.estimate(lambda x: x * np.tanh(np.logaddexp(0.0, x)), samples=1 << 17, seed=2)
    want_mean, want_std, _ = ref.moments("mish", 0.0, 1.0)
    assert r.spec.startswith("callable:") and r.method == "quadrature" and r.agree
    assert abs(r.mean - want_mean) <= 1e-12 and abs(r.std - want_std) <= 1e-12


def test_callable_errors():
    with pytest.raises(MomentcalcError, match="NaN or inf"):
        mc.estimate(lambda x: np.log(x))
    with pytest.raises(MomentcalcError, match="no closed form"):
        mc.estimate(np.tanh, method="closed")
    with pytest.raises(MomentcalcError, match="grad must be a callable"):
        mc.estimate(np.tanh, grad=3)
    with pytest.raises(MomentcalcError, match="grad= is for a callable"):
        mc.estimate("tanh", grad=np.tanh)


def test_compiled_expression_is_vectorized_and_handles_chained_comparisons():
    f = exprlang.compile_numpy("where(-1 < x < 1, x, 0) + pi * 0 + e ** 0")
    np.testing.assert_array_equal(f(np.array([-2.0, 0.5, 3.0])), [1.0, 1.5, 1.0])
    assert exprlang.compile_numpy("2")(np.zeros(3)).shape == (3,)

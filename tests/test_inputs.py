"""Hostile input (issue 13): every input either succeeds with finite numbers or is one line on stderr, exit 2.

Each case the issue lists is here as it was typed, CLI first (typer's CliRunner), then the Python API.
"""

import json
import math

import mpmath
import numpy as np
import pytest
from throwaway_ops import unregister
from typer.testing import CliRunner

import momentcalc
from momentcalc import MomentcalcError, catalog, constants, exprlang, parse
from momentcalc.catalog import ELEMENTWISE, OpInfo
from momentcalc.cli import app
from momentcalc.cli.list_ops import _op_rows
from momentcalc.result import Moments
from momentcalc.settings import PARAM_RANGES, RunSettings

runner = CliRunner()

DEEP_MINUS = "-" * 400 + "x"
LONG_SUM = "+".join(["x"] * 330)


def invoke(*args):
    return runner.invoke(app, ["estimate", *args])


def assert_one_line_error(result, *fragments):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        # ZeroDivisionError in quadrature: what precedes normalize has a std that underflows to 0.
        (["relu | normalize", "--mu", "-40"], "constant to double precision"),
        (["relu | normalize", "--mu", "-10", "--sigma", "0.1"], "constant to double precision"),
        (["hardtanh | normalize", "--mu", "100"], "constant to double precision"),
        # A float accepted for an integer, then OverflowError.
        (["avgpool(k=1e200)"], "expected an integer in [1, 1000000]"),
        (["maxpool(k=1e300)"], "expected an integer in [1, 1000000]"),
        (["maxpool(k=" + "9" * 5000 + ")"], "expected an integer"),
        (["maxpool(k=3.0)"], "expected an integer"),
        (["maxpool(k=1001)"], "at most 1000000 values"),
        # Overflow in closed forms and quadrature: outside the documented domain.
        (["elu(alpha=1e308)", "--method", "closed"], "alpha must be within [0.001, 1000]"),
        (["relu", "--mu", "1e300", "--method", "quadrature"], "mu must be within"),
        (["relu", "--mu", "1e308"], "mu must be within"),
        (["relu", "--sigma", "1e160"], "sigma must be within"),
        (["hardswish", "--method", "closed", "--sigma", "1e300"], "sigma must be within"),
        (["dropout(p=5e-324,scale=inverse)", "--method", "closed"], "p (the keep probability) must be within"),
        # tol squared underflowed to 0 and the samples needed became infinite.
        (["relu", "--method", "montecarlo", "--tol", "1e-300"], "tol must be at least 1e-100"),
        (["relu", "--z", "1e308"], "z must be a number > 0 and <= 1000"),
        # RecursionError in the expression checker.
        ([f"expr({DEEP_MINUS})"], "nests too deeply"),
        ([f"expr({LONG_SUM})"], "nests too deeply"),
        # Found by tests/test_fuzz.py: squaring 1e308 overflowed quadrature (OverflowError).
        (["expr(1e308)", "--method", "quadrature"], "|value| > 1e+150"),
        (["expr(1e308) | normalize"], "|value| > 1e+150"),
        # Exit 0 with mean -1 and std 0: normalizing a constant is an error.
        (["relu6 | normalize", "--mu", "30"], "constant to double precision"),
        # NaN or inf from out-of-domain parameters.
        (["celu(alpha=1e-320)", "--method", "closed", "--json"], "alpha must be within"),
        (["erf", "--sigma", "1e300"], "sigma must be within"),
        (["softplus(beta=1e-320)"], "beta must be within"),
        (["leaky_relu(slope=1e308)"], "slope must be within"),
        (["hardtanh(min_val=-1e308,max_val=1e308)"], "min_val must be within"),
    ],
)
def test_hostile_input_is_one_line_and_exit_2(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_domain_edges_give_finite_strict_json():
    # celu(alpha) below 0 is alpha (exp(x / alpha) - 1); at the smallest alpha of the domain the mean is
    # E[max(X, 0)] + alpha E[exp(X / alpha) - 1; X < 0], integrated here by mpmath.
    result = invoke("celu(alpha=0.001)", "--method", "closed", "--json")
    assert result.exit_code == 0, result.stderr
    got = _strict_json(result.stdout)
    mpmath.mp.dps = 30
    phi = lambda x: mpmath.npdf(x)  # noqa: E731
    below = mpmath.quad(
        lambda x: mpmath.mpf("0.001") * mpmath.expm1(x / mpmath.mpf("0.001")) * phi(x), [-mpmath.inf, -0.05, 0]
    )
    truth = float(1 / mpmath.sqrt(2 * mpmath.pi) + below)
    assert got["mean"] == pytest.approx(truth, rel=1e-12)


def test_dropout_at_the_smallest_keep_probability():
    # Inverted dropout keeps the mean and has Var = (mu^2 + sigma^2) / p - mu^2: sqrt(1e6) = 1000 at N(0, 1).
    result = invoke("dropout(p=1e-6,scale=inverse)", "--method", "closed", "--json")
    assert result.exit_code == 0, result.stderr
    got = _strict_json(result.stdout)
    assert got["mean"] == 0.0 and got["std"] == pytest.approx(1000.0, rel=1e-14)


def test_normalize_of_a_varying_input_still_works():
    # relu at N(-8, 1): tiny (std 4e-9) but known to many digits; normalized, mean 0 and std 1.
    found = momentcalc.estimate("relu | normalize", mu=-8.0, method="quadrature")
    assert abs(found.mean) < 1e-9 and found.std == pytest.approx(1.0, rel=1e-9)


def test_an_expression_at_the_depth_limit_is_accepted():
    text = "+".join(["x"] * (exprlang.MAX_DEPTH - 2))  # a left-leaning sum: one level per term, one for x's Load
    assert exprlang.canonical(text) == text
    n = exprlang.MAX_DEPTH - 2
    assert list(exprlang.compile_numpy(text)(np.array([1.0, -2.0]))) == [n, -2.0 * n]


# --- a method that cannot give a finite answer declines ---------------------------------


@pytest.fixture
def nan_closed_op():
    """An identity whose closed form returns NaN, as closed forms did outside their domain."""
    info = catalog.lookup("identity")
    catalog.register(
        OpInfo(
            "nan_closed",
            ELEMENTWISE,
            "identity with a broken closed form",
            f=info.f,
            df=info.df,
            monotone=True,
            closed=lambda op, mu, sigma: Moments(math.nan, math.inf),
        )
    )
    yield "nan_closed"
    unregister("nan_closed")


def test_a_non_finite_closed_form_declines(nan_closed_op):
    found = momentcalc.estimate(nan_closed_op, mu=0.5, sigma=2.0, methods=("closed", "quadrature"))
    assert [e.method for e in found.estimates] == ["quadrature"]
    assert found.mean == pytest.approx(0.5, rel=1e-12) and found.std == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(MomentcalcError, match="non-finite"):
        momentcalc.estimate(nan_closed_op, method="closed")


# --- the Python API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sigma=np.float32(2)),
        dict(mu=np.int64(1), sigma=np.float64(0.5)),
        dict(mu=np.float16(0.25), z=np.float32(5)),
        dict(method="certified", digits=np.int32(20)),
    ],
)
def test_numpy_scalars_are_numbers(kwargs):
    mu, sigma = float(kwargs.get("mu", 0.0)), float(kwargs.get("sigma", 1.0))
    found = momentcalc.estimate("relu", **{"method": "closed", **kwargs})
    # E[max(X, 0)] = mu Phi(mu / sigma) + sigma phi(mu / sigma)
    z = mu / sigma
    truth = mu * 0.5 * math.erfc(-z / math.sqrt(2)) + sigma * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    assert found.mean == pytest.approx(truth, rel=1e-14)
    assert type(found.mu) is float and type(found.sigma) is float


def test_numpy_integers_steer_monte_carlo():
    settings = RunSettings(method="montecarlo", samples=np.int64(4096), seed=np.uint32(3), tol=None)
    assert (type(settings.samples), type(settings.seed)) == (int, int)
    a = momentcalc.estimate("relu", method="montecarlo", samples=np.int64(4096), seed=np.int64(3))
    b = momentcalc.estimate("relu", method="montecarlo", samples=4096, seed=3)
    assert (a.mean, a.std) == (b.mean, b.std)


@pytest.mark.parametrize(
    "spec, words",
    [
        (None, "got NoneType"),
        (123, "got int"),
        (b"relu", "decode it first: 'relu'"),
        (math.exp, "must be vectorized"),
        ([1, 2], "got list"),
        (1.5, "got float"),
    ],
)
def test_estimate_says_what_a_spec_is(spec, words):
    with pytest.raises(MomentcalcError, match="spec|vectorized") as info:
        momentcalc.estimate(spec, method="quadrature")
    assert words in str(info.value)


@pytest.mark.parametrize("value", [None, 3, b"relu", ["relu"], {"relu": 1}])
def test_parse_says_what_a_spec_is(value):
    with pytest.raises(MomentcalcError, match="a spec is text"):
        parse(value)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(mu=10**400), "mu must be a finite number, got 1000"),
        (dict(mu=np.bool_(True)), "mu must be a finite number"),
        (dict(sigma="1"), "sigma must be a finite number"),
        (dict(samples=1.5, method="montecarlo"), "samples must be a whole number"),
        (dict(seed=-1), "seed must be a whole number"),
        (dict(tol=1e-101, method="montecarlo"), "tol must be at least"),
        (dict(digits=np.float64(3), method="certified"), "digits must be a whole number"),
        (dict(methods=5), "methods must be a list"),
        (dict(progress=5, method="montecarlo", samples=1024), "progress must be a callable"),
    ],
)
def test_bad_numbers_are_refused(kwargs, words):
    with pytest.raises(MomentcalcError, match=words) as info:
        momentcalc.estimate("relu", **{"method": "closed", **kwargs})
    assert len(str(info.value)) < 200  # a 400-digit number is not echoed whole


def test_constants_load_says_it_takes_a_path():
    with pytest.raises(MomentcalcError, match="read from a path"):
        constants.load(None)


def test_estimate_is_listed_by_dir():
    assert {"estimate", "parse", "MomentcalcError"} <= set(dir(momentcalc))


def test_every_range_is_declared_once_and_listed():
    # The ranges of settings.PARAM_RANGES are what the declarations carry, and `momentcalc list` shows them.
    declared = {p.bounds for op in catalog.all_ops() for p in op.params if p.bounds is not None}
    assert declared == set(PARAM_RANGES.values())
    listed = {name: params for name, params, _, _ in _op_rows()}
    assert listed["elu"] == "alpha=1.0 in [0.001, 1000]" and "[1e-06, 1]" in listed["dropout"]
    assert "at most 1000000" in listed["maxpool"]
    assert runner.invoke(app, ["list"]).exit_code == 0

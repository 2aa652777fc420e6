"""Ops of several inputs inside longer pipelines: an op of iid inputs last after elementwise ops (Monte Carlo), an
op of several inputs then normalize, and clear refusals elsewhere. Expected values from mpmath in the tests."""

import mpmath as mp
import pytest
from typer.testing import CliRunner

import momentcalc as mc
from momentcalc import MomentcalcError
from momentcalc.cli import app
from momentcalc.estimators import joint_kernel

mp.mp.dps = 20
RELU_MEAN = 1 / mp.sqrt(2 * mp.pi)
RELU_STD = mp.sqrt(mp.mpf(1) / 2 - RELU_MEAN**2)


def abs_normalized_relu() -> float:
    """E|z|, z = (relu(x) - m) / s: the atom at x <= 0 (probability 1/2, |z| = m / s) and the integral above it."""
    above = mp.quad(lambda x: abs(x - RELU_MEAN) * mp.npdf(x), [0, RELU_MEAN, mp.inf])
    return float((RELU_MEAN / 2 + above) / RELU_STD)


def test_an_l2_pool_of_one_value_after_relu_normalize_against_mpmath():
    # lppool(p=2, n=1) is |z|: E|z| by mpmath, E[z^2] = 1 exactly (normalized), and the squared gradient reaching
    # x is (z / |z|)^2 relu'(x)^2 / s^2 = [x > 0] / s^2, of mean 1 / (2 s^2)
    found = mc.estimate("relu | normalize | lppool(p=2,n=1)", samples=1 << 16, seed=3)
    (e,) = found.estimates
    mean = abs_normalized_relu()
    assert e.method == "montecarlo" and abs(e.mean - mean) <= 4.5 * e.mean_se
    assert abs(e.std - (1 - mean * mean) ** 0.5) <= 4.5 * e.std_se
    assert abs(e.grad_sq - float(1 / (2 * RELU_STD**2))) <= 4.5 * e.grad_sq_se


def test_an_l2_pool_after_relu_normalize_has_the_second_moment_it_must():
    # y^2 = z_1^2 + ... + z_4^2 with E[z^2] = 1: E[y^2] = mean^2 + std^2 = 4 exactly
    (e,) = mc.estimate("relu | normalize | lppool(p=2,k=2)", samples=1 << 15, seed=1).estimates
    se = 2 * e.mean * e.mean_se + 2 * e.std * e.std_se  # a bound on the SE of mean^2 + std^2
    assert abs(e.mean**2 + e.std**2 - 4) <= 4.5 * se


@pytest.mark.parametrize("method", ["quadrature", "certified", "closed"])
def test_an_op_after_elementwise_ops_is_sampled_only(method):
    with pytest.raises(MomentcalcError, match=r"does not treat lppool\(p=2,k=2\) after other ops: .* Gaussian inputs"):
        mc.estimate("relu | lppool(p=2,k=2)", method=method)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("relu | lppool(p=2,k=2) | normalize", "after elementwise ops and normalize it comes last"),
        ("gelu | residual(f=relu,tau=0.5) | normalize", "after elementwise ops and normalize it comes last"),
        ("relu | swiglu", r"swiglu takes independent Gaussian inputs \(value, gate\): it comes first"),
        ("softmax(n=4) | relu", "comes first"),
        ("lppool(p=2,k=2) | lppool(p=2,k=2)", "comes first"),
    ],
)
def test_what_cannot_compose_is_refused_in_one_line(spec, match):
    with pytest.raises(MomentcalcError, match=match):
        mc.estimate(spec, samples=64)
    result = CliRunner().invoke(app, ["estimate", spec, "--samples", "64"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_residual_mix_after_gelu_against_mpmath():
    # y = a gelu(X) + b (relu(gelu X) - m) / s, a = b = sqrt(1/2); relu(gelu X) = gelu(X) [X > 0], so m and s are
    # one-sided integrals; dy/dX = gelu'(X) (a + b [X > 0] / s)
    gelu = lambda x: x * mp.ncdf(x)  # noqa: E731
    dgelu = lambda x: mp.ncdf(x) + x * mp.npdf(x)  # noqa: E731
    half = lambda f: mp.quad(lambda x: f(x) * mp.npdf(x), [0, mp.inf])  # noqa: E731
    whole = lambda f: half(f) + mp.quad(lambda x: f(x) * mp.npdf(x), [-mp.inf, 0])  # noqa: E731
    m = half(gelu)
    s = mp.sqrt(half(lambda x: gelu(x) ** 2) - m * m)
    a = b = mp.sqrt(mp.mpf(1) / 2)

    def y(x):
        return a * gelu(x) + b * ((gelu(x) if x > 0 else 0) - m) / s

    mean = whole(y)
    std = float(mp.sqrt(whole(lambda x: y(x) ** 2) - mean**2))
    grad = float(whole(lambda x: (dgelu(x) * (a + (b / s if x > 0 else 0))) ** 2))
    (e,) = mc.estimate("gelu | residual(f=relu | normalize,tau=0.5)", method="quadrature").estimates
    assert abs(e.mean - float(mean)) <= 2 * e.mean_se + 1e-14 and abs(e.std - std) <= 2 * e.std_se + 1e-14
    assert abs(e.grad_sq - grad) <= 2 * e.grad_sq_se + 1e-14


def test_a_sampled_op_honours_tol_and_stops_on_whole_chunks():
    # the tolerance loop stops when both SEs are at most tol, having run whole chunks from the first: the same bits
    # as a fixed run of as many samples (the compiled joint kernel's chunks of lppool's 4 inputs)
    (e,) = mc.estimate("lppool(p=2,k=2)", method="montecarlo", tol=1.5e-3, seed=5).estimates
    assert e.mean_se <= 1.5e-3 and e.std_se <= 1.5e-3 and e.samples % (joint_kernel.CHUNK_NORMALS // 4) == 0
    (fixed,) = mc.estimate("lppool(p=2,k=2)", method="montecarlo", samples=e.samples, seed=5).estimates
    assert (fixed.mean, fixed.std, fixed.mean_se, fixed.std_se, fixed.grad_sq) == (
        e.mean,
        e.std,
        e.mean_se,
        e.std_se,
        e.grad_sq,
    )
    with pytest.raises(MomentcalcError, match=r"tol=1e-09 would need about .* samples, more than"):
        mc.estimate("lppool(p=2,k=2)", method="montecarlo", tol=1e-9)


def test_a_user_expression_before_a_sampled_op_is_refused_on_a_scheduler():
    # expr(...) runs in numpy in this process only (docs/dask.md), before an op of iid inputs too
    from momentcalc.estimators import driver

    with driver.executing(object()), pytest.raises(MomentcalcError, match="runs in numpy in this process, not on a"):
        mc.estimate("expr(x * x) | lppool(p=2,k=2)", method="montecarlo", samples=64)
    (e,) = mc.estimate("expr(x * x) | lppool(p=2,n=1)", method="montecarlo", samples=1 << 14).estimates
    assert abs(e.mean - 1) <= 4.5 * e.mean_se  # |x^2| = x^2, of mean 1


def test_softmax_after_elementwise_ops_is_declined_for_its_tails():
    # its trusted sample count is derived for Gaussian logits; normalize after relu widens the right tail (1 / s = 1.7)
    with pytest.raises(
        MomentcalcError, match=r"montecarlo declines softmax\(n=8\) after relu \| normalize: .*Gaussian"
    ):
        mc.estimate("relu | normalize | softmax(n=8)", method="montecarlo", samples=1 << 12)


@pytest.mark.parametrize("command", ["estimate", "backward"])
def test_maps_and_backward_of_a_pooled_pipeline_are_refused_in_one_line(command):
    spec = "relu | normalize | lppool(p=2,k=2)"
    result = CliRunner().invoke(app, [command, spec, "--size", "4"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert ("has no map here" if command == "estimate" else "backward takes one layer") in result.output

"""QMC where an activation's feature is rarer than its points (estimators/unseen.py): the stated SE covers it.

The truths come from mpmath (tests/mp_activations.py's textbook definitions), integrated on pieces split at the
feature (|x| <= 20) and at the normal's scale; the feature intervals from the activations' derivatives in closed
form. Nothing here comes from a run of the code under test.
"""

import math

import pytest
from mp_activations import max_moments
from typer.testing import CliRunner

import momentcalc as mc
from momentcalc.cli import app
from momentcalc.errors import MomentcalcError
from momentcalc.estimators import qmc, unseen
from momentcalc.estimators.dispatch import CODES
from momentcalc.estimators.program import compile_program
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 5.0


truth = max_moments  # (mean, std) of f(max of n iid N(mu, sigma^2)), by mpmath


@pytest.mark.parametrize(
    "spec, name, mu, n",
    [("tanh", "tanh", 30.0, 1), ("hardsigmoid", "hardsigmoid", -30.0, 1), ("tanh | maxpool(k=2)", "tanh", 30.0, 4)],
)
@pytest.mark.parametrize("samples", [2**12, 2**16])
def test_stated_se_covers_a_feature_rarer_than_the_points(spec, name, mu, n, samples):
    """sigma = 1e6: the feature (|x| < 4.2 for tanh, 3 for hardsigmoid) has mass ~3e-6, far below 1 / points."""
    want = truth(name, mu, 1e6, n)
    e = mc.estimate(spec, mu=mu, sigma=1e6, method="qmc", samples=samples, seed=1).estimates[0]
    assert any("feature" in note for note in e.notes)
    assert abs(e.mean - want[0]) <= Z * e.mean_se
    assert abs(e.std - want[1]) <= Z * e.std_se
    assert e.std_se < 0.01 if n == 1 else e.std_se < 1.0  # a floor, not a shrug


@pytest.mark.parametrize("spec", ["relu", "sigmoid", "maxpool(k=3)"])
def test_ordinary_inputs_keep_their_standard_errors_to_the_bit(spec, monkeypatch):
    program = compile_program(parse(spec), 0.0, 1.0)
    settings = RunSettings("qmc", 2**12, None, 7)
    floored = qmc.run(program, settings)
    monkeypatch.setattr(unseen, "floored", lambda summary, program, per_replica: summary)
    assert floored == qmc.run(program, settings)
    assert not floored.notes


def test_feature_intervals_follow_the_derivative():
    """tanh' = sech^2 falls below DEPARTURE (1e-3 of its peak 1) at |x| = acosh(sqrt(1000)); hardsigmoid's
    feature is its kinks' hull [-3, 3]; relu's is the point 0 (piecewise linear: nothing to miss); identity has
    none. Each interval ends within one grid step (10^(1/16)) beyond the exact edge."""
    edge = math.acosh(math.sqrt(1e3))
    step = 10 ** (1 / 16)
    tanh = unseen.feature(CODES["tanh"], 0.0, 0.0)
    assert edge <= tanh.hi <= edge * step and tanh.lo == -tanh.hi
    assert tanh.step() == pytest.approx(2 * math.tanh(tanh.hi))  # from -1 to 1, seen from afar
    hard = unseen.feature(CODES["hardsigmoid"], 0.0, 0.0)
    assert -3.0 * step <= hard.lo <= -3.0 and 3.0 <= hard.hi <= 3.0 * step and hard.osc() == 1.0
    relu = unseen.feature(CODES["relu"], 0.0, 0.0)
    assert (relu.lo, relu.hi, relu.osc(), relu.step()) == (0.0, 0.0, 0.0, 0.0)
    assert unseen.feature(CODES["identity"], 0.0, 0.0) is None
    gelu = unseen.feature(CODES["gelu"], 0.0, 0.0)
    assert gelu.step() == 0.0  # x Phi(x) -> relu from afar: no step, only a kink


def test_a_pipeline_it_cannot_bound_declines():
    with pytest.raises(MomentcalcError, match="too rare for its 256 points per replica.*use montecarlo"):
        mc.estimate("tanh | normalize | relu", mu=30.0, sigma=1e6, method="qmc", samples=2**12)
    got = mc.estimate("tanh | normalize | relu", mu=30.0, sigma=1e6, method="all", samples=2**12)
    assert "qmc" not in [e.method for e in got.estimates]


def test_cli_shows_the_floor():
    out = CliRunner().invoke(app, ["estimate", "tanh", "--mu", "30", "--sigma", "1e6", "--method", "qmc"])
    assert out.exit_code == 0, out.output
    assert "feature in [-4.22, 4.22] has mass 3.4e-06" in " ".join(out.output.split())

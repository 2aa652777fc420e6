"""Gains at N(0, 1) beside the published PyTorch and NF-Nets values; the `gains` CLI command."""

import json
import math

import mpmath as mp
import pytest
from typer.testing import CliRunner

from momentcalc import gains
from momentcalc.cli import app


def test_published_values_are_cited_data():
    data = gains.published()["sources"]
    assert data["pytorch"]["repository"] == "pytorch/pytorch" and data["pytorch"]["file"] == "torch/nn/init.py"
    assert (
        data["nfnets"]["repository"] == "google-deepmind/deepmind-research"
        and data["nfnets"]["file"] == "nfnets/base.py"
    )
    assert all(len(s["commit"]) == 40 for s in data.values())
    # The printed expressions of torch.nn.init.calculate_gain.
    pt = data["pytorch"]["values"]
    assert pt["tanh"]["value"] == 5 / 3 and pt["relu"]["value"] == math.sqrt(2) and pt["selu"]["value"] == 0.75
    assert pt["leaky_relu"]["value"] == math.sqrt(2 / (1 + 0.01**2))


@pytest.fixture(scope="module")
def rows():
    return {
        r.spec: r
        for r in gains.gains(
            ["relu", "leaky_relu", "identity", "tanh", "sigmoid", "selu", "elu", "celu", "gelu(approximate=tanh)"]
        )
    }


def test_pytorch_gains_that_are_exact(rows):
    # relu: E[relu^2] = 1/2 so the gain is sqrt 2; leaky: (1 + slope^2) / 2; identity 1.
    for spec in ("relu", "leaky_relu", "identity"):
        assert abs(rows[spec].pytorch.rel_diff) <= 1e-14, spec


def test_pytorch_gains_that_are_not_second_moment_gains(rows):
    # tanh: 5/3 vs 1/sqrt(E[tanh^2]) = 1.5925 (mpmath); sigmoid 1 vs 1.846; selu 3/4 vs 1 (SELU keeps E[f^2] = 1).
    with mp.workdps(30):
        want = 1 / mp.sqrt(mp.quad(lambda x: mp.tanh(x) ** 2 * mp.npdf(x), [-mp.inf, 0, mp.inf]))
    assert rows["tanh"].gain == pytest.approx(float(want), abs=1e-12)
    assert rows["tanh"].pytorch.rel_diff == pytest.approx(5 / 3 / float(want) - 1, abs=1e-12)
    assert rows["selu"].gain == pytest.approx(1.0, abs=1e-14) and rows["selu"].pytorch.rel_diff == pytest.approx(
        -0.25, abs=1e-14
    )
    assert rows["sigmoid"].pytorch.rel_diff < -0.45


def test_gamma_and_normprop_affine(rows):
    relu = rows["relu"]
    std = math.sqrt(0.5 - 1 / (2 * math.pi))  # Var[relu(X)] = 1/2 - 1/(2 pi)
    assert relu.gamma == pytest.approx(1 / std, rel=1e-14) and relu.normprop_scale == relu.gamma
    assert relu.normprop_shift == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-15)
    assert relu.grad_sq == 0.5


def test_nfnets_gammas_are_close_but_not_exact(rows):
    # The published gammas were sampled: all within 1e-3 relative of the exact 1/std, none exact.
    for spec in ("relu", "leaky_relu", "tanh", "sigmoid", "selu", "elu", "celu", "gelu(approximate=tanh)"):
        assert 1e-6 < abs(rows[spec].nfnets.rel_diff) < 1e-3, spec
    # elu and celu with alpha = 1 are the same function, yet their published gammas differ.
    assert rows["elu"].gamma == rows["celu"].gamma and rows["elu"].nfnets.value != rows["celu"].nfnets.value


def test_cli_gains_table_and_json():
    runner = CliRunner()
    table = runner.invoke(app, ["gains", "--spec", "relu"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "1.4142135624" in table.output and "deepmind-research" in table.output
    out = runner.invoke(app, ["gains", "--spec", "tanh", "--json"])
    doc = json.loads(out.output)
    assert out.exit_code == 0 and doc["rows"][0]["spec"] == "tanh" and doc["rows"][0]["pytorch"]["value"] == 5 / 3


@pytest.mark.parametrize("args", [["gains", "--spec", "leaky_relu(slope=-1)"], ["gains", "--spec", "maxpool(k=2)"]])
def test_cli_gains_bad_input_is_one_line_and_exit_2(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1

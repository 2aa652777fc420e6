"""The measured transformer at init (momentcalc.torch.transformer): with exact ops, told the covariance across
positions that momentcalc propagates (transformer_positions), every op's output RMS is 1 and every gradient
momentcalc's prediction within 5 % at every block; told nothing (independent positions), block 2's attention
is not; the preset's printed table and its plot.

Why in tests_long/: the exact attention's scales need momentcalc's softmax constants for 2, 3 and 4 keys by
quadrature, seconds each on an idle machine (shared with tests/test_torch_unit_attention.py when run together),
and a 2-block width-256 pass forward and back. Head size 16 and mult 1 (t = 4) and sequence 4 as that file's.
"""

import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from momentcalc.cli import app  # noqa: E402
from momentcalc.torch import transformer as T  # noqa: E402

SMALL = T.Config(depth=3, width=256, heads=16, seq=4, batch=64)
BAND = 0.05  # the target: output RMS in [0.95, 1.05], gradients within 5 % of the prediction; with 64 * 4 * 256
# values per tensor the RMS's standard error is below 0.3 %, so 5 % is more than 15 standard errors


@pytest.fixture(scope="module")
def exact():
    return T.measure(SMALL, "exact", seed=0)


def test_every_block_meets_the_targets(exact):
    # after the first causal attention the stream's positions are correlated (row i averages values 0..i);
    # each attention is told the covariance momentcalc propagates, so its scales see it
    for block in range(SMALL.depth):
        for op in T.OPS:
            assert abs(exact.rms[op][block] - 1) < BAND, (block, op, exact.rms[op][block])
            pred = T.predicted_grad_rms(SMALL, op)
            assert abs(exact.grad_rms[op][block] / pred - 1) < BAND, (block, op, exact.grad_rms[op][block], pred)


def test_independent_positions_miss_the_target_after_the_first_block():
    # the op's default scales assume independent positions: right at block 1, too small after it (the
    # attention averages correlated values); the stream and the MLP's ops stay in the band
    p = T.measure(dataclasses.replace(SMALL, positions="independent"), "exact", seed=0)
    assert abs(p.rms["attention"][0] - 1) < BAND
    assert p.rms["attention"][1] > 1 + BAND, p.rms["attention"][1]
    for op in ("stream", "mlp_norm", "value", "gate", "glu", "mlp_out"):
        assert abs(p.rms[op][1] - 1) < BAND, (op, p.rms[op][1])


def test_standard_variant_runs_and_is_not_unit_scaled():
    p = T.measure(SMALL, "standard", seed=0)
    # nn.Linear's default weights have variance 1 / (3 fan_in): q = W h has RMS 1 / sqrt(3)
    assert p.rms["q"][0] == pytest.approx(1 / math.sqrt(3), rel=0.05)
    assert p.rms["stream"][0] == pytest.approx(1, rel=0.05)


runner = CliRunner()
TINY = ["propagate", "--preset", "transformer", "--depth", "1", "--width", "64", "--seq", "4", "--batch", "4"]


def test_cli_preset_prints_every_block(tmp_path):
    out = runner.invoke(app, [*TINY, "--variant", "exact", "--variant", "standard", "--plot", str(tmp_path / "t.png")])
    assert out.exit_code == 0, out.output
    assert "exact stream" in out.output and "standard worst grad" in out.output
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")


def test_cli_json_and_plot_write_both(tmp_path):
    # --json with --plot: the JSON on stdout and the figure on disk (both, not one)
    png = tmp_path / "t.png"
    args = [*TINY, "--variant", "exact", "--positions", "independent", "--json", "--plot", str(png)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert set(json.loads(out.output)) == {"exact"}
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_positions_outside_the_transformer():
    out = runner.invoke(app, ["propagate", "--depth", "1", "--positions", "independent"])
    assert out.exit_code == 2 and "--positions" in out.output, out.output

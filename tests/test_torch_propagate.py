"""Signal propagation through deep conv nets: propagate, compare, the plot and `momentcalc propagate`."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.cli import app  # noqa: E402
from momentcalc.torch import compare, plot, propagate  # noqa: E402
from momentcalc.torch.signal import plan, prediction  # noqa: E402

# 50 blocks of conv3x3 | relu with a 2x2 max-pool after blocks 25 and 50: wide (64 channels) and small (8x8),
# so that finite-width drift stays small and the run takes seconds.
DEEP = dict(depth=50, block="conv3x3 | relu", pool="maxpool(k=2)", pool_every=25, width=64, size=8, batch=4, seed=0)


@pytest.fixture(scope="module")
def deep():
    return compare(**DEEP, variants=("normprop", "plain"))


def test_normprop_keeps_unit_std_over_50_layers_where_plain_drifts(deep):
    normprop, plain = deep.runs["normprop"].layers, deep.runs["plain"].layers
    assert len(normprop) == 51 and normprop[0].name == "input"
    assert all(0.9 <= s.std <= 1.1 and abs(s.mean) < 0.1 for s in normprop), [(s.mean, s.std) for s in normprop]
    # He keeps E[y^2] of the pre-activations, not the mean and std of what the blocks put out.
    assert min(s.std for s in plain[1:]) < 0.5 and min(s.mean for s in plain[1:]) > 0.1


def test_normprop_gradient_follows_momentcalcs_prediction(deep):
    pred = deep.prediction.layers
    for s, p in zip(deep.runs["normprop"].layers, pred):
        assert 0.8 < s.grad_rms / p.grad_rms < 1.25, (s.depth, s.grad_rms, p.grad_rms)
    # A block without a pool: relu | normalize scales the gradient's variance by E[relu'^2] / Var[relu]
    # = (1/2) / ((1/2)(1 - 1/pi)) = 1 / (1 - 1/pi) (a unit-norm conv with circular padding keeps it).
    assert pred[10].grad_rms / pred[11].grad_rms == pytest.approx(math.sqrt(1 / (1 - 1 / math.pi)), rel=1e-12)
    # So NormProp's gradient grows ~1.21x per relu block towards the input, as Arpit et al.'s Jacobian bound says.
    assert deep.runs["normprop"].layers[0].grad_rms > 1000


def test_prediction_of_a_max_pool_after_relu():
    # One block conv | relu | maxpool(k=2) on 2x2 -> 1x1: the gradient reaches only each window's largest input,
    # positive with probability 1 - 2^-4, so Var factor = 4 * (1/4) * (1 - 1/16)/4 / (Var[relu] * Var[pool]).
    from momentcalc.torch import moments

    pool_var = moments("relu | normalize | maxpool(k=2)").std ** 2
    want = (15 / 16) / 4 / (0.5 * (1 - 1 / math.pi) * pool_var)
    got = prediction(plan(1, "conv3x3 | relu | maxpool(k=2)"), 2).layers[0].grad_rms ** 2
    assert got == pytest.approx(want, rel=1e-10)


def test_propagate_any_model_records_leaves_in_order():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    run = propagate(model, (256, 16), seed=3)
    assert [s.name for s in run.layers] == ["input", "0", "1", "2"]
    assert run.layers[0].std == pytest.approx(1.0, abs=0.05)
    assert all(s.grad_rms > 0 for s in run.layers)
    assert run.layers[-1].grad_rms == pytest.approx(1.0, abs=0.1)  # the injected N(0, 1) gradient
    assert propagate(model, (256, 16), seed=3) == run  # fixed seed: the same numbers
    with pytest.raises(MomentcalcError, match="no module 'nope'"):
        propagate(model, (4, 16), modules=["nope"])


def test_plot_png_and_svg(tmp_path):
    small = compare(depth=3, width=4, size=4, batch=2, pool="maxpool(k=2)", pool_every=2)
    for name in ("p.png", "p.svg"):
        path = plot.draw(small, tmp_path / name)
        assert path.stat().st_size > 1000 and path.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(MomentcalcError, match=".png or .svg"):
        plot.draw(small, tmp_path / "p.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "p.svg"]  # no temp file left


runner = CliRunner()
SMALL = ["--depth", "4", "--width", "4", "--size", "4", "--batch", "2", "--pool-every", "2"]


def test_cli_table_json_and_plot(tmp_path):
    out = runner.invoke(app, ["propagate", *SMALL])
    assert out.exit_code == 0, out.output
    assert "normprop std" in out.output and "predicted grad RMS" in out.output
    out = runner.invoke(
        app, ["propagate", *SMALL, "--variant", "normprop", "--json", "--plot", str(tmp_path / "x.svg")]
    )
    doc = json.loads(out.output)
    assert out.exit_code == 0 and list(doc["variants"]) == ["normprop"] and len(doc["prediction"]) == 5
    assert (tmp_path / "x.svg").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--variant", "groupnorm"], "unknown variant 'groupnorm'"),
        (["--block", "relu | conv3x3"], "starts with a conv"),
        (["--block", "conv2x2 | relu"], "odd side"),
        (["--block", "conv3x3 | maxpool(k=2) | relu"], "put a conv before"),
        (["--block", "conv3x3 | relu | tanh"], "put a conv before"),
        (["--block", "conv3x3 | relux"], "did you mean"),
        (["--size", "2", "--pool-every", "1"], "too small"),
        (["--plot", "out.pdf"], ".png or .svg"),
        (["--batch", "1"], "batch must be"),
        (["--pool", "relu"], "one pool"),
    ],
)
def test_cli_bad_input_one_line_exit_2(args, words):
    out = runner.invoke(app, ["propagate", "--depth", "3", "--width", "2", "--size", "8", *args])
    assert out.exit_code == 2 and words in out.output and len(out.output.strip().splitlines()) == 1, out.output

"""momentcalc.torch.transformer's configuration and residual rule, and `propagate --preset transformer`'s refusals
(one line, exit 2), none of which runs the model; tests_long/test_torch_transformer_measure.py measures it."""

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.cli import app  # noqa: E402
from momentcalc.torch import transformer as T  # noqa: E402


def test_residual_taus_follow_u_mup_rule():
    # u-muP (residual_mult = residual_attn_ratio = 1): the stream before branch i holds the embedding (L / 2
    # units) and i unit branches, so branch i's weight tau_i^2 / (1 + tau_i^2) is 1 / (L / 2 + i + 1)
    taus = T.residual_taus(3)
    for i, tau in enumerate(taus):
        assert tau**2 / (1 + tau**2) == pytest.approx(1 / (3 + i + 1), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"width": 30, "heads": 4}, "multiple of heads"),
        ({"depth": 0}, "depth must be"),
        ({"batch": 2**20}, "at most"),
        ({"positions": "learned"}, "positions is one of propagated, independent"),
    ],
)
def test_config_refusals(kwargs, words):
    with pytest.raises(MomentcalcError, match=words):
        T.Config(**kwargs)


def test_unknown_variant_refused():
    with pytest.raises(MomentcalcError, match="unknown variant"):
        T.measure(T.Config(depth=1, width=64, heads=4, seq=4, batch=2), "muP")


runner = CliRunner()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--preset", "vit"], "--preset is one of conv, transformer"),
        (["--preset", "transformer", "--block", "conv3x3 | gelu"], "belong to --preset conv"),
        (["--preset", "transformer", "--width", "30"], "multiple of heads"),
        (["--preset", "transformer", "--variant", "normprop"], "unknown variant 'normprop' for the transformer"),
        (["--preset", "transformer", "--plot", "out.pdf"], ".png or .svg"),
        (["--preset", "transformer", "--depth", "0"], "depth must be"),
        (["--seq", "16"], "belong to --preset transformer"),
        (["--positions", "independent"], "belong to --preset transformer"),
        (["--preset", "transformer", "--positions", "both"], "positions is one of propagated, independent"),
    ],
)
def test_cli_bad_input_one_line_exit_2(args, words):
    out = runner.invoke(app, ["propagate", *args])
    assert out.exit_code == 2 and words in out.output and len(out.output.strip().splitlines()) == 1, out.output

"""autoinit on 20-layer plain nets: every rescaled layer's measured variance within [0.9, 1.1] of the target.

In the long set because each net takes three predict() passes of 20 exact activation constants at distinct
input laws (certified, closed form and quadrature each, cross-checked), and the CNN's activations are taken element
by element (64 x 16 x 16 laws each, a trapezoid rule of 3,601 points): about 20 s for the MLP and 2-6 min for the
CNN (6 min on a loaded 2-core machine).

The CNN's zero-padded 16x16 maps give the borders their own means and variances; predict() carries both per
position (law.offset, law.profile), without which the measured variance drifted past the predicted one with depth
(1.34 at layer 7, 2.27 at 18 after autoinit)."""

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from momentcalc.torch import autoinit  # noqa: E402


def _mlp():
    layers = []
    for _ in range(20):
        layers += [nn.Linear(128, 128), nn.Tanh()]
    return nn.Sequential(*layers), torch.randn(512, 128, generator=torch.Generator().manual_seed(1))


def _cnn():
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(19):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers), torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("build", [_mlp, _cnn])
def test_autoinit_twenty_layers_within_ten_percent(build):
    torch.manual_seed(0)
    model, x = build()
    report = autoinit(model, x)
    assert len(report.layers) == 20
    for layer in report.layers:
        assert layer.predicted_std == pytest.approx(1.0, rel=1e-6)
        assert 0.9 <= layer.measured_std**2 <= 1.1, layer

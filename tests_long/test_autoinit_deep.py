"""autoinit on 20-layer plain nets: every rescaled layer's measured variance within [0.9, 1.1] of the target.

In the long set because each net takes three predict() passes of 20 exact activation constants at distinct
input laws (certified, closed form and quadrature each, cross-checked): about 20-40 s on an idle machine."""

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


# The CNN is a known gap (strict: it fails once it passes, so the mark is removed then): on a 16x16 map with zero
# padding, measured variances drift up past the prediction with depth (0.99 at layer 1, 1.1 at 6, 1.5 at 16, 2.3 at
# 18 in one run): spatial correlation and finite width (64 channels) that a per-channel law does not carry.
CNN_GAP = pytest.mark.xfail(strict=True, reason="deep CNN on a small map: measured variance drifts past predicted")


@pytest.mark.parametrize("build", [_mlp, pytest.param(_cnn, marks=CNN_GAP)])
def test_autoinit_twenty_layers_within_ten_percent(build):
    torch.manual_seed(0)
    model, x = build()
    report = autoinit(model, x)
    assert len(report.layers) == 20
    for layer in report.layers:
        assert layer.predicted_std == pytest.approx(1.0, rel=1e-6)
        assert 0.9 <= layer.measured_std**2 <= 1.1, layer

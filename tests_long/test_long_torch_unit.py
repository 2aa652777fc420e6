"""momentcalc.torch.unit: a second softmax of 256 logits measured at unit scale, and torch.export of unit ops and
of the new modules (unit_layers, mp).

Why in tests_long/: the softmax's scales at (n, t) = (256, 4) cost a quadrature of their own (about 3 s of CPU;
tests/test_torch_unit.py measures softmax at three other (n, t), 256 logits among them); torch.export imports and
runs dynamo's tracer, about 4 s of CPU for the first export, 2 s for the next.
"""

import pytest

torch = pytest.importorskip("torch")

from test_torch_unit import test_softmax_measures_unit_output_rms_and_gradient_rms as softmax_at_unit  # noqa: E402

from momentcalc.torch import unit as U  # noqa: E402


def test_softmax_measures_unit_output_rms_and_gradient_rms():
    softmax_at_unit(256, 0.25)


def test_export_keeps_the_forward():
    # torch.export traces the forward pass (a custom backward is not part of an exported graph, as with
    # unit-scaling's own scale functions): the exported module computes what the model does
    model = torch.nn.Sequential(U.Linear(8, 16), U.SiLU(0.5, constraint=None), U.Softmax(-1, mult=2.0))
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


def test_export_keeps_the_forward_of_the_new_modules():
    # torch.export traces the forward pass (custom backward scales are not part of an exported graph); MPConv in
    # eval, where it does not rewrite its weight
    from momentcalc.torch import mp

    model = torch.nn.Sequential(
        U.Embedding(50, 16),
        U.RMSNorm(16, elementwise_affine=True),
        mp.MPConv(16, 16).eval(),
        mp.MPActivation("gelu"),
        U.LayerNorm(16),
    )
    tokens = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    exported = torch.export.export(model, (tokens,))
    torch.testing.assert_close(exported.module()(tokens), model(tokens))

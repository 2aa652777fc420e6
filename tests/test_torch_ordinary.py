"""The PyTorch modules are ordinary modules (issue 29), and propagate runs in every float dtype (issue 28).

Whole models pickle and torch.save with no closure in their state; torch.fx.symbolic_trace and torch.export
trace NormPropLinear and NormPropConv2d; NormPropDropout's p= message says keep as a person writes it;
propagate records a NormProp module's normalized output (not its inner pool's raw one) and runs in float16,
bfloat16 and float64; the plot labels its axes and says what each curve is.
"""

import copy
import io
import math
import pickle

import pytest

torch = pytest.importorskip("torch")

from scipy import integrate, special  # noqa: E402
from torch import nn  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import (  # noqa: E402
    NormPropActivation,
    NormPropAvgPool2d,
    NormPropConv2d,
    NormPropDropout,
    NormPropLinear,
    NormPropMaxPool2d,
    propagate,
)

Z = 4.5  # the project's agreement bound, in standard errors


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        NormPropConv2d(3, 8, 3, padding=1),
        NormPropActivation("tanh | normalize | relu"),
        NormPropMaxPool2d(2, after="tanh | normalize | relu | normalize"),
        NormPropAvgPool2d(2),
        nn.Flatten(),
        NormPropLinear(8 * 2 * 2, 5),
        NormPropActivation("gelu"),
        NormPropDropout(0.8),
    ).eval()


def test_a_whole_model_pickles_and_torch_saves():
    model, x = _model(), torch.randn(2, 3, 8, 8)
    y = model(x)
    assert torch.equal(pickle.loads(pickle.dumps(model))(x), y)
    assert torch.equal(copy.deepcopy(model)(x), y)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), y)
    # The state holds the spec, not a function: what pickles is what a reader can see.
    assert "tanh | normalize | relu" in repr(pickle.loads(pickle.dumps(model[1])))


def _with_random_scale_and_bias(module):
    with torch.no_grad():
        module.scale.copy_(torch.rand_like(module.scale) + 0.5)
        module.bias.copy_(torch.randn_like(module.bias))
    return module


def _reference_linear(m, x):
    """y_i = scale_i * (w_i / ||w_i||) . x + bias_i, unit by unit."""
    rows = [m.weight[i] / m.weight[i].norm() for i in range(m.out_features)]
    return torch.stack([m.scale[i] * (x @ rows[i]) + m.bias[i] for i in range(m.out_features)], dim=-1)


def _reference_conv(m, x):
    """Each output channel: the conv with its filter over its l2 norm, times scale_c, plus bias_c."""
    outs = []
    for c in range(m.out_channels):
        w = m.weight[c : c + 1] / m.weight[c].norm()
        outs.append(m.scale[c] * torch.nn.functional.conv2d(x, w, padding=m.padding) + m.bias[c])
    return torch.cat(outs, dim=-3)


@pytest.mark.parametrize(
    ("make", "shape", "reference"),
    [
        (lambda: NormPropLinear(6, 4), (3, 6), _reference_linear),
        (lambda: NormPropLinear(6, 4), (2, 3, 6), _reference_linear),
        (lambda: NormPropConv2d(3, 4, 3, padding=1), (2, 3, 5, 5), _reference_conv),
        (lambda: NormPropConv2d(3, 4, 3, padding=1), (3, 5, 5), _reference_conv),  # unbatched
    ],
)
def test_fx_and_export_trace_the_layers_and_give_their_outputs(make, shape, reference):
    torch.manual_seed(1)
    module, x = _with_random_scale_and_bias(make()), torch.randn(shape)
    want = reference(module, x)
    assert torch.allclose(module(x), want, rtol=1e-5, atol=1e-6)
    traced = torch.fx.symbolic_trace(module)
    assert torch.equal(traced(x), module(x))
    exported = torch.export.export(module, (x,))
    assert torch.allclose(exported.module()(x), want, rtol=1e-5, atol=1e-6)


def test_a_whole_normprop_model_traces_and_exports():
    model, x = _model(), torch.randn(2, 3, 8, 8)
    assert torch.equal(torch.fx.symbolic_trace(model)(x), model(x))
    assert torch.allclose(torch.export.export(model, (x,)).module()(x), model(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("p", "keep"), [(0.8, "0.2"), (0.9, "0.1"), (0.7, "0.3"), (0.5, "0.5"), (0.15, "0.85")])
def test_dropout_p_message_writes_keep_as_a_person_does(p, keep):
    with pytest.raises(MomentcalcError) as caught:
        NormPropDropout(p=p)
    assert f"NormPropDropout(keep={keep})" in str(caught.value)


def _relu_max_moments(m: int) -> tuple[float, float, float]:
    """Mean, std and kurtosis of relu(max of m iid N(0, 1)): density m phi Phi^(m-1) on (0, inf), mpmath-free."""

    def raw(k):
        f = lambda x: x**k * m * math.exp(-x * x / 2) / math.sqrt(2 * math.pi) * special.ndtr(x) ** (m - 1)  # noqa: E731
        return integrate.quad(f, 0, 40, epsabs=1e-14, epsrel=1e-13)[0]

    e1, e2, e3, e4 = (raw(k) for k in (1, 2, 3, 4))
    var = e2 - e1**2
    central4 = e4 - 4 * e1 * e3 + 6 * e1**2 * e2 - 3 * e1**4
    return e1, math.sqrt(var), central4 / var**2


def _tolerances(n: int, kurtosis: float, dtype, ops: int = 4) -> tuple[float, float]:
    """|mean - 0| and |std - 1| allowed: Z standard errors, plus ops roundings of unit size in dtype."""
    rounding = ops * torch.finfo(dtype).eps / 2
    return Z / math.sqrt(n) + rounding, Z * math.sqrt((kurtosis - 1) / (4 * n)) + rounding


def test_propagate_records_a_normprop_pools_normalized_output():
    # relu | normalize | maxpool(k=2) on iid N(0, 1) values: its windows do not overlap, so the pool's outputs
    # are iid, with mean 0 and std 1 after NormPropMaxPool2d's normalization (the constants of record).
    model = nn.Sequential(NormPropActivation("relu"), NormPropMaxPool2d(2, after="relu | normalize"))
    run = propagate(model, (16, 8, 32, 32), seed=5)
    assert [s.name for s in run.layers] == ["input", "0", "1"]  # "1", not its inner "1.pool"
    _, _, kurtosis = _relu_max_moments(4)  # normalizing is affine: the kurtosis of relu(max of 4)
    mean_tol, std_tol = _tolerances(16 * 8 * 16 * 16, kurtosis, torch.float32)
    assert abs(run.layers[2].mean) < mean_tol and abs(run.layers[2].std - 1) < std_tol
    inner = propagate(model, (16, 8, 32, 32), seed=5, modules=["1.pool"]).layers[1]
    mean, std, _ = _relu_max_moments(4)  # the raw pool of normalized relu: (relu(max) - m_relu) / s_relu
    relu_mean, relu_std = 1 / math.sqrt(2 * math.pi), math.sqrt(0.5 - 1 / (2 * math.pi))
    assert inner.mean == pytest.approx((mean - relu_mean) / relu_std, abs=mean_tol * std / relu_std)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_propagate_runs_in_every_float_dtype_and_leaves_the_model_alone(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256, bias=False), NormPropActivation("relu"))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(256))  # the identity: what reaches relu is the N(0, 1) input itself
    run = propagate(model, (256, 256), dtype=dtype, seed=2)
    assert model[0].weight.dtype == torch.float32  # a copy ran in dtype, not the model
    _, _, kurtosis = _relu_max_moments(1)
    mean_tol, std_tol = _tolerances(256 * 256, kurtosis, dtype)
    out = run.layers[-1]
    assert abs(out.mean) < mean_tol and abs(out.std - 1) < std_tol, (out, mean_tol, std_tol)


def test_propagate_in_float16_refuses_an_overflow_in_one_line():
    model = nn.Sequential(NormPropLinear(4, 4, scale=True))
    with torch.no_grad():
        model[0].scale.fill_(1e5)  # float16 tops out at 65504
    with pytest.raises(MomentcalcError, match="non-finite values"):
        propagate(model, (64, 4), dtype=torch.float16)


def test_the_plot_labels_its_axes_and_says_what_each_curve_is():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from momentcalc.torch import compare, plot

    comparison = compare(depth=2, width=4, size=4, batch=2, pool_every=2)
    fig = plot.figure(comparison)
    try:
        labels = [ax.get_ylabel() for ax in fig.axes]
        texts = "\n".join(t.get_text() for t in fig.texts)
    finally:
        plt.close(fig)
    assert len(labels) == 3 and all(labels)
    for variant in ("normprop:", "plain:", "batchnorm:", "dashed:"):
        assert variant in texts
    assert "BatchNorm2d" in texts and "batch's own statistics" in texts

"""momentcalc.torch on the CPU: exact gains against mpmath and torch, NormProp modules on N(0, 1), gradients."""

import math

import pytest

torch = pytest.importorskip("torch")

import mp_activations as mpa  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError, catalog  # noqa: E402
from momentcalc.spec import parse  # noqa: E402
from momentcalc.torch import (  # noqa: E402
    NormPropActivation,
    NormPropAvgPool2d,
    NormPropConv2d,
    NormPropDropout,
    NormPropLinear,
    NormPropMaxPool2d,
    affine,
    calculate_gain,
    gamma,
    moments,
)
from momentcalc.torch.functional import TORCH_FUNCTIONS, apply  # noqa: E402

Z = 5.0  # z * SE tolerances; every Monte Carlo check below has a fixed seed


def _mp_gain(name, **params):
    mean, std, _ = mpa.moments(name, 0.0, 1.0, tuple(sorted(params.items())))
    return 1.0 / math.sqrt(mean * mean + std * std)


# ---- gains -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mp_name, params",
    [
        ("relu", "relu", {}),
        ("tanh", "tanh", {}),
        ("sigmoid", "sigmoid", {}),
        ("selu", "selu", {}),
        ("gelu", "gelu", {}),
        ("gelu(approximate=tanh)", "gelu_tanh", {}),
        ("silu", "silu", {}),
        ("mish", "mish", {}),
        ("elu(alpha=0.5)", "elu", {"alpha": 0.5}),
        ("softplus", "softplus", {}),
    ],
)
def test_gains_against_mpmath(name, mp_name, params):
    assert calculate_gain(name) == pytest.approx(_mp_gain(mp_name, **params), rel=1e-13)


def test_torch_names_and_torch_values():
    nn_gain = torch.nn.init.calculate_gain
    # Where torch's value is the second-moment gain, ours is the same double (up to an ulp).
    for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        assert calculate_gain(name) == 1.0 == nn_gain(name)
    assert calculate_gain("relu") == pytest.approx(math.sqrt(2.0), rel=2e-16) and nn_gain("relu") == math.sqrt(2.0)
    for slope in (None, 0.2, 0):
        want = math.sqrt(2.0 / (1 + (0.01 if slope is None else slope) ** 2))  # E[leaky^2] = (1 + slope^2) / 2
        assert calculate_gain("leaky_relu", slope) == pytest.approx(want, rel=1e-15)
        assert nn_gain("leaky_relu", slope) == pytest.approx(want, rel=1e-15)
    # torch ignores param for the other names (kaiming_normal_ passes its a=0 always): so do we.
    assert calculate_gain("relu", 0) == calculate_gain("relu")
    # Conventions and heuristics: torch's tanh 5/3, sigmoid 1, selu 3/4; the exact gains are elsewhere.
    assert nn_gain("tanh") == 5 / 3 and calculate_gain("tanh") == pytest.approx(_mp_gain("tanh"), rel=1e-13)
    assert nn_gain("sigmoid") == 1 and calculate_gain("sigmoid") == pytest.approx(_mp_gain("sigmoid"), rel=1e-13)
    assert nn_gain("selu") == 0.75 and calculate_gain("selu") == pytest.approx(1.0, rel=1e-15)  # E[selu^2] = 1


def test_gains_agree_with_the_gains_service():
    # momentcalc.gains takes closed form or quadrature; momentcalc.torch the table (certified) or the exact methods.
    from momentcalc import gains

    for row in gains.gains(["relu", "tanh", "gelu", "silu"]):
        assert calculate_gain(row.spec) == pytest.approx(row.gain, rel=1e-13)
        assert gamma(row.spec) == pytest.approx(row.gamma, rel=1e-13)


def test_gain_of_a_pipeline_and_gamma_and_affine():
    # relu | normalize has mean 0 and std 1, so E[f^2] = 1.
    assert calculate_gain("relu | normalize") == pytest.approx(1.0, rel=1e-14)
    mean, std, _ = mpa.moments("gelu", 0.0, 1.0)
    assert gamma("gelu") == pytest.approx(1 / std, rel=1e-13)
    assert affine("gelu") == pytest.approx((mean, std), rel=1e-13)
    mean, std, _ = mpa.moments("tanh", 0.5, 2.0)
    assert affine("tanh", mu=0.5, sigma=2.0) == pytest.approx((mean, std), rel=1e-12, abs=1e-15)


def test_untabulated_specs_are_computed_by_exact_methods_and_cached():
    m = moments("leaky_relu(slope=0.2)", 0.0, 1.0)
    mean, std, g2 = mpa.moments("leaky_relu", 0.0, 1.0, (("slope", 0.2),))
    assert m.source == "computed" and m.method in ("certified", "closed", "quadrature")
    assert (m.mean, m.std, m.grad_sq) == pytest.approx((mean, std, g2), rel=1e-13)
    assert moments("leaky_relu( slope = 0.2 )") is m  # any spelling, computed once
    assert moments("relu").source.endswith(".json")  # tabulated


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: calculate_gain("maxpool(k=3)"), "per-element"),
        (lambda: calculate_gain("rellu"), "did you mean"),
        (lambda: calculate_gain("leaky_relu", "a"), "negative slope"),
        (lambda: calculate_gain(None), "a name such as"),
        (lambda: NormPropActivation("maxpool(k=2)"), "elementwise ops"),
        (lambda: NormPropActivation("expr(x*tanh(x))"), "no torch function"),
        (lambda: NormPropDropout(1.5), "keep probability"),
        (lambda: NormPropDropout(p=0.2), r"torch's p is the drop probability.*keep=0\.8"),
        (lambda: NormPropMaxPool2d(0), "kernel_size"),
    ],
)
def test_bad_input_says_what_would_be_right(call, words):
    with pytest.raises(MomentcalcError, match=words):
        call()


def test_torch_functions_are_the_declared_ops():
    # Each torch function equals the op's declared scalar f (catalog), in float64, including both sides of kinks.
    xs = [-30.0, -6.5, -3.0, -1.0, -0.25, 0.0, 1e-3, 0.5, 2.0, 3.0, 6.5, 19.0, 30.0]
    elementwise = {op.name for op in catalog.all_ops() if op.kind == catalog.ELEMENTWISE and op.f is not None}
    assert elementwise == set(TORCH_FUNCTIONS)  # every jitted activation runs in torch (expr is numpy-only)
    for name in sorted(TORCH_FUNCTIONS):
        op = parse(name).last
        a, b = op.info.args(op)
        got = apply(name, torch.tensor(xs, dtype=torch.float64)).tolist()
        want = [op.info.f(x, a, b) for x in xs]
        assert got == pytest.approx(want, rel=1e-12, abs=3e-9), name  # softplus: torch's threshold, < 2.1e-9


# ---- modules on N(0, 1) ------------------------------------------------------------------------------------------


def _assert_standard(y, what):
    """Sample mean within Z SE of 0 and sample variance within Z SE of 1 (SE from the sample's 4th moment)."""
    y = y.double().flatten()
    n = y.numel()
    mean, var = y.mean().item(), y.var().item()
    m4 = ((y - mean) ** 4).mean().item()
    assert abs(mean) < Z / math.sqrt(n), (what, mean)
    assert abs(var - 1.0) < Z * math.sqrt((m4 - var * var) / n), (what, var)


@pytest.mark.parametrize("spec", ["relu", "gelu", "tanh", "selu", "leaky_relu(slope=0.2)", "tanh | normalize | relu"])
def test_activation_output_is_standard(spec):
    gen = torch.Generator().manual_seed(1)
    _assert_standard(NormPropActivation(spec)(torch.randn(200_000, generator=gen)), spec)


def test_activation_at_another_input():
    gen = torch.Generator().manual_seed(2)
    x = 0.5 + 2.0 * torch.randn(200_000, generator=gen)
    _assert_standard(NormPropActivation("relu", mu=0.5, sigma=2.0)(x), "relu at N(0.5, 4)")


def test_pools_after_relu_are_standard():
    # Non-overlapping windows (stride = kernel) of iid inputs: the outputs are iid too.
    gen = torch.Generator().manual_seed(3)
    x = NormPropActivation("relu")(torch.randn(256, 4, 36, 36, generator=gen))
    _assert_standard(NormPropMaxPool2d(3, after="relu | normalize")(x), "maxpool 3 after relu")
    _assert_standard(NormPropAvgPool2d(2, after="relu | normalize")(x), "avgpool 2 after relu")
    _assert_standard(NormPropMaxPool2d((2, 3))(torch.randn(64, 4, 36, 36, generator=gen)), "maxpool 2x3")


@pytest.mark.parametrize("scale", ["sqrt", "inverse", "none"])
def test_dropout_is_standard_in_train_and_eval(scale):
    torch.manual_seed(4)
    m = NormPropDropout(0.8, scale)
    x = torch.randn(200_000)
    _assert_standard(m(x), f"dropout {scale}")
    assert torch.equal(m.eval()(x), x)  # eval standardizes an input that is already N(0, 1): the identity


def test_linear_and_conv_units_are_standard():
    # With iid N(0, 1) inputs each output unit of a unit-norm row is exactly N(0, 1); scale 1 and bias 0 at init.
    torch.manual_seed(5)
    lin = NormPropLinear(64, 8)
    y = lin(torch.randn(20_000, 64))
    for unit in range(8):
        _assert_standard(y[:, unit], f"linear unit {unit}")
    conv = NormPropConv2d(3, 4, 3, padding=1)
    y = conv(torch.randn(20_000, 3, 5, 5))
    for channel in range(4):
        _assert_standard(y[:, channel, 2, 2], f"conv channel {channel}")  # an interior position
    w = lin.weight / lin.weight.norm(dim=1, keepdim=True)
    assert torch.allclose(lin(torch.eye(64)).T, w, atol=1e-6)  # rows of unit norm, as in Arpit et al.


# ---- gradients ---------------------------------------------------------------------------------------------------


def test_gradcheck_float64():
    torch.manual_seed(6)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    modules = [
        NormPropConv2d(2, 2, 3, padding=1, dtype=torch.float64),
        NormPropActivation("gelu"),
        NormPropActivation("tanh | normalize | softplus"),
        NormPropAvgPool2d(2, after="relu | normalize"),
        NormPropMaxPool2d(3, stride=1, padding=1),
    ]
    for m in modules:
        assert gradcheck(m, (x,), eps=1e-6, atol=1e-7), m
    lin = NormPropLinear(6, 4, dtype=torch.float64)
    assert gradcheck(lin, (torch.randn(5, 6, dtype=torch.float64, requires_grad=True),))
    drop = NormPropDropout(0.7)

    def same_mask(t):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return drop(t)

    assert gradcheck(same_mask, (x,))


@pytest.mark.slow  # dynamo's fixed cost, a few seconds
def test_torch_compile():
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        NormPropConv2d(2, 2, 3, padding=1), NormPropActivation("relu"), NormPropMaxPool2d(2, after="relu | normalize")
    )
    x = torch.randn(2, 2, 8, 8)
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # dynamo traces it whole, no graph break
    assert torch.allclose(compiled(x), net(x))

"""momentcalc.torch.mp, EDM2's magnitude-preserving ops (Karras et al. 2024): the activation constant is EDM2's
published 0.596 for silu and an mpmath integral for others, and every op keeps unit RMS on N(0, 1) tensors."""

import math
import pickle

import pytest

torch = pytest.importorskip("torch")

import mpmath as mp  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import mp as MP  # noqa: E402

Z = 5.0  # z * SE tolerances, fixed seeds
N = 1 << 20


def _randn(*shape, seed, grad=False):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=grad)


def _unit_rms_within_z(values: torch.Tensor) -> None:
    sq = (values.detach().double() ** 2).reshape(-1)
    se = sq.std().item() / math.sqrt(sq.numel())
    assert abs(sq.mean().item() - 1.0) < Z * se, (sq.mean().item(), se)


def test_silu_constant_is_edm2s_published_0_596():
    # EDM2 (Karras et al. 2024, section 3; mp_silu in its published networks_edm2.py): silu(x) / 0.596, the
    # expected magnitude (RMS) of silu at N(0, 1), printed to 3 digits
    assert 1 / MP.act_gain("silu") == pytest.approx(0.596, abs=5e-4)


def _rms(f):
    mp.mp.dps = 25
    return float(mp.sqrt(mp.quad(lambda x: f(x) ** 2 * mp.npdf(x), [-mp.inf, 0, mp.inf])))


@pytest.mark.parametrize(
    "spec, f",
    [
        ("silu", lambda x: x / (1 + mp.exp(-x))),
        ("gelu", lambda x: x * mp.ncdf(x)),
        ("tanh", mp.tanh),
        ("swish(beta=2)", lambda x: x / (1 + mp.exp(-2 * x))),
    ],
)
def test_activation_constant_is_the_mpmath_rms(spec, f):
    assert 1 / MP.act_gain(spec) == pytest.approx(_rms(f), rel=1e-12)


@pytest.mark.parametrize("fn", [MP.mp_silu, MP.mp_gelu, lambda x: MP.mp_act(x, "tanh")])
def test_activations_measure_unit_rms(fn):
    _unit_rms_within_z(fn(_randn(N, seed=1)))


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 0.9])
def test_mp_sum_measures_unit_rms(t):
    _unit_rms_within_z(MP.mp_sum(_randn(N, seed=2), _randn(N, seed=3), t))


def test_mp_cat_has_unit_rms_and_splits_the_squared_norm_by_t():
    # 24 and 40 channels: a carries (1 - t)^2 and b t^2 of the squared norm, in proportion, whatever the sizes
    t, a, b = 0.3, _randn(4096, 24, seed=4), _randn(4096, 40, seed=5)
    y = MP.mp_cat(a, b, dim=1, t=t)
    assert y.shape == (4096, 64)
    _unit_rms_within_z(y)
    share = (y[:, :24] ** 2).sum() / (y**2).sum()
    expected = (1 - t) ** 2 / ((1 - t) ** 2 + t**2)
    # the share is a ratio of two sums of independent chi-square terms: its relative SE is below 1 / sqrt(24 * 4096)
    assert abs(share.item() - expected) < Z * expected / math.sqrt(24 * 4096)


def test_normalize_gives_unit_rms_per_output_unit():
    w = MP.normalize(_randn(8, 3, 5, 5, seed=6) * 7.0)
    rms = w.pow(2).mean(dim=(1, 2, 3)).sqrt()
    # eps = 1e-4 is added to the RMS (about 7 here): each row's RMS is 7 / (7 + 1e-4)
    assert (rms - 1).abs().max().item() < 2e-5


@pytest.mark.parametrize("kernel", [(), (3, 3)])
def test_mpconv_keeps_unit_variance_and_forces_the_weight(kernel):
    torch.manual_seed(0)
    layer = MP.MPConv(128, 64, kernel).double()
    with torch.no_grad():
        layer.weight.mul_(5.0)  # a stored weight grown in training: forced normalization brings it back
    x = _randn(2048, 128, seed=7) if not kernel else _randn(8, 128, 16, 16, seed=7)
    y = layer(x)
    # each output unit's effective weight has unit norm: for iid N(0, 1) inputs the output is N(0, 1) (the
    # convolution's border positions lose taps to the zero padding: the interior only)
    _unit_rms_within_z(y if not kernel else y[..., 1:-1, 1:-1])
    rms = layer.weight.detach().pow(2).flatten(1).mean(dim=1).sqrt()
    assert (rms - 1).abs().max().item() < 1e-4


def test_mpconv_gradient_is_orthogonal_to_the_weight():
    # normalize(w) is invariant to each row's scale (up to eps), so its gradient has no component along the row
    layer = MP.MPConv(16, 4).double()
    layer(_randn(32, 16, seed=8)).pow(2).sum().backward()
    w, g = layer.weight.detach(), layer.weight.grad
    cos = (w * g).sum(dim=1) / (w.norm(dim=1) * g.norm(dim=1))
    assert cos.abs().max().item() < 1e-3


def test_mpconv_in_eval_leaves_the_weight_alone():
    layer = MP.MPConv(4, 2).eval()
    before = layer.weight.detach().clone()
    layer(torch.randn(3, 4))
    assert torch.equal(layer.weight, before)


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda x: MP.mp_act(x, "gelu"), [(12,)]),
        (lambda a, b: MP.mp_sum(a, b, 0.3), [(12,), (12,)]),
        (lambda a, b: MP.mp_cat(a, b, dim=1, t=0.7), [(2, 3), (2, 5)]),
        (lambda x, w: torch.nn.functional.linear(x, MP.normalize(w)), [(2, 3), (4, 3)]),
    ],
)
def test_gradcheck(fn, shapes):
    inputs = [_randn(*s, seed=i, grad=True) for i, s in enumerate(shapes)]
    assert gradcheck(fn, inputs, atol=1e-9)


@pytest.mark.parametrize("module", [MP.MPActivation("gelu"), MP.MPConv(6, 3)])
def test_modules_pickle_and_compute_the_same(module):
    module.eval()
    x = torch.randn(4, 6)
    copy = pickle.loads(pickle.dumps(module))
    assert torch.equal(copy(x), module(x))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: MP.mp_act(torch.ones(2), "maxpool(k=2)"), "elementwise"),
        (lambda: MP.mp_sum(torch.ones(2), torch.ones(2), 1.5), "t is"),
        (lambda: MP.mp_cat(torch.ones(2, 2), torch.ones(2, 2), t=float("nan")), "finite"),
        (lambda: MP.MPConv(4, 2, (3,)), "kernel"),
        (lambda: MP.MPConv(0, 2), "in_channels"),
        (lambda: MP.MPActivation(3), "spec"),
    ],
)
def test_bad_arguments_are_one_line_refusals(call, words):
    with pytest.raises(MomentcalcError, match=words) as caught:
        call()
    assert "\n" not in str(caught.value)

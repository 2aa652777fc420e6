"""momentcalc.torch.unit's conv1d, linear_readout and mse_loss, whose scales are closed forms (counts of summed
unit-variance products): the tap count against an enumeration, output and gradients measured at unit mean square
on N(0, 1) tensors (conv1d over edges and padding, where unit-scaling's interior count is measurably off), the
gradients the plain function's times the scales, gradcheck, pickling, refusals."""

import math
import pickle

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402
from momentcalc.torch import unit_conv  # noqa: E402

Z = 5.0  # z * SE tolerances, fixed seeds
ROWS = 1024  # one row per batch entry: entries of one sample share inputs, samples are independent


def _mean_square_and_se(values: torch.Tensor, rows: int = ROWS) -> tuple[float, float]:
    per_row = (values.detach().double() ** 2).reshape(rows, -1).mean(dim=1)
    return per_row.mean().item(), per_row.std().item() / math.sqrt(rows)


def _unit_within_z(values: torch.Tensor, rows: int = ROWS) -> None:
    mean, se = _mean_square_and_se(values, rows)
    assert abs(mean - 1.0) < Z * se, (mean, se)


def _randn(*shape, seed, grad=True):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=grad)


def _signs(*shape, seed):
    """Weights of +-1: unit variance with w^2 = 1 exactly, so a sum's variance given the weights is its count of
    terms (N(0, 1) weights would add the spread of one draw's mean square, 2.5 % here, to every measurement)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).double().requires_grad_()


def _enumerated(length, kernel, stride, padding, dilation) -> tuple[int, int]:
    """(T, out) by listing every (output, tap) pair of F.conv1d's window and the input index it reads."""
    out = (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    reads = sum(0 <= o * stride + t * dilation - padding < length for o in range(out) for t in range(kernel))
    return reads, out


SHAPES = [  # (length, kernel, stride, padding, dilation)
    (16, 7, 1, 3, 1),
    (16, 3, 2, 0, 1),
    (33, 4, 3, 2, 2),
    (5, 5, 1, 4, 1),  # padding beyond the kernel's half: outputs whose taps read mostly zeros
    (9, 2, 4, 1, 3),
    (7, 7, 1, 0, 1),
]


@pytest.mark.parametrize("length, kernel, stride, padding, dilation", SHAPES)
def test_taps_read_is_the_enumerated_count(length, kernel, stride, padding, dilation):
    reads, _ = _enumerated(length, kernel, stride, padding, dilation)
    assert unit_conv.taps_read(length, kernel, stride, padding, dilation) == reads


# (length, kernel, stride, padding, dilation, groups); the first two are the docstring's examples, where
# unit-scaling's count (T = out * kernel, length = stride * out) is 10.7 % and 12.5 % off in mean square
MEASURED = [(16, 7, 1, 3, 1, 1), (16, 3, 2, 0, 1, 1), (33, 4, 3, 2, 2, 2)]


@pytest.mark.parametrize("length, kernel, stride, padding, dilation, groups", MEASURED)
def test_conv1d_measures_unit_output_and_input_gradient(length, kernel, stride, padding, dilation, groups):
    channels_in, channels_out = 8, 16
    x = _randn(ROWS, channels_in, length, seed=length)
    w = _signs(channels_out, channels_in // groups, kernel, seed=kernel)
    y = U.conv1d(x, w, None, stride, padding, dilation, groups, constraint=None)
    y.backward(_randn(*y.shape, seed=length + 1, grad=False))
    _unit_within_z(y)
    _unit_within_z(x.grad)
    # unit-scaling's interior counts (T = out * kernel; kernel / stride reads per input) would give these runs mean
    # squares of ratio times the measured ones: measurably off where the exact count differs
    reads, out = _enumerated(length, kernel, stride, padding, dilation)
    for values, ratio in ((y, reads / (out * kernel)), (x.grad, reads * stride / (length * kernel))):
        mean, se = _mean_square_and_se(values)
        if abs(ratio - 1) > 0.05:
            assert abs(mean * ratio - 1.0) > Z * se * ratio


def test_conv1d_measures_unit_weight_and_bias_gradients():
    # a weight's gradient sums over the batch: independent batches give independent mean squares to average
    length, kernel, stride, padding, batches, batch = 16, 7, 1, 3, 64, 8
    w = _signs(16, 8, kernel, seed=3)
    bias = torch.zeros(16, dtype=torch.float64, requires_grad=True)
    weight_ms, bias_ms = [], []
    for b in range(batches):
        x = _randn(batch, 8, length, seed=100 + b)
        y = U.conv1d(x, w, bias, stride, padding, constraint=None)
        y.backward(_randn(*y.shape, seed=1000 + b, grad=False))
        weight_ms.append((w.grad**2).mean().item())
        bias_ms.append((bias.grad**2).mean().item())
        w.grad, bias.grad = None, None
    for found in (torch.tensor(weight_ms), torch.tensor(bias_ms)):
        assert abs(found.mean().item() - 1.0) < Z * found.std().item() / math.sqrt(batches)


@pytest.mark.parametrize("length, kernel, stride, padding, dilation, groups", MEASURED)
def test_conv1d_gradients_are_the_plain_ones_times_the_counted_scales(
    length, kernel, stride, padding, dilation, groups
):
    x, w, bias = _randn(3, 4, length, seed=1), _randn(6, 4 // groups, kernel, seed=2), _randn(6, seed=3)
    y = U.conv1d(x, w, bias, stride, padding, dilation, groups, constraint=None)
    g = _randn(*y.shape, seed=4, grad=False)
    y.backward(g)
    plain_x, plain_w, plain_b = (t.detach().requires_grad_() for t in (x, w, bias))
    plain = F.conv1d(plain_x, plain_w, plain_b, stride, padding, dilation, groups)
    plain.backward(g)
    reads, out = _enumerated(length, kernel, stride, padding, dilation)
    torch.testing.assert_close(y, plain * (4 // groups * reads / out) ** -0.5)
    torch.testing.assert_close(x.grad, plain_x.grad * (6 // groups * reads / length) ** -0.5)
    torch.testing.assert_close(w.grad, plain_w.grad * (3 * reads / kernel) ** -0.5)
    torch.testing.assert_close(bias.grad, plain_b.grad * (3 * out) ** -0.5)


def test_linear_readout_measures_a_fan_in_smaller_output_and_unit_input_gradient():
    fan_in, fan_out = 256, 64
    x, w = _randn(ROWS, 4, fan_in, seed=20), _signs(fan_out, fan_in, seed=21)
    y = U.linear_readout(x, w, None)
    y.backward(_randn(*y.shape, seed=22, grad=False))
    _unit_within_z(y * math.sqrt(fan_in))  # muP's readout: 1 / fan_in, fan_in^-1/2 of unit scale
    _unit_within_z(x.grad)


def test_mse_loss_measures_unit_gradients_in_input_and_target():
    x, t = _randn(ROWS, 64, seed=30), _randn(ROWS, 64, seed=31)
    loss = U.mse_loss(x, t)
    loss.backward()
    _unit_within_z(x.grad)
    _unit_within_z(t.grad)
    assert loss.item() == pytest.approx(F.mse_loss(x, t).item(), rel=1e-12)  # the loss is torch's mean
    summed = U.mse_loss(x.detach(), t.detach(), reduction="sum")
    assert summed.item() == pytest.approx(F.mse_loss(x, t, reduction="sum").item(), rel=1e-12)


def test_mse_loss_gradient_is_the_plain_one_times_eight_to_minus_half():
    x, t = _randn(5, 3, seed=40), _randn(5, 3, seed=41)
    U.mse_loss(x, t, reduction="sum").backward()
    torch.testing.assert_close(x.grad, 2 * (x - t).detach() / math.sqrt(8))
    torch.testing.assert_close(t.grad, -2 * (x - t).detach() / math.sqrt(8))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: U.conv1d(x.reshape(2, 4, 6), torch.ones(4, 2, 3, dtype=torch.float64) / 3, None, 2, 1, 1, 2),
        lambda x: U.linear_readout(
            x.reshape(4, 12), torch.ones(3, 12, dtype=torch.float64) / 2, None, "to_output_scale"
        ),
    ],
    ids=["conv1d", "linear_readout"],
)
def test_with_one_scale_ops_are_differentiable_functions(fn):
    x = _randn(48, seed=50)
    assert gradcheck(fn, (x,), eps=1e-6, atol=1e-9)


def test_conv1d_module_pads_with_values_once_and_scales_every_tap_as_read():
    module = U.Conv1d(4, 6, 5, padding=2, padding_mode="reflect", dtype=torch.float64)
    x = _randn(3, 4, 10, seed=60, grad=False)
    padded = F.pad(x, (2, 2), mode="reflect")  # 14 entries: every tap reads a value, T = out * kernel
    expected = F.conv1d(padded, module.weight) / math.sqrt(4 * 5)
    torch.testing.assert_close(module(x), expected)
    assert module(x).shape == (3, 6, 10)


@pytest.mark.parametrize(
    "module, shape",
    [
        (U.Conv1d(4, 6, 3, stride=2, padding=1, groups=2, bias=True, dtype=torch.float64), (3, 4, 11)),
        (U.Conv1d(4, 4, 3, padding=1, padding_mode="circular", dtype=torch.float64), (4, 9)),
        (U.LinearReadout(12, 5, dtype=torch.float64), (4, 12)),
    ],
    ids=["conv1d", "conv1d-circular-unbatched", "linear_readout"],
)
def test_modules_pickle_and_match_the_functions(module, shape):
    x = _randn(*shape, seed=70, grad=False)
    copy = pickle.loads(pickle.dumps(module))
    assert torch.equal(copy(x), module(x))
    if isinstance(module, U.LinearReadout):
        assert module.constraint is None and torch.equal(module(x), U.linear_readout(x, module.weight, None))
    elif module.padding_mode == "zeros":
        expected = U.conv1d(x, module.weight, module.bias, 2, 1, 1, 2)
        assert torch.equal(module(x), expected)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: U.conv1d(_randn(2, 4, 8, seed=0), _randn(4, 4, 3, seed=1), padding="same"), "padding"),
        (lambda: U.conv1d(_randn(2, 4, 8, seed=0), _randn(4, 4, 3, seed=1), stride=0), "stride"),
        (lambda: U.conv1d(_randn(2, 4, 4, seed=0), _randn(4, 4, 9, seed=1)), "kernel does not fit"),
        (lambda: U.conv1d(_randn(2, 4, 4, 4, seed=0), _randn(4, 4, 3, seed=1)), "conv1d takes"),
        (lambda: U.conv1d(_randn(2, 4, 1, seed=0), _randn(4, 4, 1, seed=1), stride=10, padding=5), "every output"),
        (lambda: U.conv1d(_randn(2, 4, 8, seed=0), _randn(3, 2, 3, seed=1), groups=2), "multiple of groups"),
        (lambda: U.conv1d(_randn(2, 6, 8, seed=0), _randn(4, 4, 3, seed=1)), "channels"),
        (lambda: U.Conv1d(4, 4, 3, padding="same"), "padding"),
        (lambda: U.Conv1d(4, 4, 3, constraint="x"), "constraint"),
        (lambda: U.LinearReadout(4, 4, constraint="x"), "constraint"),
        (lambda: U.mse_loss(_randn(3, seed=0), _randn(4, seed=1)), "one shape"),
        (lambda: U.mse_loss(_randn(3, seed=0), _randn(3, seed=1), reduction="none"), "reduction"),
        (lambda: U.mse_loss(_randn(3, seed=0), _randn(3, seed=1), size_average=True), "size_average"),
    ],
)
def test_bad_arguments_are_one_line_refusals(call, words):
    with pytest.raises(MomentcalcError, match=words) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_export_keeps_the_forward():
    model = torch.nn.Sequential(U.Conv1d(4, 8, 3, padding=1), torch.nn.Flatten(), U.LinearReadout(8 * 12, 5))
    x = torch.randn(2, 4, 12, generator=torch.Generator().manual_seed(0))
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))

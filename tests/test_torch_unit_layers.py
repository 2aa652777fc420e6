"""momentcalc.torch.unit's norms, embedding and cross entropy: output and input gradients measure 1 on N(0, 1)
tensors, the scales match derivations written here (chi-square laws, mpmath integrals), the gradients are the
plain function's times the backward scale, and the modules pickle."""

import math
import pickle

import pytest

torch = pytest.importorskip("torch")

import mpmath as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402
from momentcalc.torch import unit_layers, unit_scales  # noqa: E402

Z = 5.0  # z * SE tolerances, fixed seeds
ROWS = 1024  # standard errors from the spread of row means (entries within a normalized row are dependent)


def _unit_within_z(values: torch.Tensor, centre: bool = False) -> None:
    v = values.detach().double()
    if centre:
        v = v - v.mean()
    rows = (v * v).reshape(ROWS, -1).mean(dim=1)
    se = rows.std().item() / math.sqrt(ROWS)
    assert abs(rows.mean().item() - 1.0) < Z * se, (rows.mean().item(), se)


def _randn(*shape, seed, grad=True):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=grad)


# ---- scales against derivations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [4, 5, 64, 4096])
def test_norm_scales_are_the_chi_square_constants(d):
    # layernorm: |c|^2 ~ chi^2_(d-1) and J^T J = (d / |c|^2) P, P of rank d - 2: E[sum_j J_j1^2] = d (d - 2) /
    # (d (d - 3)) = (d - 2) / (d - 3) by E[1 / chi^2_k] = 1 / (k - 2); rmsnorm: chi^2_d, rank d - 1: (d - 1) / (d - 2)
    ln, rms = unit_scales.norm("layer_norm", d), unit_scales.norm("rms_norm", d)
    assert ln.forward == rms.forward == 1.0  # E[y^2] = 1 exactly at eps = 0
    assert ln.backward[0] == pytest.approx(math.sqrt((d - 3) / (d - 2)), rel=1e-15)
    assert rms.backward[0] == pytest.approx(math.sqrt((d - 2) / (d - 1)), rel=1e-15)


def _sig(x):
    return 1 / (1 + mp.exp(-x))


# the (classes, mult) pairs are those of tests/test_torch_unit.py's softmax checks: their quadratures are shared
@pytest.mark.parametrize("mult, smoothing", [(2.0, 0.0), (2.0, 0.2)])
def test_cross_entropy_scale_of_two_classes_is_an_mpmath_integral(mult, smoothing):
    # two classes: p_1 = sigmoid(mult (x_1 - x_2)), x_1 - x_2 ~ N(0, 2). The gradient row is p - q; for target 1
    # both entries square to (p_1 - s/2)^2, for target 0 to (p_2 - s/2)^2, the same law: the mean square is
    # E[(sigmoid(mult sqrt(2) Z) - s/2)^2]
    mp.mp.dps = 25
    m, s = mp.mpf(mult), mp.mpf(smoothing)
    mean_sq = mp.quad(lambda z: (_sig(m * mp.sqrt(2) * z) - s / 2) ** 2 * mp.npdf(z), [-mp.inf, 0, mp.inf])
    got = unit_scales.cross_entropy(2, mult, smoothing).backward[0]
    assert got == pytest.approx(float(1 / mp.sqrt(mean_sq)), rel=1e-8)


# ---- measured on large N(0, 1) tensors ---------------------------------------------------------------------------


def _measure(fn, x, seed):
    y = fn(x)
    y.backward(_randn(*y.shape, seed=seed, grad=False))
    return y, x.grad


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("d", [5, 64])
def test_norms_measure_unit_output_and_gradient(name, d):
    # d = 5: the backward constant is 3/2 (layernorm) and 4/3 (rmsnorm), far from unit-scaling's 1
    fn = getattr(U, name)
    x = _randn(ROWS * 16, d, seed=d)
    y, grad = _measure(lambda t: fn(t, (d,), eps=0.0), x, seed=d + 1)
    _unit_within_z(y)
    _unit_within_z(grad)


def test_norm_over_two_trailing_dimensions():
    x = _randn(ROWS * 4, 8, 8, seed=4)
    y, grad = _measure(lambda t: U.layer_norm(t, (8, 8), eps=0.0), x, seed=5)
    _unit_within_z(y)
    _unit_within_z(grad)


@pytest.mark.parametrize("n, mult, smoothing", [(16, 1.0, 0.0), (64, 4.0, 0.0), (256, 0.5, 0.1)])
def test_cross_entropy_measures_unit_gradient(n, mult, smoothing):
    gen = torch.Generator().manual_seed(9)
    logits = _randn(ROWS * 4, n, seed=10)
    target = torch.randint(0, n, (ROWS * 4,), generator=gen)
    U.cross_entropy(logits, target, label_smoothing=smoothing, mult=mult).backward()
    _unit_within_z(logits.grad)


def test_eps_moves_the_norms_output_by_less_than_its_bound():
    # a row's mean square of layer_norm's output is Q / (Q + d eps), Q = |c|^2 ~ chi^2_(d-1): its expectation by
    # mpmath lies within unit_layers.eps_shift of 1; the measured rows agree with it within z standard errors
    d, eps = 16, 1e-3
    mp.mp.dps = 20
    k = d - 1
    density = lambda q: q ** (k / 2 - 1) * mp.exp(-q / 2) / (2 ** (k / 2) * mp.gamma(k / 2))  # noqa: E731
    expected = float(mp.quad(lambda q: q / (q + d * eps) * density(q), [0, k, mp.inf]))
    assert 1 - unit_layers.eps_shift("layer_norm", d, eps) < 1 - d * eps / (d - 3) < expected < 1
    y = F.layer_norm(_randn(ROWS * 16, d, seed=15, grad=False), (d,), eps=eps)
    rows = (y * y).mean(dim=1)
    se = rows.std().item() / math.sqrt(rows.numel())
    assert abs(rows.mean().item() - expected) < Z * se


@pytest.mark.parametrize("name, d", [("layer_norm", 6), ("layer_norm", 16), ("rms_norm", 5)])
def test_eps_moves_the_backward_constant_by_less_than_its_bound(name, d):
    # the same inputs and output gradients at eps and at 0: the ratio of the gradients' mean squares has a small
    # standard error (common random numbers), and it is within eps_shift of 1
    eps, plain = 1e-3, F.layer_norm if name == "layer_norm" else F.rms_norm
    x, g = _randn(ROWS * 64, d, seed=16, grad=False), _randn(ROWS * 64, d, seed=17, grad=False)

    def grad_sq(e):
        x_ = x.clone().requires_grad_()
        plain(x_, (d,), eps=e).backward(g)
        return (x_.grad**2).sum(dim=1)

    at_eps, at_zero = grad_sq(eps), grad_sq(0.0)
    ratio = at_eps.mean() / at_zero.mean()
    se = ((at_eps - ratio * at_zero).std() / at_zero.mean() / math.sqrt(x.shape[0])).item()  # delta method
    assert abs(ratio.item() - 1) < unit_layers.eps_shift(name, d, eps) + Z * se


def test_an_eps_the_bound_cannot_vouch_for_is_refused():
    # layer_norm over 5 entries: Q ~ chi^2_4, E[1 / Q^2] infinite; eps = 0 is given, torch's default eps is not
    assert unit_layers.eps_shift("layer_norm", 5, 1e-5) == math.inf
    with pytest.raises(MomentcalcError, match="eps=1e-05") as caught:
        U.layer_norm(_x(4, 5), (5,))
    assert "\n" not in str(caught.value)
    assert U.layer_norm(_x(4, 5), (5,), eps=0.0).shape == (4, 5)
    # torch's default over 64 entries moves the constants by 3 * 64 * 1e-5 * 63 / (62 * 59) = 3.3e-5 at most
    assert unit_layers.eps_shift("layer_norm", 64, 1e-5) == pytest.approx(3 * 64 * 1e-5 * 63 / (62 * 59))


def test_embedding_measures_unit_table_gradient():
    # the output is the table's rows (N(0, 1) by nn.Embedding's initialization); the op scales the table's gradient
    gen = torch.Generator().manual_seed(12)
    table = _randn(ROWS, 16, seed=13)
    tokens = torch.randint(0, ROWS, (64, 256), generator=gen)
    _, grad = _measure(lambda w: U.embedding(tokens, w), table, seed=14)
    _unit_within_z(grad)


# ---- gradients ---------------------------------------------------------------------------------------------------


def _x(*shape, seed=0):
    return _randn(*shape, seed=seed)


@pytest.mark.parametrize("constraint", ["to_output_scale", "gmean"])
def test_norms_with_one_scale_are_differentiable_functions(constraint):
    # gmean: both scales sqrt(forward * backward), the output scaled by it too, a true derivative again
    w, b = _randn(6, seed=1, grad=False), _randn(6, seed=2, grad=False)
    assert gradcheck(lambda x: U.layer_norm(x, (6,), w, b, constraint=constraint), (_x(4, 6),), atol=1e-9)
    assert gradcheck(lambda x: U.rms_norm(x, (6,), w, constraint=constraint), (_x(4, 6),), atol=1e-9)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_norms_with_separate_scales_give_the_plain_gradient_times_the_backward_scale(name):
    x, w = _x(4, 6), _randn(6, seed=3)
    plain = F.layer_norm if name == "layer_norm" else F.rms_norm
    getattr(U, name)(x, (6,), w, eps=1e-5).sum().backward()
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    plain(x2, (6,), w2, eps=1e-5).sum().backward()
    s = unit_scales.norm(name, 6)
    torch.testing.assert_close(x.grad, x2.grad * s.backward[0], rtol=1e-12, atol=1e-14)
    # the gain receives 4 rows of products: its gradient by (6 / 24)^(1/2)
    torch.testing.assert_close(w.grad, w2.grad * 0.5, rtol=1e-12, atol=1e-14)


def test_cross_entropy_gradient_is_the_scale_times_softmax_minus_target():
    logits, target = _x(3, 64), torch.tensor([0, 63, 2])
    U.cross_entropy(logits, target, mult=4.0).backward()
    expected = torch.softmax(4.0 * logits.detach(), -1) - F.one_hot(target, 64)
    torch.testing.assert_close(logits.grad, expected * unit_scales.cross_entropy(64, 4.0).backward[0])
    # the loss itself: torch's mean loss of the mult-scaled logits
    loss = U.cross_entropy(logits, target, mult=4.0)
    torch.testing.assert_close(loss, F.cross_entropy(4.0 * logits, target))


def test_embedding_gradient_is_the_plain_one_times_the_scale():
    table, tokens = _x(10, 3), torch.tensor([[1, 1, 7, 2]])
    U.embedding(tokens, table).sum().backward()
    plain = torch.zeros(10, 3, dtype=torch.float64)
    plain[1], plain[7], plain[2] = 2.0, 1.0, 1.0
    torch.testing.assert_close(table.grad, plain * math.sqrt(10 / 4))


# ---- modules and refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, make_input",
    [
        (U.LayerNorm(6, elementwise_affine=True, dtype=torch.float64), lambda: _x(4, 6).detach()),
        (U.RMSNorm((2, 3), elementwise_affine=True), lambda: _x(4, 2, 3).detach().float()),
        (U.Embedding(10, 4), lambda: torch.tensor([[1, 2, 9]])),
    ],
    ids=["layernorm", "rmsnorm", "embedding"],
)
def test_modules_pickle_and_compute_the_same(module, make_input):
    x = make_input()
    copy = pickle.loads(pickle.dumps(module))
    assert torch.equal(copy(x), module(x))


def test_cross_entropy_module_pickles_and_matches_the_function():
    logits, target = _x(3, 256).detach(), torch.tensor([0, 4, 255])
    loss = U.CrossEntropyLoss(mult=0.5, reduction="sum", label_smoothing=0.1)
    copy = pickle.loads(pickle.dumps(loss))
    expected = U.cross_entropy(logits, target, reduction="sum", label_smoothing=0.1, mult=0.5)
    assert torch.equal(copy(logits, target), expected)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: U.layer_norm(_x(4, 3), (3,)), "E\\[f'"),  # d = 3: infinite backward constant
        (lambda: U.layer_norm(_x(4, 6), (5,)), "trailing"),
        (lambda: U.rms_norm(_x(4, 6), (6,), eps=0.1), "eps"),
        (lambda: U.layer_norm(_x(4, 6), (6,), constraint="max"), "constraint"),
        (lambda: U.LayerNorm(3), "E\\[f'"),
        (lambda: U.RMSNorm(8, eps=-1.0), "eps must be >= 0"),
        (lambda: U.LayerNorm(64, eps=1e-3), "eps=0.001"),
        (lambda: U.cross_entropy(_x(2, 4), torch.tensor([0, 1]), reduction="none"), "reduction"),
        (
            lambda: U.cross_entropy(
                _x(2, 2, 4),
                torch.tensor([0, 1]),
            ),
            "batch, vocab",
        ),
        (lambda: U.cross_entropy(_x(2, 4), torch.tensor([0, 1]), label_smoothing=1.5), "label_smoothing"),
        (lambda: U.cross_entropy(_x(2, 4), torch.tensor([0, 1]), weight=torch.ones(4)), "weight"),
        (lambda: U.CrossEntropyLoss(mult=0.0), "mult"),
        (lambda: U.embedding(torch.tensor([1]), _x(4, 2), sparse=True), "sparse"),
    ],
)
def test_bad_arguments_are_one_line_refusals(call, words):
    with pytest.raises(MomentcalcError, match=words) as caught:
        call()
    assert "\n" not in str(caught.value)


# torch.export of the new modules (dynamo's tracer): tests_long/test_long_torch_unit.py.

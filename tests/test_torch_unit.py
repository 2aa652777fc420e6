"""momentcalc.torch.unit: unit-scaled ops whose output and input gradients measure 1 on N(0, 1) tensors, whose
scales match mpmath integrals of the ops as unit-scaling 0.3.5 defines them, whose gradients are the plain
function's times the backward scale, and whose modules pickle."""

import math
import pickle

import pytest

torch = pytest.importorskip("torch")

import mpmath as mp  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402
from momentcalc.torch import unit_scales  # noqa: E402

Z = 5.0  # z * SE tolerances; every sampled check has a fixed seed
ROWS = 1024  # standard errors come from the spread of row means (softmax's entries within a row are dependent)


# ---- references: mpmath integrals over X ~ N(0, 1), written from the ops' definitions -------------------------


def _gauss(f):
    mp.mp.dps = 25
    return mp.quad(lambda x: f(x) * mp.npdf(x), [-mp.inf, 0, mp.inf])


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def _std_and_grad(f, df):
    """(std of f(X), sqrt(E[f'(X)^2])) by mpmath."""
    mean, second = _gauss(f), _gauss(lambda x: f(x) ** 2)
    return float(mp.sqrt(second - mean**2)), float(mp.sqrt(_gauss(lambda x: df(x) ** 2)))


def _silu_ref(b):
    b = mp.mpf(b)
    return _std_and_grad(lambda x: x * _sig(b * x), lambda x: _sig(b * x) + b * x * _sig(b * x) * _sig(-b * x))


def _gelu_ref(m):
    # unit-scaling's gelu(x, mult) = gelu(mult x) / mult = x Phi(mult x)
    m = mp.mpf(m)
    return _std_and_grad(lambda x: x * mp.ncdf(m * x), lambda x: mp.ncdf(m * x) + m * x * mp.npdf(m * x))


@pytest.mark.parametrize("mult", [0.37, 2.0])
def test_silu_scales_are_mpmath_integrals(mult):
    # 0.37 is no grid point of anything: an interpolated scale would miss
    std, grad = _silu_ref(mult)
    s = unit_scales.silu(mult)
    assert s.forward == pytest.approx(1 / std, rel=1e-12)
    assert s.backward[0] == pytest.approx(1 / grad, rel=1e-12)


@pytest.mark.parametrize("mult", [0.5, 3.0])
def test_gelu_scales_are_mpmath_integrals(mult):
    std, grad = _gelu_ref(mult)
    s = unit_scales.gelu(mult)
    assert s.forward == pytest.approx(1 / std, rel=1e-12)
    assert s.backward[0] == pytest.approx(1 / grad, rel=1e-12)


def test_silu_glu_scales_are_mpmath_integrals():
    # y = v * h(g), v and g independent N(0, 1): Var y = E[h^2]; the value's gradient E[h^2], the gate's E[h'^2]
    b = mp.mpf(2)
    h_sq = _gauss(lambda x: (x * _sig(b * x)) ** 2)
    dh_sq = _gauss(lambda x: (_sig(b * x) + b * x * _sig(b * x) * _sig(-b * x)) ** 2)
    s = unit_scales.silu_glu(2.0)
    assert s.forward == pytest.approx(float(1 / mp.sqrt(h_sq)), rel=1e-12)
    assert s.backward == pytest.approx((float(1 / mp.sqrt(h_sq)), float(1 / mp.sqrt(dh_sq))), rel=1e-12)


def test_other_gated_units_scales():
    # reglu: E[relu(g)^2] = E[relu'(g)^2] = 1/2, so every scale is sqrt(2); geglu by mpmath
    assert unit_scales.gated("relu").forward == pytest.approx(math.sqrt(2), rel=1e-15)
    assert unit_scales.gated("relu").backward == pytest.approx((math.sqrt(2), math.sqrt(2)), rel=1e-15)
    h_sq = _gauss(lambda x: (x * mp.ncdf(x)) ** 2)
    dh_sq = _gauss(lambda x: (mp.ncdf(x) + x * mp.npdf(x)) ** 2)
    s = unit_scales.gated("gelu")
    assert s.forward == pytest.approx(float(1 / mp.sqrt(h_sq)), rel=1e-12)
    assert s.backward == pytest.approx((float(1 / mp.sqrt(h_sq)), float(1 / mp.sqrt(dh_sq))), rel=1e-12)


def test_softmax_of_two_is_a_sigmoid():
    # n = 2: p1 = sigmoid(mult (x1 - x2)), x1 - x2 ~ N(0, 2); dp1/dx1 = mult p1 p2 = -dp2/dx1, so the gradient
    # reaching x1 from unit-variance output gradients has E = 2 mult^2 E[(p1 p2)^2]
    m = mp.mpf(2)
    p = lambda x: _sig(m * mp.sqrt(2) * x)  # noqa: E731
    rms = mp.sqrt(_gauss(lambda x: p(x) ** 2))
    grad = mp.sqrt(2 * m**2 * _gauss(lambda x: (p(x) * (1 - p(x))) ** 2))
    s = unit_scales.softmax(2, 2.0)
    assert s.convention == unit_scales.RMS
    assert s.forward == pytest.approx(float(1 / rms), rel=1e-8)
    assert s.backward[0] == pytest.approx(float(1 / grad), rel=1e-8)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_scales_are_sqrt_of_keep(p):
    assert unit_scales.dropout(p).forward == pytest.approx(math.sqrt(1 - p), rel=1e-15)
    assert unit_scales.dropout(p).backward[0] == pytest.approx(math.sqrt(1 - p), rel=1e-15)


def test_scales_are_computed_once_per_value():
    assert unit_scales.silu(0.75) is unit_scales.silu(0.75)
    assert unit_scales.silu(0.75).method in ("certified", "closed", "quadrature")


# ---- measured on large N(0, 1) tensors ---------------------------------------------------------------------------


def _unit_within_z(values: torch.Tensor, centre: bool) -> None:
    """The mean square (about the mean when centre) of values is 1 within Z standard errors of its row means."""
    v = values.detach().double()
    if centre:
        v = v - v.mean()
    rows = (v * v).reshape(ROWS, -1).mean(dim=1)
    se = rows.std().item() / math.sqrt(ROWS)
    assert abs(rows.mean().item() - 1.0) < Z * se, (rows.mean().item(), se)


def _run(fn, *shapes, seed):
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    y = fn(*inputs)
    y.backward(torch.randn(y.shape, generator=gen, dtype=torch.float64))
    return y, [x.grad for x in inputs]


ELEMENTWISE = [
    ("gelu", lambda x: U.gelu(x, 1.0, None)),
    ("gelu-0.25", lambda x: U.gelu(x, 0.25, None)),
    ("gelu-tanh-4", lambda x: U.gelu(x, 4.0, None, approximate="tanh")),
    ("silu", lambda x: U.silu(x, 1.0, None)),
    ("silu-0.5", lambda x: U.silu(x, 0.5, None)),
    ("silu-4", lambda x: U.silu(x, 4.0, None)),
    ("dropout-0.3", lambda x: U.dropout(x, 0.3)),
]


@pytest.mark.parametrize("name, fn", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_ops_measure_unit_output_std_and_gradient_rms(name, fn):
    torch.manual_seed(7)  # dropout's mask
    y, (grad,) = _run(fn, (1 << 20,), seed=11)
    _unit_within_z(y, centre=True)
    _unit_within_z(grad, centre=False)


# (256, 0.25): a second softmax of 256 logits, its scales a quadrature of their own: tests_long/test_long_torch_unit.py
@pytest.mark.parametrize("n, mult", [(16, 1.0), (256, 0.5), (64, 4.0)])
def test_softmax_measures_unit_output_rms_and_gradient_rms(n, mult):
    y, (grad,) = _run(lambda x: U.softmax(x, -1, constraint=None, mult=mult), (ROWS * 64, n), seed=n)
    _unit_within_z(y, centre=False)
    _unit_within_z(grad, centre=False)


GATED = [
    ("silu_glu-1", lambda v, g: U.silu_glu(v, g, 1.0)),
    ("silu_glu-0.5", lambda v, g: U.silu_glu(v, g, 0.5)),
    ("sigmoid_glu", U.sigmoid_glu),
    ("gelu_glu", U.gelu_glu),
    ("relu_glu", U.relu_glu),
]


@pytest.mark.parametrize("name, fn", GATED, ids=[e[0] for e in GATED])
def test_gated_units_measure_unit_output_and_both_gradients(name, fn):
    y, (g_value, g_gate) = _run(fn, (1 << 20,), (1 << 20,), seed=3)
    _unit_within_z(y, centre=True)
    _unit_within_z(g_value, centre=False)
    _unit_within_z(g_gate, centre=False)


def test_linear_matmul_and_residual_measure_unit():
    y, (gx, _) = _run(lambda x, w: U.linear(x, w, None, constraint=None), (ROWS * 8, 512), (256, 512), seed=5)
    _unit_within_z(y, centre=False)
    _unit_within_z(gx, centre=False)
    y, (gl, gr) = _run(lambda a, b: U.matmul(a, b, constraint=None), (ROWS, 256), (256, 512), seed=6)
    _unit_within_z(y, centre=False)
    _unit_within_z(gl, centre=False)
    _unit_within_z(gr, centre=False)

    def block(x, w):
        residual, skip = U.residual_split(x, tau=0.5)
        return U.residual_add(U.linear(residual, w, None, constraint=None), skip, tau=0.5)

    # the branch is a random linear map of the input, uncorrelated with the skip (as in a network at initialization)
    y, (gx, _) = _run(block, (ROWS * 8, 256), (256, 256), seed=8)
    _unit_within_z(y, centre=False)
    _unit_within_z(gx, centre=False)


# ---- gradients ---------------------------------------------------------------------------------------------------


def _x(n=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: U.gelu(x, 0.5),
        lambda x: U.silu(x, 2.0),
        lambda x: U.softmax(x.reshape(4, 6), -1, mult=1.5),
        lambda x: U.matmul(x.reshape(4, 6), x.reshape(6, 4)),
        lambda x: U.residual_add(*(lambda r, s: (U.gelu(r), s))(*U.residual_split(x, 0.3)), 0.3),
        lambda x: U.scale_fwd(U.scale_bwd(x, 1.7), 1.7),
        lambda x: U.linear(x.reshape(4, 6), torch.ones(3, 6, dtype=torch.float64) / 2, None),
    ],
)
def test_with_one_scale_ops_are_differentiable_functions(fn):
    # the default constraint (to_output_scale) makes the backward scale the forward one: torch's numeric Jacobian
    assert gradcheck(fn, (_x(),), eps=1e-6, atol=1e-9)


def test_separate_scales_give_the_plain_gradient_times_the_backward_scale():
    # with constraint=None the gradient is b f'(x) while the output is s f(x): grad = (b / s) d(output)/dx
    x, h = _x(), 1e-6
    for mult in (0.5, 2.0):
        s = unit_scales.silu(mult)
        U.silu(x, mult, None).sum().backward()
        with torch.no_grad():
            numeric = (U.silu(x + h, mult, None) - U.silu(x - h, mult, None)) / (2 * h)
        torch.testing.assert_close(x.grad, numeric * s.backward[0] / s.forward, rtol=1e-7, atol=1e-9)
        x.grad = None


def test_silu_glu_scales_each_input_by_its_own_backward_scale():
    v, g, h = _x(seed=1), _x(seed=2), 1e-6
    s = unit_scales.silu_glu(1.0)
    U.silu_glu(v, g).sum().backward()
    with torch.no_grad():
        dv = (U.silu_glu(v + h, g) - U.silu_glu(v - h, g)) / (2 * h)
        dg = (U.silu_glu(v, g + h) - U.silu_glu(v, g - h)) / (2 * h)
    torch.testing.assert_close(v.grad, dv * s.backward[0] / s.forward, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(g.grad, dg * s.backward[1] / s.forward, rtol=1e-7, atol=1e-9)


# ---- modules and refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        U.GELU(0.5),
        U.SiLU(2.0, constraint=None),
        U.Softmax(-1, mult=2.0),
        U.Dropout(0.0),
        U.Linear(6, 3, dtype=torch.float64),
    ],
    ids=["gelu", "silu", "softmax", "dropout", "linear"],
)
def test_modules_pickle_and_compute_the_same(module):
    x = _x().reshape(4, 6).detach()
    copy = pickle.loads(pickle.dumps(module))
    assert torch.equal(copy(x), module(x))


def test_modules_match_the_functions():
    x = _x().detach()
    assert torch.equal(U.GELU(0.5, approximate="tanh")(x), U.gelu(x, 0.5, approximate="tanh"))
    assert torch.equal(U.SiLU(2.0)(x), U.silu(x, 2.0))
    assert torch.equal(U.Softmax(0, mult=0.5)(x), U.softmax(x, 0, mult=0.5))
    module = U.Dropout(0.5).eval()
    assert torch.equal(module(x), x)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: U.silu(_x(), mult=-1.0), "mult"),
        (lambda: U.gelu(_x(), mult=0.0), "mult"),
        (lambda: U.gelu(_x(), approximate="erf"), "approximate"),
        (lambda: U.softmax(_x(), 0, mult=5000.0), "mult"),
        (lambda: U.silu(_x(), constraint="geometric"), "constraint"),
        (lambda: U.dropout(_x(), p=1.0), "drop probability"),
        (lambda: U.silu(_x(), inplace=True), "inplace"),
        (lambda: unit_scales.gated("tanh"), "gate"),
        (lambda: U.SiLU(mult=float("nan")), "mult"),
        (lambda: U.GELU(constraint="gmeans"), "constraint"),
        (lambda: U.Softmax(-1, constraint="to_input"), "constraint"),
        (lambda: U.Linear(4, 4, constraint="x"), "constraint"),
    ],
)
def test_bad_parameters_are_one_line_refusals(call, words):
    with pytest.raises(MomentcalcError, match=words) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_a_value_the_exact_methods_cannot_give_is_refused():
    # softmax quadrature declines beyond a logit spread of 4 (mult = 1 / t); Monte Carlo is never used for a scale
    with pytest.raises(MomentcalcError) as caught:
        unit_scales.softmax(16, 50.0)
    assert "\n" not in str(caught.value)

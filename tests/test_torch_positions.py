"""momentcalc.torch.positions: the covariance across positions that causal attention and gated units carry.

Closed forms: uniform causal averaging of independent values, the arc-cosine kernels (Cho & Saul 2009) as relu's
and the step's dual kernels, silu's by scipy and Gauss-Hermite. The attention told of a covariance is measured in
test_torch_unit_attention.py, beside the softmax constants it needs."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy import integrate, stats  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import positions as P  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402

D, S = 16, 4


def test_uniform_causal_averaging_of_independent_values_correlates_rows_by_sqrt_ratio():
    # at exactly uniform weights (E[p^2] = 1 / n^2, no spread) row i averages i + 1 iid values: Var = 1 / (i + 1)
    # and Cov(i, k) = 1 / (k + 1) for i < k (the shared values), so corr = sqrt((i + 1) / (k + 1))
    seq = 7
    allowed = P.causal(seq)
    n = torch.arange(1, seq + 1, dtype=torch.float64)
    out = P.attention_forward(torch.eye(seq, dtype=torch.float64), allowed, 1.0 / n**2)
    for i in range(seq):
        assert out[i, i].item() == pytest.approx(1 / (i + 1), rel=1e-12)
        for k in range(i + 1, seq):
            assert P.correlation(out)[i, k].item() == pytest.approx(math.sqrt((i + 1) / (k + 1)), rel=1e-12)
    # backward: value k collects g_i / (i + 1) from every row i >= k: Var = sum_{i >= k} 1 / (i + 1)^2
    back = P.value_backward(torch.eye(seq, dtype=torch.float64), allowed, 1.0 / n**2)
    for k in range(seq):
        assert back[k, k].item() == pytest.approx(sum(1 / (i + 1) ** 2 for i in range(k, seq)), rel=1e-12)


def test_spread_of_the_weights_is_counted_once_per_row():
    # fully correlated values (R = all ones): every row's output is the one value, whatever the weights
    seq = 5
    allowed = P.causal(seq)
    m2 = torch.tensor([1.0, 0.3, 0.15, 0.09, 0.05], dtype=torch.float64)  # any E[p^2] >= 1 / n^2
    ones = torch.ones(seq, seq, dtype=torch.float64)
    assert torch.allclose(P.attention_forward(ones, allowed, m2), ones, rtol=1e-12)
    # independent values: row i's variance is n E[p^2] (a weighted sum of n unit values)
    n = torch.arange(1, seq + 1, dtype=torch.float64)
    assert torch.allclose(P.attention_forward(torch.eye(seq, dtype=torch.float64), allowed, m2).diagonal(), n * m2)


# degree-1 and degree-0 arc-cosine kernels (Cho & Saul 2009, eq. 6): with theta = arccos(rho),
# E[relu(X) relu(Y)] = (sin theta + (pi - theta) cos theta) / (2 pi), E[step(X) step(Y)] = (pi - theta) / (2 pi)
def _arc_cosine(degree, theta):
    return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi) if degree else (np.pi - theta) / (2 * np.pi)


@pytest.mark.parametrize("name, degree", [("relu", 1), ("relu_grad", 0)])
def test_relu_dual_kernels_are_the_arc_cosine_kernels(name, degree):
    rho = torch.linspace(-1.0, 1.0, P.GRID, dtype=torch.float64)[::8]  # the table's own points: no interpolation
    want = _arc_cosine(degree, np.arccos(rho.numpy()))
    # the kinks are split exactly; the step's inner expectation Phi(rho x / s) steepens as |rho| -> 1, which
    # 32 Gauss-Legendre nodes per piece resolve to about 1e-8 there
    assert np.max(np.abs(P.dual_kernel(name, rho).numpy() - want)) < 1e-7


def test_silu_dual_kernel_at_the_ends_and_between_grid_points():
    def silu(x):
        return x / (1 + np.exp(-x))

    def expect(f):
        return integrate.quad(lambda x: f(x) * stats.norm.pdf(x), -40, 40, epsabs=1e-14, points=[0])[0]

    k = P.dual_kernel("silu", torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)).tolist()
    assert k[0] == pytest.approx(expect(lambda x: silu(x) ** 2), rel=1e-8)  # rho = 1: E[silu^2]
    assert k[1] == pytest.approx(expect(silu) ** 2, rel=1e-8)  # rho = 0: E[silu]^2
    assert k[2] == pytest.approx(expect(lambda x: silu(x) * silu(-x)), rel=1e-8)
    # off the grid (rho = 0.3), by a different rule: 2-d Gauss-Hermite, exact to rounding for smooth silu; the
    # table's linear interpolation errs by at most h^2 / 8 max|K''| (h = 2 / 1024, |K''| < 1 for silu)
    rho, (x, w) = 0.3, np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    y = rho * x[:, None] + math.sqrt(1 - rho**2) * x[None, :]
    ref = float(w @ (silu(x)[:, None] * silu(y)) @ w)
    assert P.dual_kernel("silu", torch.tensor(rho, dtype=torch.float64)).item() == pytest.approx(ref, abs=1e-6)


def test_gated_unit_correlation_is_rho_times_the_normalized_kernel():
    cov = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    relu = P.gated_forward(cov, "relu")
    theta = math.acos(0.5)
    assert relu[0, 1].item() == pytest.approx(0.5 * _arc_cosine(1, theta) / 0.5, rel=1e-9)  # E[relu^2] = 1/2
    value, gate = P.gated_backward(cov, torch.eye(2, dtype=torch.float64) + 0.2, "relu")
    assert value[0, 1].item() == pytest.approx(0.2 * _arc_cosine(1, theta) / 0.5, rel=1e-9)
    assert gate[0, 1].item() == pytest.approx(0.2 * 0.5 * _arc_cosine(0, theta) / 0.5, rel=1e-9)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: P.PositionCovariance(torch.ones(3)), "square"),
        (lambda: P.PositionCovariance(torch.tensor([[1.0, 0.2], [0.1, 1.0]])), "symmetric"),
        (lambda: P.PositionCovariance(torch.full((2, 2), math.nan)), "finite"),
        (lambda: P.PositionCovariance(torch.eye(2), width=0), "width must be at least 1"),
        (lambda: P.PositionCovariance(torch.eye(2), width=2.5), "whole number"),
        (lambda: P.dual_kernel("tanh", torch.zeros(1)), "dual kernel"),
    ],
)
def test_bad_covariances_are_refused(make, words):
    with pytest.raises(MomentcalcError, match=words):
        make()


def test_attention_refuses_a_covariance_it_cannot_use():
    q = torch.randn(1, 1, S, D)
    eye = torch.eye(S + 1, dtype=torch.float64)
    with pytest.raises(MomentcalcError, match=r"\(4, 4\)"):
        U.scaled_dot_product_attention(q, q, q, is_causal=True, position_covariance=P.PositionCovariance(eye))
    with pytest.raises(MomentcalcError, match="PositionCovariance"):
        U.scaled_dot_product_attention(q, q, q, is_causal=True, position_covariance=torch.eye(S))
    told = P.PositionCovariance(torch.eye(S, dtype=torch.float64))
    with pytest.raises(MomentcalcError, match="dropout"):
        U.scaled_dot_product_attention(q, q, q, dropout_p=0.1, is_causal=True, position_covariance=told)

"""predict()'s attention rules: softmax against scipy quadrature (n = 2: a sigmoid of the logits' difference),
the product of two independent Gaussian tensors against its closed form and a sampled product, one causal
attention against one measured run (fixed seed, z standard errors of the measured batch), and the leaves:
autograd Functions kept whole, momentcalc's scale primitives modeled."""

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from scipy import integrate, special, stats  # noqa: E402
from torch import nn  # noqa: E402

from momentcalc.torch import predict  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402
from momentcalc.torch.predict import attention  # noqa: E402
from momentcalc.torch.predict.law import uniform  # noqa: E402

Z = 4.5


def _two_logits(sigma: float) -> tuple[float, float]:
    """E[p_1^2] and E[sum_j (dp_j / dx_1)^2] of softmax over 2 iid N(0, sigma^2) logits: p_1 = sigmoid(D),
    D = x_1 - x_2 ~ N(0, 2 sigma^2), dp_1/dx_1 = -dp_2/dx_1 = p_1 p_2."""
    law = stats.norm(0.0, math.sqrt(2.0) * sigma)

    def expect(f):
        return integrate.quad(lambda d: f(special.expit(d)) * law.pdf(d), -math.inf, math.inf, epsabs=1e-13)[0]

    return expect(lambda p: p * p), expect(lambda p: 2 * (p * (1 - p)) ** 2)


def test_softmax_of_two_logits_is_a_sigmoid_of_their_difference():
    sigma = 1.0  # t = 1 lies on the grid of t: no rounding
    m2, g = _two_logits(sigma)
    out = attention.softmax(uniform(0.3, sigma**2, (16, 5, 2), -1), -1, (16, 5, 2))
    assert out.law.pooled_mean == pytest.approx(0.5, abs=1e-12)
    assert out.law.pooled_var == pytest.approx(m2 - 0.25, rel=1e-6)
    assert out.back[0] == pytest.approx(g, rel=1e-6)


def test_product_of_independent_gaussians():
    k, (ma, va), (mb, vb) = 24, (0.5, 2.0), (-0.3, 0.7)
    a, b = uniform(ma, va, (64, 10, k), -1), uniform(mb, vb, (64, k, 12), -1)
    out = attention.matmul(a, b, (64, 10, 12))
    # sum of k products of independent factors: E = k ma mb, Var = k (E[a^2] E[b^2] - ma^2 mb^2)
    assert out.law.pooled_mean == pytest.approx(k * ma * mb, rel=1e-12)
    assert out.law.pooled_var == pytest.approx(k * ((va + ma**2) * (vb + mb**2) - (ma * mb) ** 2), rel=1e-12)
    gen = torch.Generator().manual_seed(5)
    x = ma + math.sqrt(va) * torch.randn(20000, 1, k, generator=gen, dtype=torch.float64)
    y = mb + math.sqrt(vb) * torch.randn(20000, k, 1, generator=gen, dtype=torch.float64)
    sample = (x @ y).flatten()
    se_mean = sample.std().item() / math.sqrt(sample.numel())
    se_var = ((sample - sample.mean()) ** 2).std().item() / math.sqrt(sample.numel())
    assert abs(sample.mean().item() - out.law.pooled_mean) < Z * se_mean
    assert abs(sample.var().item() - out.law.pooled_var) < Z * se_var
    assert out.back == pytest.approx((12 * (vb + mb**2), 10 * (va + ma**2)))


class _Attention(nn.Module):
    def __init__(self, width: int, gain: float):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(width, width, bias=False) for _ in range(3))
        with torch.no_grad():
            for lin in (self.q, self.k):
                lin.weight.mul_(gain)  # logits of std about 1: far from uniform weights

    def forward(self, x):
        q, k, v = self.q(x)[:, None], self.k(x)[:, None], self.v(x)[:, None]
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.fixture(scope="module")
def one_block():
    torch.manual_seed(3)
    model = _Attention(32, 2.4)
    x = torch.randn(4096, 3, 32, generator=torch.Generator().manual_seed(4))
    return model, x, predict(model, x, seed=2)


def _mean_square_se(t: torch.Tensor) -> tuple[float, float]:
    """Mean square of t and its standard error over the batch (the only axis whose entries are independent)."""
    per_item = t.detach().double().pow(2).flatten(1).mean(1)
    return per_item.mean().item(), per_item.std().item() / math.sqrt(per_item.numel())


def test_causal_attention_against_one_measured_run(one_block):
    model, x, p = one_block
    node = next(n for n in p.nodes if n.kind == "scaled_dot_product_attention")
    assert node.modeled, node.note
    measured, se = _mean_square_se(model(x))
    predicted = node.std**2 + node.mean**2
    assert abs(predicted - measured) < Z * se, (predicted, measured, se)
    # rows attend to 1, 2, 3 keys: the output's variance is var(v) (1 + 2 E[p^2](2) + 3 E[p^2](3)) / 3 < var(v)
    v = next(n for n in p.nodes if n.module == "v")
    assert node.std < 0.9 * v.std


def test_causal_attention_gradients(one_block):
    _, _, p = one_block
    for name in ("v", "q", "k"):
        n = next(n for n in p.nodes if n.module == name)
        # measured over 4096 * 3 * 32 values from one injected gradient: a few per cent
        assert n.grad_rms == pytest.approx(n.measured_grad_rms, rel=0.05), name


class _Doubler(torch.autograd.Function):
    """Identity forward, gradient doubled: fx would trace into forward and lose the backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class _Scaled(nn.Module):
    def forward(self, x):
        y = U.scale_bwd(U.scale_fwd(x, 3.0), 0.5)
        return _Doubler.apply(y)


def test_autograd_functions_are_leaves_and_unit_scales_are_modeled():
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(6))
    p = predict(_Scaled(), x)
    [unknown] = p.unmodeled
    assert "_Doubler" in unknown.note
    scaled = [n for n in p.nodes if n.kind == "apply__ScaleGrad"]
    assert [n.modeled for n in scaled] == [True, True]
    assert scaled[0].std == pytest.approx(3 * p.nodes[0].measured_std, rel=1e-9)
    # the traced run keeps each Function's backward: doubled, then halved, then passed on
    assert p.nodes[0].measured_grad_rms == pytest.approx(unknown.measured_grad_rms, rel=1e-6)
    assert p.nodes[0].grad_rms == pytest.approx(0.5 * scaled[1].grad_rms, rel=1e-9)


class _Masked(nn.Module):
    def __init__(self, mask, dropout_p: float):
        super().__init__()
        self.register_buffer("mask", mask)
        self.dropout_p = dropout_p

    def forward(self, x):
        q = x[:, None]
        return F.scaled_dot_product_attention(q, q, q, attn_mask=self.mask, dropout_p=self.dropout_p)


@pytest.mark.parametrize(
    "mask, dropout_p, needs",
    [
        (torch.full((4, 4), 0.5), 0.0, "a float attn_mask must hold only 0 and -inf"),
        (torch.ones(4, 4, dtype=torch.bool).tril(), 0.1, "attention with dropout"),
        (torch.zeros(4, 4, dtype=torch.bool), 0.0, "attends to no key"),
    ],
)
def test_attention_it_cannot_model_is_named(mask, dropout_p, needs):
    x = torch.randn(8, 4, 16, generator=torch.Generator().manual_seed(7))
    with torch.random.fork_rng():
        p = predict(_Masked(mask, dropout_p), x)
    [node] = p.unmodeled
    assert needs in node.note

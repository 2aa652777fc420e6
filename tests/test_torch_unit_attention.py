"""momentcalc.torch.unit.scaled_dot_product_attention: output and q, k, v gradients measure 1 per query row and
per key position (causal rows attend to different numbers of keys), also for positions correlated as told by
position_covariance; the passes are the plain function's (float64 gradcheck) times the scales; refusals.

Every case uses head size 16 and mult 1 (softmax temperature t = 4) and at most 4 keys, so that the few exact
softmax constants (quadrature, seconds each) are shared by all tests, the transformer test's included."""

import math

import pytest

torch = pytest.importorskip("torch")

import mpmath as mp  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import positions as P  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402
from momentcalc.torch.unit_attention import attention_scales, softmax_law  # noqa: E402

Z = 5.0
D = 16  # head size
GROUPS = 4096  # independent (batch, head) rows: standard errors come from the spread of their means


def test_softmax_of_two_keys_matches_the_sigmoid_integral():
    # n = 2 at t = 4: p1 = sigmoid((x1 - x2) / 4), x1 - x2 ~ N(0, 2); E[p1^2] and the backward constant
    # 2 E[(p1 p2)^2] / t^2 (dp1/dx1 = p1 p2 / t = -dp2/dx1) by mpmath, not by momentcalc's quadrature
    mp.mp.dps = 25
    t, s = mp.mpf(4), mp.sqrt(2)

    def expect(f):
        return mp.quad(lambda x: f(1 / (1 + mp.exp(-s * x / t))) * mp.npdf(x), [-mp.inf, 0, mp.inf])

    m2, g = softmax_law(2, 4.0)
    assert m2 == pytest.approx(float(expect(lambda p: p * p)), rel=1e-8)
    assert g == pytest.approx(float(2 * expect(lambda p: (p * (1 - p)) ** 2) / t**2), rel=1e-8)
    assert softmax_law(1, 4.0) == (1.0, 0.0)  # one key: the constant 1, no gradient


def _inputs(s_k: int, seed: int, s_q: int | None = None):
    """q with rows of norm sqrt(D) (the logits q k^T / sqrt(D) are then exactly N(0, 1) given q), k and v N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(GROUPS, 1, s_q or s_k, D, generator=gen, dtype=torch.float64)
    q = q * math.sqrt(D) / q.norm(dim=-1, keepdim=True)
    k, v = (torch.randn(GROUPS, 1, s_k, D, generator=gen, dtype=torch.float64) for _ in range(2))
    return [x.requires_grad_(True) for x in (q, k, v)]


def _unit_per_position(x: torch.Tensor, skip: tuple[int, ...] = ()) -> None:
    """Mean square at each sequence position within Z standard errors (over the GROUPS rows) of 1."""
    per_group = (x.detach() ** 2).mean(dim=-1).reshape(GROUPS, -1)  # (groups, positions)
    for pos in range(per_group.shape[1]):
        if pos in skip:
            continue
        col = per_group[:, pos]
        se = col.std().item() / math.sqrt(GROUPS)
        assert abs(col.mean().item() - 1) < Z * se, (pos, col.mean().item(), se)


def _run(seed: int, **kwargs):
    q, k, v = _inputs(4, seed)
    y = U.scaled_dot_product_attention(q, k, v, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    y.backward(torch.randn(y.shape, generator=gen, dtype=y.dtype))
    return y, q.grad, k.grad, v.grad


def test_full_attention_measures_unit_output_and_gradients():
    y, gq, gk, gv = _run(1)
    for x in (y, gq, gk, gv):
        _unit_per_position(x)


def test_causal_attention_is_unit_per_row_and_per_key():
    # row i attends to i + 1 keys: one scale per row (output, query) and per key (key, value)
    y, gq, gk, gv = _run(2, is_causal=True)
    _unit_per_position(y)
    _unit_per_position(gq, skip=(0,))  # row 0 attends to one key: softmax is the constant 1, no gradient
    assert gq[:, :, 0].abs().max().item() < 1e-12
    _unit_per_position(gk)
    _unit_per_position(gv)


def test_boolean_and_float_masks_give_the_causal_scales():
    tril = torch.ones(4, 4, dtype=torch.bool).tril()
    causal = _run(3, is_causal=True)
    for mask in (tril, torch.zeros(4, 4, dtype=torch.float64).masked_fill(~tril, -math.inf)):
        for a, b in zip(causal, _run(3, attn_mask=mask)):
            torch.testing.assert_close(a, b)


def test_dropout_keeps_unit_scale():
    torch.manual_seed(4)  # dropout draws from the global generator
    y, gq, gk, gv = _run(4, dropout_p=0.25)
    for x in (y, gk, gv):
        _unit_per_position(x)


def test_passes_are_the_plain_ones_times_the_scales_and_the_plain_one_passes_gradcheck():
    # separate scales make the backward pass no derivative of the forward one (by design, as unit-scaling's):
    # output = s_out * plain, and each input's gradient = its backward scale * plain's vector-Jacobian product.
    # The scales themselves are written out here from the formulas (m2, g of softmax over n = i + 1 keys).
    gen = torch.Generator().manual_seed(5)
    q, k, v, g = (torch.randn(2, 2, 3, D, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(4))

    def plain(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / D)

    assert gradcheck(plain, (q, k, v))
    laws = [softmax_law(n, 4.0) for n in (1, 2, 3)]
    s_out = torch.tensor([1 / math.sqrt(n * m2) for n, (m2, _) in zip((1, 2, 3), laws)]).view(3, 1)
    b_q = torch.tensor([1.0] + [1 / math.sqrt(n * laws[n - 1][1]) for n in (2, 3)]).view(3, 1)
    b_k = torch.tensor([1 / math.sqrt(sum(laws[i][1] for i in range(j, 3))) for j in range(3)]).view(3, 1)
    b_v = torch.tensor([1 / math.sqrt(sum(laws[i][0] for i in range(j, 3))) for j in range(3)]).view(3, 1)
    y = U.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(y, s_out * plain(q, k, v))
    ours = torch.autograd.grad(y, (q, k, v), g)
    theirs = torch.autograd.grad(plain(q, k, v), (q, k, v), g)
    for a, b, scale in zip(ours, theirs, (b_q, b_k, b_v)):
        torch.testing.assert_close(a, scale * b)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"attn_mask": torch.full((4, 4), 0.5)}, "only 0 and -inf"),
        ({"attn_mask": torch.zeros(4, 4, dtype=torch.bool)}, "attends to no key"),
        ({"attn_mask": torch.ones(4, 4, dtype=torch.bool), "is_causal": True}, "not both"),
        ({"dropout_p": 1.0}, "drop probability"),
        ({"mult": 1e-5}, "sqrt(head size) / mult"),
        ({"is_causal": "yes"}, "is_causal"),
    ],
)
def test_refusals(kwargs, words):
    q, k, v = (torch.randn(1, 1, 4, D) for _ in range(3))
    with pytest.raises(MomentcalcError, match=words.replace("(", r"\(").replace(")", r"\)")):
        U.scaled_dot_product_attention(q, k, v, **kwargs)


# position_covariance: q, k, v correlated across positions (as a causal stack makes them), and the output gradient
S = 4


def test_independent_positions_give_the_default_scales():
    allowed = P.causal(S)
    eye = torch.eye(S, dtype=torch.float64)
    told = attention_scales(allowed, D, D, position_covariance=P.PositionCovariance(eye, eye))
    plain = attention_scales(allowed, D, D)
    for name in plain:
        assert torch.allclose(told[name], plain[name], rtol=1e-12), name


def _correlated():
    """R: the correlation causal averaging gives (row i, k: sqrt((i + 1) / (k + 1))); G: its key-side twin."""
    i = torch.arange(1, S + 1, dtype=torch.float64)
    r = (torch.minimum(i[:, None], i[None, :]) / torch.maximum(i[:, None], i[None, :])).sqrt()
    return r, r.flip(0, 1)


def _draw(cov, gen):
    return torch.linalg.cholesky(cov) @ torch.randn(GROUPS, 1, S, D, generator=gen, dtype=torch.float64)


def _mean_squares(x):
    per_group = (x.detach() ** 2).mean(dim=-1).reshape(GROUPS, -1)
    return per_group.mean(0), per_group.std(0) / math.sqrt(GROUPS)


@pytest.mark.parametrize("told", [True, False])
def test_attention_told_of_correlated_positions_measures_unit_per_position(told):
    r, g = _correlated()
    gen = torch.Generator().manual_seed(5)
    q, k, v = (_draw(r, gen).requires_grad_(True) for _ in range(3))
    cov = P.PositionCovariance(r, g) if told else None
    out = U.scaled_dot_product_attention(q, k, v, is_causal=True, position_covariance=cov)
    out.backward(_draw(g, gen))
    # the model (uniform mean weights, each row's spread from iid logits) leaves out relative O(1 / t^2) terms
    # of correlated logits (t = 4: 1 / 16) and, for q, O(1 / d) (positions.py); tolerance: that plus Z SE
    band = 1 / 16
    for name, x, skip in (("output", out, ()), ("query", q.grad, (0,)), ("key", k.grad, ()), ("value", v.grad, ())):
        mean, se = _mean_squares(x)
        misses = [p for p in range(S) if p not in skip and abs(mean[p].item() - 1) > band + Z * se[p].item()]
        if told:
            assert not misses, (name, mean.tolist())
        elif name == "output":  # the default scales assume independent values: the last row's output is far off
            assert S - 1 in misses and mean[S - 1].item() > 1.5, mean.tolist()

"""predict() on momentcalc.torch.transformer's model, and the causal attention's grid of attended-key counts.

Why in tests_long/: each exact softmax constant takes seconds by quadrature, and these need some twenty of them
(every count up to 8, the grid beyond, the counts checked off the grid) and 2-block passes forward and
back (the exact variant's attention scales: 15 more).
"""

import pytest

torch = pytest.importorskip("torch")

from momentcalc.torch import predict  # noqa: E402
from momentcalc.torch import transformer as T  # noqa: E402
from momentcalc.torch.predict import attention, trace  # noqa: E402


def test_counts_off_the_grid_match_the_exact_constants():
    # std 0.5 (t = 2): the standard variant's logits are about this spread; 10 and 20 lie between grid nodes
    t = attention._grid_t(2.0)
    m2, g = attention.softmax_law(torch.tensor([10, 20, 27]), 1.0 / t)
    for i, n in enumerate((10, 20)):
        exact_m2, exact_g = attention._exact(n, t)
        assert float(m2[i]) == pytest.approx(exact_m2, rel=1e-3)
        assert float(g[i]) == pytest.approx(exact_g, rel=1e-2)


@pytest.fixture(scope="module", params=["standard", "exact"])
def small(request):
    # the op's default scales (positions independent): the default "propagated" tells each attention a covariance
    # across positions that predict does not carry (test_an_attention_told_a_covariance_is_named below)
    config = T.Config(depth=2, width=64, heads=2, seq=16, batch=32, positions="independent")
    torch.manual_seed(0)
    model = T.Stack(config, request.param)
    x = torch.randn((config.batch, config.seq, config.width), generator=torch.Generator().manual_seed(1))
    return request.param, model, x, predict(model, x)


def test_the_traced_model_computes_what_the_model_does(small):
    # autograd Functions and unit ops kept whole: the same forward, and the same gradient at the input
    _, model, x, _ = small
    graph = trace.trace(model)
    for net in (model, graph):
        x.grad = None
        xs = x.clone().requires_grad_(True)
        net(xs).pow(2).sum().backward()
        if net is model:
            expected = xs.grad
    torch.testing.assert_close(xs.grad, expected, rtol=0, atol=0)


def test_transformer_blocks(small):
    variant, _, _, p = small
    assert not p.unmodeled, [n.note for n in p.unmodeled]
    blocks = p.blocks(depth=2)
    first = next(n for n in p.nodes if n.kind == "scaled_dot_product_attention")
    # block 0 meets independent positions: its output and its attention within 5 %
    assert first.std == pytest.approx(first.measured_std, rel=0.05)
    assert blocks[0].std == pytest.approx(blocks[0].measured_std, rel=0.05)
    if variant == "standard":  # the attention branch is a small share of the stream: every block within 5 %
        assert blocks[1].std == pytest.approx(blocks[1].measured_std, rel=0.05)
    else:  # unit attention scales row i by about sqrt(i + 1): values correlated across positions (block 0's
        # causal averages, carried by the stream) make it larger than the independent positions predicted
        second = [n for n in p.nodes if n.kind == "scaled_dot_product_attention"][1]
        assert second.measured_std > 1.2 * second.std


def test_an_attention_told_a_covariance_is_named():
    # the transformer's default: each attention's scales come from a propagated covariance across positions; predict
    # names those attentions as unmodeled (it carries no such covariance) and goes on from their measured statistics
    config = T.Config(depth=2, width=64, heads=2, seq=16, batch=32)
    torch.manual_seed(0)
    model = T.Stack(config, "exact")
    x = torch.randn((config.batch, config.seq, config.width), generator=torch.Generator().manual_seed(1))
    p = predict(model, x)
    named = [n.note for n in p.unmodeled]
    assert len(named) == 2 and all("position_covariance" in note for note in named), named

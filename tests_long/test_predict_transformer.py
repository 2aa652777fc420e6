"""predict() on momentcalc.torch.transformer's model, and the causal attention's grid of attended-key counts.

Why in tests_long/: each exact softmax constant takes seconds by quadrature, and these need some twenty of them
(every count up to 8, the grid beyond, the counts checked off the grid) and a 2-block pass forward and back.
"""

import pytest

torch = pytest.importorskip("torch")

from momentcalc.torch import predict  # noqa: E402
from momentcalc.torch import transformer as T  # noqa: E402
from momentcalc.torch.predict import attention  # noqa: E402


def test_counts_off_the_grid_match_the_exact_constants():
    # std 0.5 (t = 2): the standard variant's logits are about this spread; 10 and 20 lie between grid nodes
    t = attention._grid_t(2.0)
    m2, g = attention.softmax_law(torch.tensor([10, 20, 27]), 1.0 / t)
    for i, n in enumerate((10, 20)):
        exact_m2, exact_g = attention._exact(n, t)
        assert float(m2[i]) == pytest.approx(exact_m2, rel=1e-3)
        assert float(g[i]) == pytest.approx(exact_g, rel=1e-2)


@pytest.mark.parametrize("variant", ["standard", "exact"])
def test_transformer_blocks_within_five_per_cent(variant):
    config = T.Config(depth=2, width=64, heads=2, seq=16, batch=32)
    torch.manual_seed(0)
    model = T.Stack(config, variant)
    x = torch.randn((config.batch, config.seq, config.width), generator=torch.Generator().manual_seed(1))
    p = predict(model, x)
    assert not p.unmodeled, [n.note for n in p.unmodeled]
    for block in p.blocks(depth=2):
        assert block.std == pytest.approx(block.measured_std, rel=0.05), block.module
    # block 0 meets independent positions: its attention within 5 % too (later blocks part: see docs/predict.md)
    first = next(n for n in p.nodes if n.kind == "scaled_dot_product_attention")
    assert first.std == pytest.approx(first.measured_std, rel=0.05)

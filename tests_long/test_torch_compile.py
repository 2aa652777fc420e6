"""torch.compile of momentcalc.torch.unit's ops with fullgraph=True: one graph, the same output and gradients.

Why in tests_long/ (run by .ci/run after the README's test command, not by it): importing dynamo and compiling
with inductor (a C++ build of the generated kernels) takes about a minute on 2 cores, whatever the op's size.
The scales are looked up once while tracing (unit_scales' functions are torch.compiler.assume_constant_result):
traced, the packaged table's loading would break the graph, which fullgraph=True turns into an error.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from momentcalc.torch import mp  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402


def _grads(fn, *inputs):
    """(output, gradient of each input) of fn, for a fixed output gradient."""
    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = fn(*inputs)
    y.backward(torch.linspace(-1.0, 1.0, y.numel()).reshape(y.shape))
    return y.detach(), [x.grad for x in inputs if x.is_floating_point()]


def _same(fn, compiled, *inputs, tol):
    (y, grads), (y_c, grads_c) = _grads(fn, *inputs), _grads(compiled, *inputs)
    torch.testing.assert_close(y_c, y, rtol=tol, atol=tol)
    for g, g_c in zip(grads, grads_c):
        torch.testing.assert_close(g_c, g, rtol=tol, atol=tol)


def test_inductor_compiles_layer_norm_with_separate_scales():
    def fn(x):
        return U.layer_norm(x, (32,), eps=1e-5, constraint=None)

    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    _same(fn, torch.compile(fn, fullgraph=True), x, tol=1e-5)


def _block(tokens, table, w, gate_w, target):
    """One of every kind of unit op: embedding, norm, linear, gated unit, activations, softmax, loss."""
    h = U.rms_norm(U.embedding(tokens, table), (16,))
    h = U.silu_glu(U.linear(h, w, None), U.linear(h, gate_w, None), mult=0.5)
    h = mp.mp_sum(U.gelu(h, 2.0, None), U.softmax(h, -1, mult=2.0), t=0.3)
    h = U.layer_norm(U.residual_add(*U.residual_split(h, 0.5), 0.5), (16,))
    return U.cross_entropy(h.reshape(-1, 16), target, mult=0.5)


def test_one_graph_holds_every_kind_of_op():
    gen = torch.Generator().manual_seed(1)
    tokens, target = torch.randint(0, 50, (4, 8), generator=gen), torch.randint(0, 16, (32,), generator=gen)
    table, w, gate_w = (torch.randn(s, generator=gen) for s in ((50, 16), (16, 16), (16, 16)))
    compiled = torch.compile(_block, backend="aot_eager", fullgraph=True)
    for i, (y, y_c) in enumerate(
        zip(_grads(_block, tokens, table, w, gate_w, target)[1], _grads(compiled, tokens, table, w, gate_w, target)[1])
    ):
        torch.testing.assert_close(y_c, y, rtol=1e-6, atol=1e-6, msg=f"input {i}")


def test_a_refused_value_is_refused_under_compile_too():
    # raised while tracing, momentcalc's refusal reaches the caller inside torch's own error, its line intact
    compiled = torch.compile(lambda x: U.layer_norm(x, (3,)), backend="aot_eager", fullgraph=True)
    with pytest.raises(Exception) as caught:
        compiled(torch.randn(4, 3))
    assert "MomentcalcError: the exact methods give no positive E[f'(X)^2] for 'layernorm(d=3)'" in str(caught.value)


def _readout_block(x, conv_w, readout_w, target):
    """The ops whose scales are counts: conv1d over padding, linear_readout, mse_loss."""
    h = U.conv1d(x, conv_w, None, stride=2, padding=3, constraint=None)
    return U.mse_loss(U.linear_readout(h.flatten(1), readout_w, None), target)


def test_one_graph_holds_conv1d_linear_readout_and_mse_loss():
    gen = torch.Generator().manual_seed(2)
    x, conv_w = torch.randn(4, 3, 16, generator=gen), torch.randn(6, 3, 7, generator=gen)
    readout_w, target = torch.randn(5, 6 * 8, generator=gen), torch.randn(4, 5, generator=gen)
    compiled = torch.compile(_readout_block, backend="aot_eager", fullgraph=True)
    _same(_readout_block, compiled, x, conv_w, readout_w, target, tol=1e-6)

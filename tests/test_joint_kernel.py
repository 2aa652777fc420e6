"""The joint ops' compiled kernel (estimators.joint_kernel): the declared rows functions against the declared numpy
samplers on the same inputs, its bits on any thread count, and a stale generated dispatch refused loudly."""

from __future__ import annotations

import numpy as np
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError, catalog
from momentcalc.estimators import dispatch, driver, joint_kernel
from momentcalc.spec import parse

# One op of each rows function, at parameters where every branch of it runs (lppool's general p, layernorm's
# centering, softmax's temperature); each compiles one small function.
CASES = ("softmax(n=7,t=0.5)", "layernorm(d=5,eps=0.1)", "lppool(p=3,n=4)", "lppool(p=2,n=4)")


@pytest.mark.parametrize("spec", CASES)
def test_rows_functions_compute_what_the_numpy_samplers_do(spec):
    # Same inputs through both forms of the declaration: the compiled rows (with the kernels' exp) and numpy's
    # `sample`, written independently of it. Zero rows and huge logits are the edge cases.
    op = parse(spec).ops[0]
    n = op.info.size(op)
    x = np.random.default_rng(3).normal(0.2, 2.0, (200, n))
    x[0] = 0.0
    x[1, 0] = 300.0
    a, b = op.info.rows_args(op)
    for rows in (x, x[2:]):  # softmax: each row shifted by its largest logit, then the whole block without a shift
        want_y, want_g = op.info.sample(op, rows.copy())
        y, g = np.empty(len(rows)), np.empty(len(rows))
        dispatch.rows(op.name)(rows.ravel().copy(), len(rows), n, a, b, y, g)
        np.testing.assert_allclose(y, want_y, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-300)


def test_the_joint_kernel_gives_the_same_bits_on_any_thread_count_and_agrees_with_1_over_n():
    found, before = [], driver.threads()
    for count in (1, 2):
        driver.use_threads(count)
        try:  # 4 chunks of 32768 outputs and a part
            found.append(mc.estimate("softmax(n=8,t=0.5)", method="montecarlo", samples=140_000, seed=5).estimates[0])
        finally:
            driver.use_threads(before)
    one, two = found
    assert (one.mean, one.std, one.grad_sq) == (two.mean, two.std, two.grad_sq)
    assert one.notes == ("compiled kernel of the inputs",)
    assert abs(one.mean - 1 / 8) <= 4.5 * one.mean_se  # the mean is 1/n exactly (exchangeable outputs)


def test_a_stale_generated_rows_table_is_refused_with_the_command(monkeypatch):
    monkeypatch.setattr(dispatch, "ROWS", {k: v for k, v in dispatch.ROWS.items() if k != "softmax"})
    with pytest.raises(MomentcalcError, match="dispatch.py is stale.*dispatch_gen"):
        joint_kernel.compiled_rows(catalog.lookup("rmsnorm"))

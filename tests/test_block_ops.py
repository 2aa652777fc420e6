"""The vectorized block loops of the chain kernels (estimators/block_ops.py)."""

from __future__ import annotations

import math

import kernel_samples
import mp_activations as ref
import naive
import numpy as np
import pytest
from numba import njit

from momentcalc.estimators import block_ops, montecarlo, normals
from momentcalc.ops import activations as act
from momentcalc.spec import parse


def _scratch(n):
    return np.empty(n), np.empty(n, dtype=np.int64)


@njit(fastmath={"contract"})
def _exp_nonpositive(t, out, scale):
    """exp over an array, as add_sigmoid_block computes it: block_ops._exp_parts in a loop, 2^k viewed from its bits."""
    for j in range(t.size):
        out[j], scale[j] = block_ops._exp_parts(t[j])
    powers = scale.view(np.float64)
    for j in range(t.size):
        out[j] *= powers[j]


def test_exp_is_within_one_ulp_of_libm_down_to_its_floor():
    rng = np.random.default_rng(0)
    t = np.concatenate(
        (
            [0.0, -0.0, -1e-300, -1e-17, -0.5 * math.log(2), -math.log(2), -700.0, block_ops.EXP_FLOOR],
            -rng.exponential(1.0, 4000),
            -rng.uniform(0, 708, 4000),
        )
    )
    out, scale = _scratch(t.size)
    _exp_nonpositive(t, out, scale)
    want = np.array([math.exp(v) for v in t])
    assert np.max(np.abs(out - want) / np.spacing(want)) <= 1.0


def test_exp_below_its_floor_is_the_floors():
    t = np.array([-708.5, -745.0, -1e6, -np.inf])
    out, scale = _scratch(t.size)
    _exp_nonpositive(t, out, scale)
    np.testing.assert_allclose(out, math.exp(block_ops.EXP_FLOOR), rtol=2.3e-16)


def test_add_sigmoid_block_adds_the_scalar_sigmoid_and_its_squared_derivative():
    rng = np.random.default_rng(1)
    z = np.concatenate((rng.standard_normal(2000), [0.0, -0.0, 30.0, -30.0, 400.0, -400.0]))
    mu, sigma = 0.3, 1.5
    x = mu + sigma * z
    fused, plain = np.zeros(6), np.zeros(6)
    e, scale = _scratch(z.size)
    block_ops.add_sigmoid_block(z, z.size, mu, sigma, 0.6, 0.04, fused, e, scale)
    y = np.array([act.sigmoid(v, 0.0, 0.0) for v in x])
    g = np.array([act.sigmoid_grad(v, 0.0, 0.0) ** 2 for v in x])
    block_ops.add_block(y, g, z.size, 0.6, 0.04, plain)
    # Values within a few ulp of the scalar ones (exp within one, then products), summed in another order.
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-13 * z.size)


@njit
def _one_at_a_time(block, xs, a, b):
    """Rows [f(x), f'(x)^2] of a block loop run on each x alone (mu = x, sigma = 0, shifts 0): its values."""
    out = np.empty((xs.size, 2))
    z, e, e2, scale = np.zeros(1), np.empty(1), np.empty(1), np.empty(1, dtype=np.int64)
    for i in range(xs.size):
        acc = np.zeros(6)
        block(z, 1, xs[i], 0.0, a, b, 0.0, 0.0, acc, e, e2, scale)
        out[i, 0], out[i, 1] = acc[0], acc[4]
    return out


def _ulps(got, want):
    """|got - want| in units of the double spacing at want (want from mpmath, rounded once). Below 1e-280 in
    units of the spacing at 1e-280: the blocks' exp stops at exp(EXP_FLOOR) ~ 3e-308, so silu(-1e6) is -3e-302,
    not -0."""
    return np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1e-280))


EXTREME_X = [0.0, 1e-300, 1e-17, 1e-8, 0.17, 0.3465, 0.5, 1.0, 3.0, 18.0, 19.5, 40.0, 300.0, 355.0, 400.0, 1e6]


# gelu(approximate=tanh): 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) takes five roundings (x^3 two, the products, the
# sum; no cancellation: both terms have the sign of x), up to 3 ulps of 2u, each amplified |2u| times by exp.
def _gelu_tanh_slack(x):
    return 3.0 * np.abs(2.0 * 0.7978845608028654 * (x + 0.044715 * x**3))


# test id -> mp_activations name and parameters, (a, b) as the kernels pass them, the factor on x inside exp (its
# rounding is not the block's: swish's beta x, celu's x / alpha), or the ulps that rounding costs as a function of
# x where it is not linear. The block is mc_kernels.<the id before "(">_block.
BLOCKS = {
    "tanh": ("tanh", {}, (0.0, 0.0), 1.0),
    "silu": ("silu", {}, (0.0, 0.0), 1.0),
    "swish": ("swish", {"beta": 1.7}, (1.7, 0.0), 1.7),
    "elu": ("elu", {"alpha": 0.5}, (0.5, 0.0), 1.0),
    "celu": ("celu", {"alpha": 0.3}, (0.3, 0.0), 1.0 / 0.3),
    "selu": ("selu", {}, (act.SELU_ALPHA, act.SELU_LAMBDA), 1.0),
    "softplus": ("softplus", {}, (1.0, 0.0), 1.0),
    "softplus(beta=2.5)": ("softplus", {"beta": 2.5}, (2.5, 0.0), 2.5),
    "log_sigmoid": ("log_sigmoid", {}, (0.0, 0.0), 1.0),
    "mish": ("mish", {}, (0.0, 0.0), 1.0),
    "gelu(approximate=tanh)": ("gelu_tanh", {}, (1.0, 0.0), _gelu_tanh_slack),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_vectorized_blocks_are_within_a_few_ulps_of_mpmath(name):
    # mp_activations (mpmath at 30 digits, the textbook forms) is the reference; the bounds are the measured
    # maxima rounded up.
    from momentcalc.estimators import mc_kernels

    ref_name, params, (a, b), inner = BLOCKS[name]
    f, df, _ = ref.make(ref_name, **params)
    rng = np.random.default_rng(4)
    x = np.concatenate((EXTREME_X, [-v for v in EXTREME_X], rng.standard_normal(3000) * 3, rng.uniform(-40, 40, 1000)))
    got = _one_at_a_time(getattr(mc_kernels, name.partition("(")[0] + "_block"), x, a, b)
    with ref.mp.workdps(ref.MP_DPS):
        want = np.array([[float(f(ref.mp.mpf(v))), float(df(ref.mp.mpf(v)) ** 2)] for v in x])
    # The rounding of the product inside exp (swish's beta x, celu's x / alpha, gelu(approximate=tanh)'s 2u; exact
    # for tanh's 2x, silu's x, elu's and selu's x) is amplified |product| times by exp: up to that many ulps more,
    # as in the scalar ops.
    slack = np.abs(inner(x)) if callable(inner) else (np.abs(inner * x) if inner != 1.0 else 0.0)
    f_ulps = _ulps(got[:, 0], want[:, 0]) - slack
    g_ulps = _ulps(got[:, 1], want[:, 1]) - 2.0 * slack
    # f within 4 ulps (measured: 2 for softplus, log_sigmoid and gelu(approximate=tanh), 4 for mish); f'^2 (two
    # roundings of a product of roundings, then squared) within 32 ulps (measured: 7 for tanh, 17 for silu, 5 for
    # softplus and log_sigmoid, 20 for gelu(approximate=tanh), 14 for mish over 25,000 points), except near the
    # zeros of f' (swish's at x = -1.28 / beta, gelu's, mish's), where a relative bound cannot hold: there 1e-15
    # absolute.
    assert f_ulps.max() <= 4, (x[f_ulps.argmax()], f_ulps.max())
    # mish' = t + x sech^2 sigmoid crosses 0 at x = -1.19 between two terms of 0.3: at f'^2 >= 1e-3 that
    # cancellation costs 39 ulps (the scalar op measured 34), at f'^2 >= 1e-2 14. Its band is the wider one.
    near_zero = np.abs(want[:, 1]) < (1e-2 if name == "mish" else 1e-3)
    assert g_ulps[~near_zero].max() <= 32, (x[~near_zero][g_ulps[~near_zero].argmax()], g_ulps[~near_zero].max())
    assert np.all(np.abs(got[near_zero, 1] - want[near_zero, 1]) <= 1e-15)


def _shifted_sums(values, shift, powers):
    d = np.asarray(values) - shift
    return [np.sum(d**p) for p in powers]


def test_add_block_adds_the_shifted_power_sums():
    rng = np.random.default_rng(2)
    y, g = rng.gamma(2.0, size=1000) + 5.0, rng.uniform(size=1000)
    acc = np.full(6, 1.0)
    block_ops.add_block(y, g, 999, 5.5, 0.4, acc)
    want = 1.0 + np.array(_shifted_sums(y[:999], 5.5, (1, 2, 3, 4)) + _shifted_sums(g[:999], 0.4, (1, 2)))
    np.testing.assert_allclose(acc, want, rtol=1e-12)


def test_add_relu_block_is_add_block_of_relu_and_its_derivative():
    z = np.random.default_rng(3).standard_normal(700)
    x = -0.2 + 1.3 * z
    fused, plain = np.zeros(6), np.zeros(6)
    block_ops.add_relu_block(z, 700, -0.2, 1.3, 0.3, 0.5, fused)
    block_ops.add_block(np.maximum(x, 0.0), (x > 0.0).astype(float), 700, 0.3, 0.5, plain)
    np.testing.assert_allclose(fused, plain, rtol=1e-13)


@pytest.mark.parametrize(
    "spec",
    [
        "relu",
        "sigmoid",
        "tanh",
        "silu",
        "swish(beta=1.7)",
        "elu(alpha=0.5)",
        "celu(alpha=0.3)",
        "selu",
        "leaky_relu(slope=0.2)",
        "softplus(beta=2.5)",
        "log_sigmoid",
        "gelu",
        "gelu(approximate=tanh)",
        "mish",
    ],
)
def test_activation_rows_are_the_moments_of_the_chain_outputs(spec):
    # The activation kernel (run_activation_chunk) uses the block loops (mc_kernels.BLOCKS) where an activation
    # has one and the scalar dispatch for the others; sample_chain_outputs always the scalar functions, on the
    # same normals.
    program = montecarlo.compile_program(parse(spec), 0.1, 2.0)
    count = 3 * normals.BLOCK + 5
    state = montecarlo.chunk_states(6, 0, 1)[0]
    row = montecarlo.program_chunks(program, 0).launch(state.copy()[None], np.array([count]))[0]
    values, g2 = kernel_samples.sample_chain_outputs(state, count, 0.1, 2.0, program.codes, program.params)
    np.testing.assert_allclose(row[:5], naive.moments(values), rtol=1e-9)
    np.testing.assert_allclose(row[5:8], naive.moments(g2)[:3], rtol=1e-9)

"""The vectorized block loops of the chain kernels (estimators/block_ops.py, erf_blocks.py, block_math.py)."""

from __future__ import annotations

import math

import kernel_samples
import kernel_stamps
import mp_activations as ref
import naive
import numba
import numpy as np
import pytest
from numba import njit
from scipy import integrate, special, stats

from momentcalc.estimators import (
    block_ops,
    chain_kernels,
    dispatch,
    erf_blocks,
    jit,
    mc_kernels,
    montecarlo,
    normals,
    quadrature,
)
from momentcalc.ops import activations as act
from momentcalc.ops.activations import logistic
from momentcalc.settings import RunSettings
from momentcalc.spec import parse


def _scratch(n):
    return np.empty(n), np.empty(n, dtype=np.int64)


@njit(fastmath={"contract"})
def _vector_exp(t, out, scale):
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
    _vector_exp(t, out, scale)
    want = np.array([math.exp(v) for v in t])
    assert np.max(np.abs(out - want) / np.spacing(want)) <= 1.0


@njit(error_model="numpy", fastmath={"reassoc", "contract"})  # the flags dispatch.py compiles rows functions with
def _exp_scalar_loop(t, out):
    for j in range(t.size):
        out[j] = block_ops.vector_exp(t[j])


def test_the_scalar_exp_of_the_rows_functions_is_within_one_ulp_of_libm_down_to_its_floor():
    # block_ops.vector_exp (softmax's rows: 2^k bitcast in a register, not viewed from an array)
    t = np.concatenate(([0.0, -1e-300, -700.0, block_ops.EXP_FLOOR], -np.random.default_rng(1).exponential(3.0, 2000)))
    t = np.concatenate((t, -np.random.default_rng(2).uniform(0, 708, 2000)))
    out = np.empty(t.size)
    _exp_scalar_loop(t, out)
    want = np.array([math.exp(v) for v in t])
    assert np.max(np.abs(out - want) / np.spacing(want)) <= 1.0
    below = np.array([-708.5, -745.0, -1e6])
    _exp_scalar_loop(below, out)
    np.testing.assert_allclose(out[:3], math.exp(block_ops.EXP_FLOOR), rtol=2.3e-16)


def test_exp_below_its_floor_is_the_floors():
    t = np.array([-708.5, -745.0, -1e6, -np.inf])
    out, scale = _scratch(t.size)
    _vector_exp(t, out, scale)
    np.testing.assert_allclose(out, math.exp(block_ops.EXP_FLOOR), rtol=2.3e-16)


def test_add_sigmoid_block_adds_the_scalar_sigmoid_and_its_squared_derivative():
    rng = np.random.default_rng(1)
    z = np.concatenate((rng.standard_normal(2000), [0.0, -0.0, 30.0, -30.0, 400.0, -400.0]))
    mu, sigma = 0.3, 1.5
    x = mu + sigma * z
    fused, plain = np.zeros(6), np.zeros(6)
    e, scale = _scratch(z.size)
    block_ops.add_sigmoid_block(z, z.size, mu, sigma, 0.6, 0.04, fused, e, scale)
    y = np.array([logistic.sigmoid(v, 0.0, 0.0) for v in x])
    g = np.array([logistic.sigmoid_grad(v, 0.0, 0.0) ** 2 for v in x])
    block_ops.add_block(y, g, z.size, 0.6, 0.04, plain)
    # Values within a few ulp of the scalar ones (exp within one, then products), summed in another order.
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-13 * z.size)


kernel_stamps.stamp_kernels_of(__file__)  # _one_at_a_time is cached under the package's kernel sources, like theirs


@jit.shared(mc_kernels.BLOCK)
def _one_at_a_time(block, xs, a, b):
    """Rows [f(x), f'(x)^2] of a block loop run on each x alone (mu = x, sigma = 0, shifts 0): its values.
    One compilation for every block (each passed by its address), not one per activation."""
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
# x where it is not linear. The block is dispatch.BLOCKS of the activation named before "(".
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
    "gelu": ("gelu", {}, (0.0, 0.0), 1.0),
    "erf": ("erf", {}, (0.0, 0.0), 1.0),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_vectorized_blocks_are_within_a_few_ulps_of_mpmath(name):
    # mp_activations (mpmath at 30 digits, the textbook forms) is the reference; the bounds are the measured
    # maxima rounded up.
    ref_name, params, (a, b), inner = BLOCKS[name]
    f, df, _ = ref.make(ref_name, **params)
    rng = np.random.default_rng(4)
    x = np.concatenate((EXTREME_X, [-v for v in EXTREME_X], rng.standard_normal(3000) * 3, rng.uniform(-40, 40, 1000)))
    got = _one_at_a_time(dispatch.BLOCKS[dispatch.CODES[name.partition("(")[0]]], x, a, b)
    with ref.mp.workdps(ref.MP_DPS):
        want = np.array([[float(f(ref.mp.mpf(v))), float(df(ref.mp.mpf(v)) ** 2)] for v in x])
    # The rounding of the product inside exp (swish's beta x, celu's x / alpha, gelu(approximate=tanh)'s 2u; exact
    # for tanh's 2x, silu's x, elu's and selu's x) is amplified |product| times by exp: up to that many ulps more,
    # as in the scalar ops.
    slack = np.abs(inner(x)) if callable(inner) else (np.abs(inner * x) if inner != 1.0 else 0.0)
    f_ulps = _ulps(got[:, 0], want[:, 0]) - slack
    g_ulps = _ulps(got[:, 1], want[:, 1]) - 2.0 * slack
    # f within 4 ulps (measured: 2 for softplus, log_sigmoid and gelu(approximate=tanh), 4 for mish, exact gelu and
    # erf); f'^2 (two
    # roundings of a product of roundings, then squared) within 32 ulps (measured: 7 for tanh, 17 for silu, 5 for
    # softplus and log_sigmoid, 20 for gelu(approximate=tanh), 14 for mish over 25,000 points), except near the
    # zeros of f' (swish's at x = -1.28 / beta, gelu's, mish's), where a relative bound cannot hold: there 1e-15
    # absolute.
    assert f_ulps.max() <= 4, (x[f_ulps.argmax()], f_ulps.max())
    # mish' = t + x sech^2 sigmoid crosses 0 at x = -1.19 between two terms of 0.3: at f'^2 >= 1e-3 that
    # cancellation costs 39 ulps (the scalar op measured 34), at f'^2 >= 1e-2 14. Its band is the wider one; so is
    # exact gelu's, whose f' = Phi + x phi crosses 0 at x = -0.75 between terms of 0.23 (37 ulps at f'^2 = 1.2e-3).
    near_zero = np.abs(want[:, 1]) < (1e-2 if name in ("mish", "gelu") else 1e-3)
    assert g_ulps[~near_zero].max() <= 32, (x[~near_zero][g_ulps[~near_zero].argmax()], g_ulps[~near_zero].max())
    assert np.all(np.abs(got[near_zero, 1] - want[near_zero, 1]) <= 1e-15)


@pytest.mark.parametrize("name", ["sigmoid", *BLOCKS])
def test_values_loops_are_within_a_few_ulps_of_mpmath(name):
    # The values forms (dispatch.VECTOR_VALUES: f alone, in place over a buffer) share each block's math: the same
    # bound on f as test_vectorized_blocks_are_within_a_few_ulps_of_mpmath, against the same mpmath reference.
    ref_name, params, (a, b), inner = BLOCKS.get(name, ("sigmoid", {}, (0.0, 0.0), 1.0))
    f = ref.make(ref_name, **params)[0]
    rng = np.random.default_rng(5)
    x = np.concatenate((EXTREME_X, [-v for v in EXTREME_X], rng.standard_normal(3000) * 3, rng.uniform(-40, 40, 1000)))
    got = x.copy()
    e, scale = _scratch(x.size)
    dispatch.VECTOR_VALUES[dispatch.CODES[name.partition("(")[0]]](got, x.size, a, b, e, np.empty(x.size), scale)
    with ref.mp.workdps(ref.MP_DPS):
        want = np.array([float(f(ref.mp.mpf(v))) for v in x])
    slack = np.abs(inner(x)) if callable(inner) else (np.abs(inner * x) if inner != 1.0 else 0.0)
    f_ulps = _ulps(got, want) - slack
    assert f_ulps.max() <= 4, (x[f_ulps.argmax()], f_ulps.max())


def test_generated_values_loops_are_the_scalar_op_to_the_bit():
    # Every activation gets dispatch.values_N, its scalar f over a buffer. The batched max-pool pair kernel takes
    # it where an activation has no vectorized loop of its own (dispatch.VECTOR_VALUES), and QMC's staged path for
    # every activation: both then give the per-value kernels' bits.
    from momentcalc.catalog import lookup

    x = np.concatenate((np.random.default_rng(7).standard_normal(500) * 4, [0.0, -0.0, -3.0, 3.0, 6.0, -1e6, 1e6]))
    scratch = (np.empty(x.size), np.empty(x.size), np.empty(x.size, np.int64))
    with_params = {"hardtanh": "hardtanh(min_val=-0.5,max_val=2.0)", "leaky_relu": "leaky_relu(slope=0.1)"}
    with_params |= {"swish": "swish(beta=1.7)", "elu": "elu(alpha=0.5)", "celu": "celu(alpha=0.3)"}
    with_params |= {"softplus": "softplus(beta=2.5)", "gelu": "gelu(approximate=tanh)"}
    for name, code in dispatch.CODES.items():
        for spec in {name, with_params.get(name, name)}:
            a, b = montecarlo.compile_program(parse(spec), 0.0, 1.0).params[0]
            got = x.copy()
            dispatch.SCALAR_VALUES[code](got, x.size, a, b, *scratch)
            np.testing.assert_array_equal(got, [lookup(name).f(v, a, b) for v in x], err_msg=spec)


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
        "erf",
    ],
)
def test_activation_rows_are_the_moments_of_the_chain_outputs(spec):
    # The activation kernel (chain_kernels.fused_rows, one for all) calls each activation's block loop
    # (dispatch.BLOCKS): the vectorized loop its declaration names, else its scalar functions'; sample_chain_outputs
    # always the scalar functions, on the same normals.
    program = montecarlo.compile_program(parse(spec), 0.1, 2.0)
    count = 3 * normals.BLOCK + 5
    state = montecarlo.chunk_states(6, 0, 1)[0]
    row = montecarlo.program_chunks(program, 0).launch(state.copy()[None], np.array([count]))[0]
    values, g2 = kernel_samples.sample_chain_outputs(state, count, 0.1, 2.0, program.codes, program.params)
    np.testing.assert_allclose(row[:5], naive.moments(values), rtol=1e-9)
    np.testing.assert_allclose(row[5:8], naive.moments(g2)[:3], rtol=1e-9)


@njit
def _erf_parts_at(xs, c, c2, far):
    """(erf(t), erfc(t)) at t = c |x| for each x, as a loop computes them from erf_blocks._erfc_parts."""
    out = np.empty((xs.size, 2))
    scale = np.empty(1, dtype=np.int64)
    for i in range(xs.size):
        ratio, e, scale[0] = erf_blocks._erfc_parts(xs[i], c, c2, far)
        erf_t, erfc_t = erf_blocks._erf_erfc(c * abs(xs[i]), ratio, e * scale.view(np.float64)[0])
        out[i, 0], out[i, 1] = erf_t, erfc_t * erf_blocks.EXP_UNBIAS
    return out


def tail_grid(steps: int) -> np.ndarray:
    """A grid through each interval of block_ops' erf (0.46875, 4 and 6 in t; t = x / sqrt(2) for gelu), the far
    tails (erfc(27.3) and Phi(-38.5) underflow), tiny and huge values, and `steps` even steps over (0, 40]; both
    signs."""
    edges = [0.0, 5e-324, 1e-300, 1e-17, 1e-8, 0.46875, 0.6629, 4.0, 5.657, 6.0, 8.485, 26.5, 27.0, 27.3, 37.5, 38.0]
    grid = np.concatenate((edges, [38.5, 40.0, 1e6], np.linspace(0.0, 40.0, steps + 1)[1:]))
    return np.concatenate((grid, -grid))


# Every 0.04 (the mpmath reference costs about 0.2 ms a point); tests_long/test_long_block_ops.py runs every 0.005.
TAIL_X = tail_grid(1000)


def _ulps_of(got, want):
    """|got - want| in units of the double spacing at want, the least normal's below it: true ulps for normal
    results, units of the least subnormal for subnormal ones."""
    return np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(float).tiny))


def test_erfc_parts_are_within_a_few_ulps_of_mpmath_out_to_underflow(xs=TAIL_X):
    # erf and erfc at t = |x| (far: the relative digits of erfc(t) up to its underflow at 27.3) against mpmath at 30
    # digits. Measured over the dense grid: erf 4 ulps (on t <= 0.46875, t A(t^2) / B(t^2)), erfc 4.
    t = np.abs(xs)
    got = _erf_parts_at(t, 1.0, 1.0, True)
    with ref.mp.workdps(ref.MP_DPS):
        want = np.array([[float(ref.mp.erf(v)), float(ref.mp.erfc(v))] for v in map(ref.mp.mpf, t)])
    assert _ulps_of(got[:, 0], want[:, 0]).max() <= 4
    assert _ulps_of(got[:, 1], want[:, 1]).max() <= 4


@pytest.mark.parametrize("name", ["gelu", "erf"])
def test_gelu_and_erf_blocks_keep_their_relative_digits_into_the_far_tails(name, xs=TAIL_X):
    # The mpmath test above counts ulps at 1e-280 and up; here every result is held to its own ulps, subnormal ones
    # to the least subnormal: gelu(x) = x Phi(x) down to Phi(-38.5) = 2e-324, erf's f'^2 = 4/pi exp(-2 x^2) to its
    # underflow. Measured: gelu 4 ulps (f) and 7 (f'^2 outside the band of its zero), erf 4 and 3.
    f, df, _ = ref.make(name)
    got = _one_at_a_time(dispatch.BLOCKS[dispatch.CODES[name]], xs, 0.0, 0.0)
    with ref.mp.workdps(ref.MP_DPS):
        want = np.array([[float(f(v)), float(df(v) ** 2)] for v in map(ref.mp.mpf, xs)])
    assert _ulps_of(got[:, 0], want[:, 0]).max() <= 4
    away = np.abs(want[:, 1]) >= 1e-2  # as the test above: f' of gelu crosses 0 at x = -0.75
    g_ulps = _ulps_of(got[away, 1], want[away, 1])
    assert g_ulps.max() <= 8, (xs[away][g_ulps.argmax()], g_ulps.max())


def _grad_sq(df, mu, sigma):
    """E[f'(X)^2], X ~ N(mu, sigma^2), by scipy's adaptive quadrature (its error below 1e-10 here)."""
    value, _ = integrate.quad(lambda x: df(x) ** 2 * stats.norm.pdf(x, mu, sigma), -np.inf, np.inf, limit=200)
    return value


GRADS = {
    "gelu": lambda x: special.ndtr(x) + x * stats.norm.pdf(x),
    "erf": lambda x: 2.0 / math.sqrt(math.pi) * math.exp(-x * x),
}
Z = 4.5


@pytest.mark.parametrize(
    "spec, mu, sigma, seed",
    [("gelu", 0.3, 1.5, 21), ("gelu", -3.0, 4.0, 22), ("erf", 0.5, 2.0, 23), ("erf", 0.0, 0.3, 24)],
)
def test_monte_carlo_of_gelu_and_erf_agrees_with_exact_moments_within_z_se(spec, mu, sigma, seed):
    # Mean and std by quadrature of the ops' scalar functions (math.erfc), E[f'^2] by scipy's: neither uses
    # block_ops. Fixed seeds, z = 4.5 standard errors.
    mean, std, _, _ = quadrature.estimate_moments(parse(spec), mu, sigma)
    got = montecarlo.run(montecarlo.compile_program(parse(spec), mu, sigma), RunSettings(samples=1 << 20, seed=seed))
    assert abs(got.mean - mean) <= Z * got.mean_se
    assert abs(got.std - std) <= Z * got.std_se
    assert abs(got.grad_sq - _grad_sq(GRADS[spec], mu, sigma)) <= Z * got.grad_sq_se


@pytest.mark.parametrize("spec", ["gelu", "erf"])
def test_gelu_and_erf_runs_are_bit_identical_on_one_and_two_threads(spec):
    program = montecarlo.compile_program(parse(spec), 0.2, 1.3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = montecarlo.run(program, RunSettings(samples=3_000_001, seed=12))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = montecarlo.run(program, RunSettings(samples=3_000_001, seed=12))
    finally:
        numba.set_num_threads(before)
    assert one == two


def test_one_activation_kernel_serves_every_activation():
    # jit.shared: fused_rows compiles once and takes each activation's block by its address. A second
    # specialisation would mean that a first run of each activation compiles a kernel of its own again.
    for spec in ("relu", "tanh", "leaky_relu(slope=0.2)", "hardtanh"):
        got = montecarlo.run(montecarlo.compile_program(parse(spec), 0.1, 2.0), RunSettings(samples=5000, seed=1))
        assert got.samples == 5000
    assert len(chain_kernels.fused_rows.dispatcher.overloads) == 1

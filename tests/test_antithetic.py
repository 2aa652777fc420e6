"""Antithetic pairs for pipelines with max pooling: the right pairs, the right sums, honest SEs."""

import math

import kernel_samples
import naive
import numpy as np
import pytest
from mp_activations import max_moments, moments

import momentcalc as mc
from momentcalc import parse
from momentcalc.estimators import antithetic, dispatch, montecarlo, pair_kernels, quadrature
from momentcalc.settings import RunSettings

Z = 4.5


def program(spec, mu=0.0, sigma=1.0):
    return montecarlo.compile_program(parse(spec), mu, sigma)


def exact_max9():
    m1, m2 = naive.std_normal_max_moment(9, 1), naive.std_normal_max_moment(9, 2)
    return m1, math.sqrt(m2 - m1 * m1)


@pytest.mark.parametrize(
    "spec, antithetic_expected",
    [
        ("maxpool(k=3)", True),
        ("relu | maxpool(k=2) | avgpool(k=2)", True),
        ("avgpool(k=3)", False),
        ("relu", False),
        ("dropout(p=0.5) | sigmoid", False),
    ],
)
def test_pairs_only_where_max_pooling_makes_them_pay(spec, antithetic_expected):
    assert program(spec).antithetic is antithetic_expected


@pytest.mark.parametrize(
    "spec", ["maxpool(k=3)", "relu | normalize | dropout(p=0.7) | maxpool(k=2) | sigmoid | avgpool(n=3)"]
)
def test_a_pair_is_the_pipeline_at_z_and_at_minus_z(spec):
    mu, sigma = 0.3, 1.5
    ops = parse(spec).ops
    mean, std, _, _ = quadrature.estimate_moments(parse("relu"), mu, sigma)
    fused = kernel_samples.sample_pair_outputs(
        montecarlo.chunk_states(0, 0, 1)[0], 50, *program(spec, mu, sigma).kernel_args()
    )
    gen = naive.BlockStream(montecarlo.chunk_generator(0, 0).bit_generator, naive.normals_per_output(ops), 50)
    slow = []
    for _ in range(50):
        z = [gen.standard_normal() for _ in range(naive.normals_per_output(ops))]
        # Each side draws its own dropout masks, after the shared normals, in the kernels' order.
        slow.append(
            [
                naive._evaluate(gen, ops, iter([mu + sign * sigma * v for v in z]), {1: (mean, std)})
                for sign in (1.0, -1.0)
            ]
        )
    np.testing.assert_allclose(fused, slow, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "spec",
    # A lone max, one window between chains. Nested windows, a window between chains with dropout masks drawn in
    # between, and a monotone chain's extremes compile kernels of their own (seconds each, cold): they run in
    # tests_long/test_long_antithetic.py (the suite's 3-minute budget).
    [
        "maxpool(k=3)",
        "relu | normalize | maxpool(k=3)",
        # The max taken at the window's extremes (a valley chain); the reference takes every input.
        "gelu | normalize | maxpool(k=3)",
        # The activation applied to a fill's gathered extremes by its values loop (dispatch.VECTOR_VALUES): the
        # reference evaluates every input by the scalar op. Each values loop, with its (a, b), is checked against
        # mpmath in tests/test_block_ops.py; a kernel per activation costs a cold run seconds of compiling, so a few
        # here.
        "mish | maxpool(k=2)",
        "sigmoid | normalize | maxpool(k=3)",
        "selu | normalize | maxpool(k=3)",
        "softplus(beta=2.5) | maxpool(k=2)",
        # Activations without a loop of their own take the batched kernel by their scalar f (dispatch.values_N):
        # relu above, a valley, and one with parameters.
        "abs | normalize | maxpool(k=2)",
        "hardtanh(min_val=-0.5,max_val=2.0) | maxpool(k=3)",
    ],
)
def test_chunk_sums_are_the_sums_over_the_pairs(spec):
    args = program(spec).kernel_args()
    shift = 1.3
    row = montecarlo.run_chunks(program(spec), 2, 0, [6000], launch=antithetic._PairLaunch(program(spec), shift))[0]
    y = kernel_samples.sample_pair_outputs(montecarlo.chunk_states(2, 0, 1)[0], 3000, *args) - shift
    a, b = y.mean(axis=1), (y**2).mean(axis=1)
    np.testing.assert_allclose(row, [3000, a.sum(), (a * a).sum(), b.sum(), (b * b).sum(), (a * b).sum()], rtol=1e-12)


def test_standard_errors_match_the_spread_over_seeds():
    # Each run's error in units of its own SE: all within Z, and mean square near 1 (chi-square, 24 dof).
    mean, std = exact_max9()
    runs = [montecarlo.run(program("maxpool(k=3)"), RunSettings(samples=1 << 15, seed=s)) for s in range(24)]
    z_mean = np.array([(r.mean - mean) / r.mean_se for r in runs])
    z_std = np.array([(r.std - std) / r.std_se for r in runs])
    for z in (z_mean, z_std):
        assert np.all(np.abs(z) <= Z)
        assert 0.3 <= np.mean(z**2) <= 2.3


def test_pairs_beat_plain_sampling_for_the_mean_of_max_pooling():
    # Per output, the mean's variance falls by 1 / (1 + corr(max z, -min z)); the draws per output halve.
    mean, std = exact_max9()
    got = montecarlo.run(program("maxpool(k=3)"), RunSettings(samples=1 << 20, seed=1))
    assert got.mean_se < std / math.sqrt(got.samples)
    assert abs(got.mean - mean) <= Z * got.mean_se and abs(got.std - std) <= Z * got.std_se


def test_samples_round_up_to_whole_pairs_and_the_estimate_says_how_it_was_made():
    est = mc.estimate("maxpool(k=3)", method="montecarlo", samples=10_001, seed=3).record
    assert est.samples == 10_002
    assert antithetic.NOTE in est.notes
    assert antithetic.NOTE not in mc.estimate("relu", method="montecarlo", samples=1000).record.notes


def test_tol_is_met_with_pairs_and_spends_little_more_than_it_needs():
    tol = 3e-4
    got = montecarlo.run(program("relu | maxpool(k=3)"), RunSettings(tol=tol, seed=5))
    assert got.mean_se <= tol and got.std_se <= tol
    # The pairs that tol requires, from pair statistics of a large independent sample (numpy, two-pass).
    y = kernel_samples.sample_pair_outputs(
        montecarlo.chunk_states(99, 0, 1)[0], 400_000, *program("relu | maxpool(k=3)").kernel_args()
    )
    d = y - y.mean()  # deviations from the mean: mean(a) = 0, so the delta method leaves var(b) alone
    a, b = d.mean(axis=1), (d**2).mean(axis=1)
    required_pairs = max(a.var() / tol**2, b.var() / (4.0 * b.mean() * tol**2))
    assert got.samples <= 1.5 * 2 * required_pairs


@pytest.mark.parametrize(
    "spec, at",
    [
        ("tanh | maxpool(k=3)", 0),
        ("tanh | normalize | maxpool(k=3)", 0),
        ("gelu | maxpool(k=2) | gelu", 0),  # the stages after the pool: per output, as before
        ("relu | normalize | tanh | maxpool(k=2)", -1),  # two activations before the pool
        ("dropout(p=0.5) | tanh | maxpool(k=2)", -1),  # random: no telling where the max lies
        ("maxpool(k=2) | tanh", -1),  # no activation before the pool
        ("tanh | maxpool(k=2) | maxpool(k=2)", -1),  # nested windows
    ],
)
def test_values_stage_is_the_one_activation_among_affine_stages_before_a_lone_max_pool(spec, at):
    p = program(spec)
    assert (pair_kernels.values_stage(p.codes, p.seg, p.max_at) if p.win_n.size == 1 else -1) == at


# Pipelines whose pairs the batched kernel computes (pair_kernels.one_window_pair_values_rows), value by value
# (kernel_samples.sample_pair_values_outputs): a monotone activation, valleys (exact gelu with its erfc of its own;
# abs, by its generated scalar loop), one with a stage after the pool, erf, relu's generated loop and a parameter.
# test_chunk_sums_are_the_sums_over_the_pairs covers the others.
BATCHED = [
    "relu | normalize | maxpool(k=3)",
    "abs | maxpool(k=3)",
    "softplus(beta=2.5) | normalize | maxpool(k=2)",
    "tanh | normalize | maxpool(k=3)",
    "mish | normalize | maxpool(k=3)",
    "gelu(approximate=tanh) | maxpool(k=2) | gelu(approximate=tanh)",
    "gelu | normalize | maxpool(k=3)",
    "erf | normalize | maxpool(k=3)",
]


@pytest.mark.parametrize("spec", BATCHED)
def test_batched_pairs_are_the_scalar_pipeline_at_every_input_within_a_few_ulps(spec):
    # The reference (sample_pair_outputs) evaluates the chain at every input of each window by the op's scalar
    # functions; the batched kernel at the window's extremes only, by the vectorized loop (a few ulps from libm,
    # tests/test_block_ops.py): the same outputs to a few ulps.
    p = program(spec, 0.3, 1.5)
    at = pair_kernels.values_stage(p.codes, p.seg, p.max_at)
    name = parse(spec).ops[0].name
    assert ("pairs_values", dispatch.CODES[name]) in dispatch.KERNELS
    state = montecarlo.chunk_states(3, 0, 1)[0]
    args = (500, *p.kernel_args())
    got = kernel_samples.sample_pair_values_outputs(name, state.copy(), *args, p.max_at, p.max_split, at)
    want = kernel_samples.sample_pair_outputs(state.copy(), *args)
    np.testing.assert_allclose(got, want, rtol=2e-15, atol=2e-15)


@pytest.mark.parametrize(
    "spec, name, params, n, seed",
    [
        ("tanh | maxpool(k=3)", "tanh", (), 9, 11),
        ("tanh | normalize | maxpool(k=3)", "tanh", (), 9, 12),
        ("softplus | normalize | maxpool(k=3)", "softplus", (), 9, 13),
        ("log_sigmoid | maxpool(k=2)", "log_sigmoid", (), 4, 14),
        ("elu(alpha=0.5) | normalize | maxpool(k=2)", "elu", (("alpha", 0.5),), 4, 15),
    ],
)
def test_batched_pipelines_agree_with_order_statistics_within_z_se(spec, name, params, n, seed):
    # A monotone f commutes with the max: the outputs are f(max of n inputs), whose moments mpmath integrates
    # against the max's density (mp_activations.max_moments); normalize divides f's exact mean and std out.
    mu, sigma = 0.3, 1.5
    mean, std = max_moments(name, mu, sigma, n, params)
    if "normalize" in spec:
        m, s, _ = moments(name, mu, sigma, params)
        mean, std = (mean - m) / s, std / s
    got = montecarlo.run(program(spec, mu, sigma), RunSettings(samples=1 << 18, seed=seed))
    assert abs(got.mean - mean) <= Z * got.mean_se and abs(got.std - std) <= Z * got.std_se


def test_one_batched_pair_kernel_serves_every_activation():
    # jit.shared: one_window_pair_values_rows compiles once and takes each activation's values loop by its
    # address (the vectorized ones and dispatch.values_N alike); a specialisation per activation would cost each
    # one's first run seconds of compiling.
    for spec in ("relu | maxpool(k=2)", "tanh | normalize | maxpool(k=2)", "abs | maxpool(k=2)"):
        p = program(spec)
        assert antithetic._PairLaunch(p, 0.0)._values_stage() >= 0
        montecarlo.run(p, RunSettings(samples=4000, seed=2))
    assert len(pair_kernels.one_window_pair_values_rows.dispatcher.overloads) == 1

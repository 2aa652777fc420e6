"""Monte Carlo: agreement with exact values within z * SE, reproducibility, and kernel references."""

import math

import kernel_samples
import naive
import numba
import numpy as np
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError
from momentcalc.estimators import dispatch, jit, montecarlo, normals, quadrature
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5


def run(spec, mu=0.0, sigma=1.0, **kw):
    return montecarlo.run(montecarlo.compile_program(parse(spec), mu, sigma), RunSettings(**kw))


@pytest.mark.parametrize(
    "spec, mu, sigma, seed",
    [
        ("relu", 0.0, 1.0, 1),
        ("sigmoid", 0.5, 2.0, 2),
        ("maxpool(k=3)", 0.0, 1.0, 3),
        ("maxpool(k=2)", -1.0, 0.5, 4),
        ("avgpool(k=3)", 0.0, 1.0, 5),
        ("dropout(p=0.8,scale=inverse)", 0.3, 1.0, 6),
        ("relu | normalize | maxpool(k=3)", 0.0, 1.0, 7),
        # maxpool(k=2) | maxpool(k=2) (nested pairs, a kernel of its own): tests_long/test_long_montecarlo.py
        ("relu | dropout(p=0.5) | sigmoid", 0.2, 1.5, 9),
    ],
)
def test_monte_carlo_agrees_with_exact_within_z_se(spec, mu, sigma, seed):
    mean, std, _, _ = quadrature.estimate_moments(parse(spec), mu, sigma)
    got = run(spec, mu, sigma, samples=1 << 20, seed=seed)
    assert abs(got.mean - mean) <= Z * got.mean_se
    assert abs(got.std - std) <= Z * got.std_se
    if montecarlo.compile_program(parse(spec), mu, sigma).antithetic:
        # Pairs of negatively correlated outputs: a smaller SE (checked against the seeds' spread in test_antithetic).
        assert got.mean_se < std / math.sqrt(got.samples)
    else:
        # The SE itself must be right: the delta-method SE of the mean is std / sqrt(N).
        assert got.mean_se == pytest.approx(std / math.sqrt(got.samples), rel=0.02)


@pytest.mark.parametrize(
    "spec, samples",
    [
        ("relu | normalize | maxpool(k=3)", 300_001),
        ("relu | dropout(p=0.5) | tanh", 3_000_001),
        ("mish | normalize | maxpool(k=3)", 300_001),  # the batched pair kernel (dispatch.VECTOR_VALUES)
    ],
)
def test_bit_identical_on_one_and_two_threads(spec, samples):
    program = montecarlo.compile_program(parse(spec), 0.0, 1.0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = montecarlo.run(program, RunSettings(samples=samples, seed=11))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = montecarlo.run(program, RunSettings(samples=samples, seed=11))
    finally:
        numba.set_num_threads(before)
    assert one == two


def test_seed_changes_the_stream_and_fixes_it():
    a, b, c = (run("maxpool(k=3)", samples=100_000, seed=s) for s in (1, 1, 2))
    assert a == b and a.mean != c.mean


def test_chunks_are_spawned_from_the_seed_sequence():
    spawned = np.random.SeedSequence(5).spawn(3)[2]
    direct = np.random.SFC64(spawned)
    assert np.array_equal(montecarlo.chunk_generator(5, 2).random(4), np.random.Generator(direct).random(4))
    # The kernels' states are those streams' (chunks 1 and 2 of seed 5, from chunk 1 on).
    np.testing.assert_array_equal(montecarlo.chunk_states(5, 1, 2)[1], normals.state_of(np.random.SFC64(spawned)))


def test_tol_stops_when_both_standard_errors_meet_it_and_spends_little_more():
    tol = 2e-4
    got = run("maxpool(k=3)", tol=tol, seed=3)
    assert got.mean_se <= tol and got.std_se <= tol
    # Samples that tol requires, from the exact central moments (mpmath order statistics).
    m = [naive.std_normal_max_moment(9, p) for p in (1, 2, 3, 4)]
    var = m[1] - m[0] ** 2
    mu4 = m[3] - 4 * m[0] * m[2] + 6 * m[0] ** 2 * m[1] - 3 * m[0] ** 4
    required = max(var / tol**2, (mu4 - var**2) / (4 * var * tol**2))
    assert got.samples <= 1.5 * required


def test_tol_run_equals_a_fixed_run_of_the_same_chunks():
    adaptive = run("relu", tol=1e-3, seed=4)
    fixed = run("relu", samples=adaptive.samples, seed=4)
    assert adaptive == fixed


def test_the_kernel_mirrors_are_cached_under_the_package_sources_stamp():
    # tests/kernel_samples.py inlines the package's kernel code: cached under its own file's stamp alone, it would
    # load stale machine code after a package kernel was edited (kernel_stamps.stamp_kernels_of).
    for kernel in (kernel_samples.sample_outputs, kernel_samples.sample_chain_outputs):
        locator = kernel._cache._impl.locator
        assert type(locator).__name__.startswith("Momentcalc")
        assert locator.get_source_stamp()[1] == jit.sources_stamp()


def test_fused_kernel_matches_the_slow_reference_value_by_value():
    spec = parse("relu | normalize | dropout(p=0.7) | maxpool(k=2) | sigmoid | avgpool(n=3)")
    mean, std, _, _ = quadrature.estimate_moments(parse("relu"), 0.3, 1.5)
    program = montecarlo.compile_program(spec, 0.3, 1.5)
    fused = kernel_samples.sample_outputs(montecarlo.chunk_states(0, 0, 1)[0], 200, *program.kernel_args())
    gen = naive.BlockStream(montecarlo.chunk_generator(0, 0).bit_generator, naive.normals_per_output(spec.ops), 200)
    slow = [naive.one_output(gen, spec.ops, 0.3, 1.5, {1: (mean, std)}) for _ in range(200)]
    np.testing.assert_allclose(fused, slow, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "spec",
    [
        "avgpool(k=3)",
        "maxpool(k=3)",
        "relu | maxpool(k=2) | avgpool(k=2)",
        "relu | avgpool(k=2) | sigmoid",
        # The max of a monotone chain taken at the window's extremes; the reference evaluates every input. A valley
        # chain's max compiles a kernel of its own (seconds, cold): it runs in tests_long/test_long_montecarlo.py.
        "tanh | maxpool(k=3) | relu",
    ],
)
def test_chunk_moments_match_a_two_pass_reference(spec):
    program = montecarlo.compile_program(parse(spec), 0.0, 1.0)
    row = montecarlo.run_chunks(program, 1, 0, [5000])[0]
    values = kernel_samples.sample_outputs(montecarlo.chunk_states(1, 0, 1)[0], 5000, *program.kernel_args())
    np.testing.assert_allclose(row, naive.moments(values), rtol=1e-9)


@pytest.mark.parametrize("spec", ["relu", "relu | dropout(p=0.5) | relu"])
def test_chain_rows_are_the_moments_of_the_outputs_and_of_the_squared_derivative(spec):
    # Both specs are relu-ended: the derivative is 1 exactly where the output is positive, 0 elsewhere
    # (times the dropout scale 1/sqrt(0.5) squared = 2 where kept).
    program = montecarlo.compile_program(parse(spec), 0.0, 1.0)
    rows = montecarlo.run_chunks(program, 1, 0, [5000])
    state = montecarlo.chunk_states(1, 0, 1)[0]
    values, g2_drawn = kernel_samples.sample_chain_outputs(state, 5000, *program.kernel_args()[:4])
    np.testing.assert_allclose(rows[0, :5], naive.moments(values), rtol=1e-9)
    g2 = (values > 0) * (2.0 if "dropout" in spec else 1.0)
    np.testing.assert_allclose(g2_drawn, g2, rtol=1e-15)  # the scale 1/sqrt(0.5), squared
    n, mean, m2, _, _ = naive.moments(g2)
    np.testing.assert_allclose(rows[0, 5:8], [n, mean, m2], rtol=1e-9)


@pytest.mark.parametrize("spec", ["relu", "sigmoid", "tanh", "relu | normalize | gelu"])
def test_chain_outputs_are_the_slow_reference_at_the_streams_normals(spec):
    # The normals come from kernel_samples.standard_normals (tested against numpy's words in test_normals),
    # the functions from the scalar definitions in ops.activations (naive.one_output).
    mu, sigma = 0.3, 1.5
    program = montecarlo.compile_program(parse(spec), mu, sigma)
    state = montecarlo.chunk_states(2, 0, 1)[0]
    z = kernel_samples.standard_normals(state.copy(), 1500)
    prefix = {}
    if "normalize" in spec:
        mean, std, _, _ = quadrature.estimate_moments(parse("relu"), mu, sigma)
        prefix = {1: (mean, std)}
    slow = [naive.one_output(_Fixed(v), parse(spec).ops, mu, sigma, prefix) for v in z]
    values, _ = kernel_samples.sample_chain_outputs(state, 1500, *program.kernel_args()[:4])
    np.testing.assert_allclose(values, slow, rtol=1e-14, atol=1e-15)


class _Fixed:
    """A generator stand-in for naive.one_output that draws one given standard normal."""

    def __init__(self, z):
        self.z = z

    def standard_normal(self):
        return self.z


def test_merge_is_the_moments_of_the_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.gamma(2.0, size=n) + 1e6 for n in (1, 7, 1000, 33)]  # large offset: a naive sum of squares fails
    rows = np.array([naive.moments(p) for p in parts])
    np.testing.assert_allclose(montecarlo.merge(rows), naive.moments(np.concatenate(parts)), rtol=1e-8)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(samples=0), "samples must be"),
        (dict(samples=-5), "samples must be"),
        (dict(samples=1.5), "samples must be"),
        (dict(tol=0.0), "tol must be"),
        (dict(tol=-1.0), "tol must be"),
        (dict(sigma=0.0), "sigma must be"),
        (dict(sigma=-1.0), "sigma must be"),
        (dict(mu=float("nan")), "mu must be"),
        (dict(seed=-1), "seed must be"),
        (dict(method="magic"), "unknown method"),
        (dict(samples=10, tol=0.1), "either samples or tol"),
        (dict(tol=1e-9), "would need about"),
    ],
)
def test_bad_monte_carlo_input_says_what_is_accepted(kwargs, words):
    with pytest.raises(MomentcalcError) as info:
        mc.estimate("maxpool(k=3)", **({"method": "montecarlo"} | kwargs))
    assert words in str(info.value)


@pytest.mark.parametrize(
    "spec, act",
    [
        ("maxpool(k=3)", "none"),
        ("dropout(p=0.5) | avgpool(k=2)", "none"),
        ("tanh | normalize | maxpool(k=3)", "tanh"),
        ("relu | maxpool(k=2) | relu", "relu"),
        ("relu | avgpool(k=2) | sigmoid", "mixed"),
    ],
)
def test_kernels_are_specialised_to_the_one_activation_a_pipeline_uses(spec, act):
    # One activation: its own kernel (a first run compiles only it); none or several: NONE or the full dispatch.
    want = {"none": dispatch.NONE, "mixed": dispatch.MIXED, **dispatch.CODES}[act]
    assert montecarlo.compile_program(parse(spec), 0.0, 1.0).act == want

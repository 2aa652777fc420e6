"""The one Monte Carlo driver (estimators/driver.py) and RunSettings: order, threads, tolerance, progress."""

import inspect
import math

import numba
import numpy as np
import pytest

import momentcalc as mc
from momentcalc import MomentcalcError, engine, spatial
from momentcalc.estimators import driver, moments, montecarlo, vectorized
from momentcalc.settings import MAX_SAMPLES, RunSettings
from momentcalc.spec import parse


def _on_threads(count, fn):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
        return fn()
    finally:
        numba.set_num_threads(before)


def _normal_chunks(seed, size=1000, batch=32):
    """Chunks of plain N(0, 1) draws by numpy: row [n, mean, M2, M3, M4] from the chunk's own generator."""

    def launch(gens, counts):
        rows = []
        for gen, n in zip(gens, counts):
            x = gen.standard_normal(int(n))
            d = x - x.mean()
            rows.append([n, x.mean(), (d**2).sum(), (d**3).sum(), (d**4).sum()])
        return np.array(rows, dtype=float)

    return driver.Chunks(size, lambda first, count: driver.generators(seed, first, count), launch, batch)


def test_rows_come_in_chunk_order_from_each_chunks_own_stream():
    sizes = [1000] * 37 + [123]
    rows = _on_threads(2, lambda: driver.run_chunks(_normal_chunks(8, batch=2), 5, sizes))
    assert rows.shape == (38, 5)
    for j in (0, 17, 37):
        stream = np.random.SFC64(np.random.SeedSequence(8, spawn_key=(5 + j,)))  # chunk 5 + j of seed 8
        x = np.random.Generator(stream).standard_normal(sizes[j])
        assert rows[j, 0] == sizes[j] and rows[j, 1] == x.mean()


def test_progress_is_samples_done_of_the_total_after_each_batch():
    calls = []
    chunks = _normal_chunks(1, batch=1)  # one chunk per thread between reports
    _on_threads(1, lambda: driver.run_chunks(chunks, 0, [1000] * 9 + [10], lambda d, t: calls.append((d, t)), 9010))
    assert calls == [(1000 * k, 9010) for k in range(1, 10)] + [(9010, 9010)]
    calls.clear()
    settings = RunSettings(samples=9010, progress=lambda d, t: calls.append((d, t)))
    summary = _on_threads(2, lambda: driver.drive(chunks, montecarlo.PLAIN_ROWS, settings, 1))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (9010, 9010)
    assert summary.samples == 9010


@pytest.mark.parametrize("threads", [1, 2])
def test_a_tol_run_of_the_driver_equals_a_fixed_run_of_the_same_chunks(threads):
    chunks = _normal_chunks(3)
    tol = 4e-3  # std 1: about (1 / tol)^2 = 62500 samples, many chunks past the one-chunk pilot
    calls = []
    settings = RunSettings(tol=tol, progress=lambda d, t: calls.append((d, t)))
    adaptive = _on_threads(threads, lambda: driver.drive(chunks, montecarlo.PLAIN_ROWS, settings, 1))
    same = RunSettings(samples=adaptive.samples)
    fixed = _on_threads(threads, lambda: driver.drive(chunks, montecarlo.PLAIN_ROWS, same, 1))
    assert adaptive.mean_se <= tol and adaptive.std_se <= tol and adaptive.samples > chunks.size
    assert adaptive == fixed
    assert calls and calls[-1] == (adaptive.samples, adaptive.samples)


def test_a_tol_run_past_the_limit_says_so():
    tiny = driver.Rows(moments.summarize_rows, montecarlo.PLAIN_ROWS.samples_for, limit=5000, unit="draws")
    with pytest.raises(MomentcalcError, match="would need about .* draws, more than the 5e\\+03 allowed"):
        driver.drive(_normal_chunks(2), tiny, RunSettings(tol=1e-3), 1)


def test_until_within_grows_as_asked_until_the_summary_is_within_tol():
    class S:
        def __init__(self, n):
            self.samples, self.se = n, 1.0 / math.sqrt(n)

        def within(self, tol):
            return self.se <= tol

    grown = []
    got = driver.until_within(S(4), 0.1, lambda s: 2 * s.samples, lambda n: grown.append(n) or S(n), 1000, "samples")
    assert grown == [8, 16, 32, 64, 128] and got.samples == 128


def test_whole_map_run_has_the_same_bits_on_one_and_two_threads():
    spec = parse("relu | dropout(p=0.7) | maxpool(k=3,s=2,p=1)")  # dropout masks come from the chunk's generator too
    settings = RunSettings(method="montecarlo", samples=30_001, seed=13)  # 7281 maps a chunk: 4 full chunks and a part
    run = lambda: spatial.estimate_map(spec, 6, 0.0, 1.0, settings).montecarlo  # noqa: E731
    one, two = _on_threads(1, run), _on_threads(2, run)
    assert one.samples == two.samples == 30_001
    for name in ("mean", "std", "mean_se", "std_se"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name


def test_whole_map_tol_run_equals_a_fixed_run_of_the_same_maps():
    spec, tol = "maxpool(k=3,s=1,p=1)", 6e-3  # 5 x 5 maps: 10485 per chunk; std about 0.6 needs ~1e4 maps per SE
    adaptive = engine.estimate(spec, size=5, tol=tol, seed=2, method="montecarlo").montecarlo
    fixed = engine.estimate(spec, size=5, samples=adaptive.samples, seed=2, method="montecarlo").montecarlo
    assert adaptive.mean_se.max() <= tol and adaptive.std_se.max() <= tol
    assert adaptive.samples > 10485  # more than the pilot chunk
    for name in ("mean", "std", "mean_se", "std_se"):
        assert np.array_equal(getattr(adaptive, name), getattr(fixed, name)), name


def test_whole_map_tol_run_past_the_limit_says_so():
    with pytest.raises(MomentcalcError, match="maps of side 5"):
        engine.estimate("maxpool(k=3,s=1,p=1)", size=5, tol=1e-9, method="montecarlo")


@pytest.mark.parametrize("spec", ["maxpool(k=3)", "expr(tanh(x)) | dropout(p=0.5)"])
def test_antithetic_and_numpy_tol_runs_equal_fixed_runs_of_the_same_chunks(spec):
    adaptive = mc.estimate(spec, method="montecarlo", tol=1e-3, seed=4).record
    fixed = mc.estimate(spec, method="montecarlo", samples=adaptive.samples, seed=4).record
    assert adaptive.mean_se <= 1e-3 and adaptive.std_se <= 1e-3
    assert adaptive.samples > 1 << 16  # more than one chunk (29126 pairs' worth, or 65536 for the numpy path)
    values = lambda e: (e.mean, e.std, e.mean_se, e.std_se, e.samples)  # noqa: E731
    assert values(adaptive) == values(fixed)


def test_qmc_tol_run_extends_the_same_sequences_as_a_fixed_run():
    from momentcalc.estimators import qmc

    program = montecarlo.compile_program(parse("maxpool(k=2)"), 0.0, 1.0)
    adaptive = qmc.run(program, RunSettings(tol=1e-4, seed=5))
    fixed = qmc.run(program, RunSettings(samples=adaptive.samples, seed=5))
    assert adaptive.samples == fixed.samples > 1 << 14  # past the first 2^14 points: at least one doubling
    # Same points; only the blocks in which their moments were merged differ.
    assert adaptive.mean == pytest.approx(fixed.mean, rel=1e-12) and adaptive.std == pytest.approx(fixed.std, rel=1e-12)


def test_run_settings_are_frozen_and_checked_when_made():
    s = RunSettings(samples=10, seed=3)
    with pytest.raises(AttributeError):
        s.seed = 4
    for bad, words in [
        (dict(samples=0), "samples must be"),
        (dict(samples=MAX_SAMPLES + 1), "at most"),
        (dict(tol=float("inf")), "tol must be"),
        (dict(samples=1, tol=1.0), "either samples or tol"),
        (dict(seed=True), "seed must be"),
        (dict(z=0), "z must be"),
        (dict(method="fast"), "unknown method"),
    ]:
        with pytest.raises(MomentcalcError, match=words):
            RunSettings(**bad)


def test_estimate_keeps_its_public_keywords():
    params = inspect.signature(mc.estimate).parameters
    assert list(params) == [
        *("spec", "mu", "sigma", "method", "samples", "tol", "seed", "z", "progress", "grad", "size"),
        *("digits", "methods", "scheduler", "timeout"),
    ]
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    assert defaults == dict(
        mu=0.0, sigma=1.0, method="auto", samples=None, tol=None, seed=0, z=4.5, progress=None, grad=None, size=None
    ) | dict(digits=None, methods=None, scheduler=None, timeout=None)


def test_numpy_path_runs_in_the_callers_thread():
    import threading

    seen = set()
    stage = vectorized.callable_stage(lambda x: seen.add(threading.get_ident()) or x, None, "id")
    _on_threads(2, lambda: vectorized.run_numpy([stage], 0.0, 1.0, RunSettings(samples=10 * vectorized.CHUNK)))
    assert seen == {threading.get_ident()}

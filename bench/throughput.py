"""Monte Carlo throughput against the generator's own limit and a hand-written numpy script.

    python bench/throughput.py           # full run (a few minutes)
    python bench/throughput.py --quick   # about two minutes, half of it one cold compile
    python bench/throughput.py --activations         # each activation of the default table vs the limit
    python bench/throughput.py --activations tanh gelu
    python bench/throughput.py --exact   # certified, closed, quadrature per table entry, uncached (a minute)

Every ratio is measured in this one run, on this machine: fused kernels
against (a) the fastest numpy bit generator summing normals in a jitted
prange loop (the limit of plain Monte Carlo through numpy's Generator) and
(b) the numpy script a user would write. momentcalc draws its normals with
its own block ziggurat (estimators/normals.py), whose rate is printed too: a
ratio_vs_limit above 1 is that generator's doing. `bound` is the
ratio_vs_naive of a kernel that only drew its normals at that limit (through
numpy's Generator). maxpool runs in antithetic pairs, two
outputs per window of draws: every ratio_vs_limit counts the normals actually
drawn (normals_drawn_per_output in the JSON: 4.5 for maxpool(k=3)), not the 9
a window holds. The numpy script runs at its best chunk size (tried from 2^14
to 2^20 normals), and torch on the CPU (float32 and float64) is a second
baseline where torch is installed. Pipelines against maxpool(k) alone:
bench/pipelines.py. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from numba import njit, prange

import momentcalc as mc
from momentcalc import catalog
from momentcalc.estimators import antithetic, montecarlo
from momentcalc.estimators import normals as mc_normals
from momentcalc.tables import DEFAULT_SPECS

OPS = {"maxpool(k=3)": 9, "relu": 1, "sigmoid": 1}  # spec: normals per output
TABLE_ACTIVATIONS = tuple(s for s in DEFAULT_SPECS if all(op.kind == catalog.ELEMENTWISE for op in mc.parse(s).ops))


@njit(cache=True, nogil=True)
def _sum_normals(gen, n):
    s = 0.0
    for _ in range(n):
        s += gen.standard_normal()
    return s


@njit(cache=True, parallel=True)
def _sum_normals_parallel(gens, n):
    out = np.zeros(len(gens))
    for c in prange(len(gens)):
        out[c] = _sum_normals(gens[c], n)
    return out.sum()


@njit(cache=True, nogil=True)
def _fill_normals(state, blocks):
    z, missed, words = mc_normals.scratch(mc_normals.BLOCK)
    s = 0.0
    for _ in range(blocks):
        mc_normals.fill(state, z, mc_normals.BLOCK, missed, words)
        s += z[0]
    return s


def own_normals_rate(normals: int, repeats: int = 3) -> float:
    """Normals/s of momentcalc's own block ziggurat (estimators/normals.py) on one thread, into a
    block that stays in cache, as the kernels use it."""
    state = mc_normals.state_of(np.random.SFC64(0))
    blocks = max(1, normals // mc_normals.BLOCK)
    _fill_normals(state, 1)
    return blocks * mc_normals.BLOCK / _best_of(lambda: _fill_normals(state, blocks), repeats)


def rng_limit(normals: int) -> tuple[str, float]:
    """Normals/s of the fastest numpy bit generator inside a jitted prange loop that only sums."""
    best = ("", 0.0)
    for bit_generator in (np.random.SFC64, np.random.PCG64, np.random.Philox):
        rate = _limit_rate(bit_generator, normals)
        best = max(best, (bit_generator.__name__, rate), key=lambda t: t[1])
    return best


def _limit_rate(bit_generator, normals: int, repeats: int = 3) -> float:
    chunks = 64
    gens = [np.random.Generator(bit_generator(s)) for s in np.random.SeedSequence(0).spawn(chunks)]
    _sum_normals_parallel(gens, 10)
    per_chunk = normals // chunks
    return per_chunk * chunks / _best_of(lambda: _sum_normals_parallel(gens, per_chunk), repeats)


def _best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _with_threads(threads: int, fn):
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return fn()
    finally:
        numba.set_num_threads(before)


def _keep_best(best: dict, key: str, rate: float) -> None:
    best[key] = max(best.get(key, 0.0), rate)


def fused_rate(spec: str, samples: int, threads: int, repeats: int = 3) -> float:
    """Outputs/s of momentcalc's Monte Carlo through the public API."""

    def rate():
        mc.estimate(spec, method="montecarlo", samples=1 << 14)  # compiled or loaded from cache
        return samples / _best_of(lambda: mc.estimate(spec, method="montecarlo", samples=samples), repeats)

    return _with_threads(threads, rate)


def _naive_chunk(spec: str, x: np.ndarray) -> np.ndarray:
    if spec == "maxpool(k=3)":
        return x.max(axis=1)
    if spec == "relu":
        return np.maximum(x, 0.0)
    return 1.0 / (1.0 + np.exp(-x))


NUMPY_CHUNKS = (1 << 14, 1 << 16, 1 << 18, 1 << 20)  # normals per chunk: 2^14 to 2^18 ran fastest here


def naive_rate(spec: str, samples: int, repeats: int = 3) -> float:
    """Outputs/s of the script a user writes (draw a chunk, reduce it, keep sums), at its best chunk size."""
    return max(_naive_rate(spec, samples, max(1, normals // OPS[spec]), repeats) for normals in NUMPY_CHUNKS)


def _naive_rate(spec: str, samples: int, chunk: int, repeats: int) -> float:
    width = OPS[spec]

    def script():
        rng = np.random.default_rng(0)
        total = total_sq = 0.0
        for start in range(0, samples, chunk):
            n = min(chunk, samples - start)
            shape = (n, width) if width > 1 else (n,)
            y = _naive_chunk(spec, rng.standard_normal(shape))
            total += y.sum()
            total_sq += (y * y).sum()
        mean = total / samples
        return mean, math.sqrt(total_sq / samples - mean * mean)

    return samples / _best_of(script, repeats)


def torch_rate(spec: str, samples: int, dtype: str, repeats: int = 3) -> float | None:
    """Outputs/s of the numpy script in torch on the CPU (all its threads), at its best chunk size; None without it."""
    try:
        import torch
    except ImportError:
        return None
    width, kind = OPS[spec], getattr(torch, dtype)
    act = {"maxpool(k=3)": lambda x: x.amax(dim=1), "relu": torch.relu, "sigmoid": torch.sigmoid}[spec]

    def script(chunk):
        gen = torch.Generator().manual_seed(0)
        total = total_sq = 0.0
        for start in range(0, samples, chunk):
            n = min(chunk, samples - start)
            y = act(torch.randn((n, width) if width > 1 else (n,), generator=gen, dtype=kind))
            total += float(y.sum())
            total_sq += float((y * y).sum())
        return total, total_sq

    return max(samples / _best_of(lambda c=max(1, n // width): script(c), repeats) for n in NUMPY_CHUNKS)


def antithetic_gain(n: int, batches: int = 128) -> dict:
    """Variance x time of the mean and std estimates of maxpool(k=3): plain over antithetic (1 thread).

    Both sides are momentcalc's own chunk kernels, one chunk per batch. Equal work per batch:
    n/batches windows plain, half as many pairs antithetic. The variances are those of the
    batch estimates (batch means), so they need no model of the pairing.
    """
    program = montecarlo.compile_program(mc.parse("maxpool(k=3)"), 0.0, 1.0)
    per = n // batches
    shift = 1.485  # near the mean; any value gives the same estimates
    sides = {
        "plain": lambda rows: (rows[0, 1], np.sqrt(rows[0, 2] / rows[0, 0])),
        "antithetic": lambda rows: (lambda s: (s.mean, s.std))(antithetic.summarize(rows, shift)),
    }
    launches = {"plain": None, "antithetic": antithetic._PairLaunch(program, shift)}
    out = {}
    for name, estimate in sides.items():

        def batch(seed, estimate=estimate, launch=launches[name]):
            return estimate(montecarlo.run_chunks(program, seed, 0, [per], launch=launch))

        _with_threads(1, lambda: batch(0))  # compiled or loaded from cache
        start = time.perf_counter()
        est = np.array(_with_threads(1, lambda: [batch(seed) for seed in range(1, batches + 1)]))
        seconds = (time.perf_counter() - start) / batches
        out[name] = (seconds, est[:, 0].var(ddof=1), est[:, 1].var(ddof=1))
    (tp, vmp, vsp), (ta, vma, vsa) = out["plain"], out["antithetic"]
    return {
        "mean_variance_x_time_gain": float(vmp * tp / (vma * ta)),
        "std_variance_x_time_gain": float(vsp * tp / (vsa * ta)),
        "plain_batch_s": tp,
        "antithetic_batch_s": ta,
        "batches": batches,
    }


def time_to_se(target: float, quick: bool) -> dict:
    """Wall time to reach SE(mean) <= target on maxpool(k=3): QMC measured; Monte Carlo extrapolated
    from a 2^22-sample run by SE ~ 1/sqrt(time) (measured in full with --quick off)."""
    mc.estimate("maxpool(k=3)", method="montecarlo", samples=1 << 14)
    start = time.perf_counter()
    pilot = mc.estimate("maxpool(k=3)", method="montecarlo", samples=1 << 22).record
    mc_seconds = (time.perf_counter() - start) * (pilot.mean_se / target) ** 2
    mc.estimate("maxpool(k=3)", method="qmc", samples=1 << 12)
    start, samples = time.perf_counter(), 1 << 18
    while True:
        e = mc.estimate("maxpool(k=3)", method="qmc", samples=samples).record
        if e.mean_se <= target:
            break
        samples *= 2
    qmc_seconds = time.perf_counter() - start
    out = {"montecarlo_s": mc_seconds, "montecarlo_measured": False, "qmc_s": qmc_seconds, "qmc_samples": e.samples}
    if not quick:
        start = time.perf_counter()
        mc.estimate("maxpool(k=3)", method="montecarlo", tol=target)
        out.update(montecarlo_s=time.perf_counter() - start, montecarlo_measured=True)
    out["qmc_speedup"] = out["montecarlo_s"] / qmc_seconds
    return out


def _wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def startup() -> dict:
    python = sys.executable
    cli = [python, "-m", "momentcalc"]
    fresh = dict(os.environ, MOMENTCALC_KERNELS=tempfile.mkdtemp(prefix="momentcalc-kernels-"))
    estimate = cli + ["estimate", "relu", "--method", "montecarlo"]
    return {
        "help_s": min(_wall(cli + ["--help"]) for _ in range(3)),
        "import_constants_s": min(_wall([python, "-c", "import momentcalc.constants"]) for _ in range(3)),
        "estimate_first_process_s": _wall(estimate, fresh),
        "estimate_second_process_s": _wall(estimate, fresh),
    }


EXACT_METHODS = ("certified", "closed", "quadrature")
# maxpool(n) quadrature at the window sizes issue 33 names (its target: 2 ms each), beside the default table.
EXACT_EXTRA = ("maxpool(n=9)", "maxpool(n=10000)", "maxpool(n=1000000)")


def _clear_caches() -> None:
    """Empty every functools cache of momentcalc's modules: each timed call below computes from scratch, as a
    first call with new parameters does (a cached repeat costs about a microsecond and says nothing)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("momentcalc") and module is not None:
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def _uncached(method: str, spec: str, repeats: int) -> float | None:
    """Median seconds of the exact `method` on `spec` at N(0, 1), every cache emptied before each call; None where
    the method does not apply. The imports are paid before the first timed call."""
    try:
        mc.estimate(spec, method=method)
    except mc.MomentcalcError:
        return None
    times = []
    for _ in range(repeats):
        _clear_caches()
        start = time.perf_counter()
        mc.estimate(spec, method=method)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _plain_max_quad(n: int) -> None:
    """The reference of issue 33: one scipy quad per moment over the density of the max of n standard normals."""
    from scipy import integrate, special

    log_n = math.log(n) - 0.5 * math.log(2.0 * math.pi)
    density = lambda y: math.exp(log_n - 0.5 * y * y + (n - 1) * float(special.log_ndtr(y)))  # noqa: E731
    mean = integrate.quad(lambda y: y * density(y), -40.0, 40.0, epsabs=1e-15, epsrel=1e-13, limit=200, points=[0.0])
    integrate.quad(lambda y: (y - mean[0]) ** 2 * density(y), -40.0, 40.0, epsabs=1e-15, epsrel=1e-13, limit=200)


def exact_timings(repeats: int = 5, build: bool = True) -> dict:
    """Each exact method per default-table entry (and maxpool(n) at n = 9, 10^4, 10^6), uncached, one line each;
    then the whole default table build."""
    from momentcalc import tables

    per_entry: dict[str, dict[str, float | None]] = {}
    print(f"{'uncached, median of ' + str(repeats):<40}" + "".join(f"{m:>12}" for m in EXACT_METHODS))
    for spec in (*tables.DEFAULT_SPECS, *EXACT_EXTRA):
        per_entry[spec] = {m: _uncached(m, spec, repeats) for m in EXACT_METHODS}
        cells = "".join(f"{'—':>12}" if t is None else f"{t * 1e3:>10.2f}ms" for t in per_entry[spec].values())
        print(f"{spec:<40}{cells}  (load {os.getloadavg()[0]:.1f})", flush=True)
    plain = {}
    for spec in EXACT_EXTRA:
        n = mc.parse(spec).last.window_size
        _plain_max_quad(n)
        plain[spec] = statistics.median(_best_of(lambda n=n: _plain_max_quad(n), 1) for _ in range(repeats))
        print(f"{spec:<40}{plain[spec] * 1e3:>34.2f}ms  a plain scipy quad per moment, for comparison")
    quad = [e["quadrature"] for e in per_entry.values() if e["quadrature"] is not None]
    report = {"uncached_s": per_entry, "plain_max_quad_s": plain, "slowest_quadrature_s": max(quad)}
    if build:
        start = time.perf_counter()
        tables.build()
        report["table_build_s"] = time.perf_counter() - start
    return report


def _cpu_rate(fn, count: int, repeats: int) -> float:
    """count / the least CPU seconds (user + sys of this process) of fn over repeats runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return count / best


def activation_ratios(specs: list[str], normals: int, rounds: int = 3) -> dict:
    """Each elementwise spec's normals/s on one thread against rng_limit on one thread, best of rounds, by wall
    and by CPU seconds (steadier on a loaded machine, where wall seconds include waiting for a core)."""
    load_before = os.getloadavg()[0]
    limit_name, _ = rng_limit(normals // 4)
    limit_bitgen = getattr(np.random, limit_name)
    chunks = 64
    gens = [np.random.Generator(limit_bitgen(s)) for s in np.random.SeedSequence(0).spawn(chunks)]
    best: dict[str, float] = {}
    specs = list(dict.fromkeys(["relu", *specs]))
    for spec in specs:
        mc.estimate(spec, method="montecarlo", samples=1 << 12)  # compiled or loaded from cache
    for _ in range(rounds):
        _keep_best(best, "limit 1", _with_threads(1, lambda: _limit_rate(limit_bitgen, normals, 1)))
        _keep_best(
            best,
            "limit 1 cpu",
            _with_threads(
                1,
                lambda: _cpu_rate(
                    lambda: _sum_normals_parallel(gens, normals // chunks), normals // chunks * chunks, 1
                ),
            ),
        )
        for spec in specs:
            _keep_best(best, spec, fused_rate(spec, normals, 1, 1))
            run = lambda spec=spec: mc.estimate(spec, method="montecarlo", samples=normals)  # noqa: E731
            _keep_best(best, spec + " cpu", _with_threads(1, lambda run=run: _cpu_rate(run, normals, 1)))
    print(
        f"rng_limit on 1 thread: {best['limit 1']:.3g} normals/s ({limit_name}); load average {load_before:.1f} "
        f"before, {os.getloadavg()[0]:.1f} after"
    )
    # rng_limit is itself a measurement that a loaded machine moves: relu (a fused block, about at the limit),
    # always measured in the same rounds, is a second yardstick.
    print(f"{'activation':<26}{'normals/s':>12}{'vs limit':>10}{'by cpu':>8}{'vs relu':>9}")
    report = {"load_before": load_before, "load_after": os.getloadavg()[0]}
    for spec in specs:
        ratio, ratio_cpu = best[spec] / best["limit 1"], best[spec + " cpu"] / best["limit 1 cpu"]
        report[spec] = {"ratio": ratio, "ratio_cpu": ratio_cpu}
        print(f"{spec:<26}{best[spec]:>12.3g}{ratio:>10.2f}{ratio_cpu:>8.2f}{best[spec] / best['relu']:>9.2f}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs: about two minutes, half of it one cold compile"
    )
    parser.add_argument(
        "--activations",
        nargs="*",
        help="only elementwise specs against the limit, one thread (no names: every activation of the default table)",
    )
    parser.add_argument(
        "--exact", action="store_true", help="only the exact methods, uncached, per table entry (no table build)"
    )
    args = parser.parse_args()
    if args.exact:
        print(json.dumps(exact_timings(build=False)))
        return
    if args.activations is not None:
        print(json.dumps(activation_ratios(args.activations or list(TABLE_ACTIVATIONS), 1 << 24)))
        return
    quick = args.quick
    threads = numba.get_num_threads()
    normals = 1 << (25 if quick else 27)
    limit_name, _ = rng_limit(normals)
    limit_bitgen = getattr(np.random, limit_name)
    # This VM's speed drifts by 2x within minutes: every rate is the best of several rounds, and a
    # round measures the limit and every op back to back, so each ratio compares like with like.
    best: dict[str, float] = {}
    for _ in range(2 if quick else 4):
        _keep_best(best, "limit", _limit_rate(limit_bitgen, normals, 3))
        _keep_best(best, "limit 1", _with_threads(1, lambda: _limit_rate(limit_bitgen, normals // 2, 3)))
        _keep_best(best, "own normals 1", own_normals_rate(normals // 2))
        for spec, width in OPS.items():
            _keep_best(best, spec + " 1", fused_rate(spec, normals // width, 1, 1))
            _keep_best(best, spec, fused_rate(spec, normals // width, threads, 1))
            _keep_best(best, spec + " naive", naive_rate(spec, normals // width // 4, 1))
            for dtype in ("float32", "float64"):
                rate = torch_rate(spec, normals // width // 4, dtype, 1)
                if rate is not None:
                    _keep_best(best, f"{spec} torch {dtype}", rate)
    limit = best["limit"]
    print(f"rng_limit: {limit:.3g} normals/s ({limit_name}, {threads} threads, jitted prange sum)")
    print(
        f"rng_limit on 1 thread: {best['limit 1']:.3g} normals/s "
        f"(how well {threads} threads scale: {limit / best['limit 1']:.2f}x)"
    )
    own = best["own normals 1"]
    print(
        f"momentcalc's own normals (estimators/normals.py) on 1 thread: {own:.3g} normals/s "
        f"({own / best['limit 1']:.2f}x rng_limit on 1 thread)"
    )
    report = {
        "threads": threads,
        "rng_limit_bit_generator": limit_name,
        "rng_limit_per_s": limit,
        "rng_limit_1thread_per_s": best["limit 1"],
        "own_normals_1thread_per_s": own,
        "own_normals_vs_rng_limit_1thread": own / best["limit 1"],
    }
    print(
        f"{'op':<14}{'fused 1 thr':>14}{'fused all':>14}{'naive numpy':>14}"
        f"{'vs limit':>10}{'1 thr':>7}{'vs naive':>10}{'bound':>8}{'vs torch32':>11}{'vs torch64':>11}"
    )
    for spec, width in OPS.items():
        all_threads, naive = best[spec], best[spec + " naive"]
        # Pipelines with max pooling run in antithetic pairs: two outputs from one window's draws.
        drawn = width / 2 if montecarlo.compile_program(mc.parse(spec), 0.0, 1.0).antithetic else width
        torch32, torch64 = best.get(spec + " torch float32"), best.get(spec + " torch float64")
        row = {
            "fused_per_s": all_threads,
            "fused_1thread_per_s": best[spec + " 1"],
            "rng_limit_per_s": limit / drawn,
            "naive_per_s": naive,
            "normals_drawn_per_output": drawn,
            # Per normal drawn: the kernel's own pace against the generator's.
            "ratio_vs_limit": all_threads * drawn / limit,
            # The same on one thread: steadier on a shared machine, where two threads scale erratically.
            "ratio_vs_limit_1thread": best[spec + " 1"] * drawn / best["limit 1"],
            "ratio_vs_naive": all_threads / naive,
            "torch_float32_per_s": torch32,
            "torch_float64_per_s": torch64,
            "ratio_vs_torch_float32": all_threads / torch32 if torch32 else None,
            "ratio_vs_torch_float64": all_threads / torch64 if torch64 else None,
            # The ratio_vs_naive of a kernel that did nothing but draw its normals at rng_limit.
            "bound_vs_naive": limit / drawn / naive,
        }
        report[spec] = row
        print(
            f"{spec:<14}{row['fused_1thread_per_s']:>14.3g}{all_threads:>14.3g}{naive:>14.3g}"
            f"{row['ratio_vs_limit']:>10.2f}{row['ratio_vs_limit_1thread']:>7.2f}{row['ratio_vs_naive']:>10.1f}{row['bound_vs_naive']:>8.1f}"
            + "".join(f"{all_threads / t:>11.1f}" if t else f"{'—':>11}" for t in (torch32, torch64))
        )
    report["time_to_se_1e-5"] = time_to_se(1e-5, quick)
    print("time to SE 1e-5 on the mean of maxpool(k=3):", json.dumps(report["time_to_se_1e-5"]))
    report["antithetic_maxpool3"] = antithetic_gain(normals // 9)
    print("antithetic variates, maxpool(k=3):", json.dumps(report["antithetic_maxpool3"]))
    report["startup"] = startup()
    print("start-up:", json.dumps(report["startup"]))
    report["exact"] = exact_timings()
    print(
        f"slowest quadrature entry (uncached): {report['exact']['slowest_quadrature_s'] * 1e3:.1f} ms; "
        f"table build: {report['exact']['table_build_s']:.1f} s"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Monte Carlo throughput against the generator's own limit and a hand-written numpy script.

    python bench/throughput.py           # full run (a few minutes)
    python bench/throughput.py --quick   # about two minutes, half of it one cold compile

Every ratio is measured in this one run, on this machine: fused kernels
against (a) the fastest numpy bit generator summing normals in a jitted
prange loop (the physical limit of plain Monte Carlo here) and (b) the numpy
script a user would write. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from numba import njit, prange

import momentcalc as mc
from momentcalc.estimators import quadrature

OPS = {"maxpool(k=3)": 9, "relu": 1, "sigmoid": 1}  # spec: normals per output


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


def rng_limit(normals: int) -> tuple[str, float]:
    """Normals/s of the fastest numpy bit generator inside a jitted prange loop that only sums."""
    best = ("", 0.0)
    chunks = 64
    for bit_generator in (np.random.SFC64, np.random.PCG64, np.random.Philox):
        gens = [np.random.Generator(bit_generator(s)) for s in np.random.SeedSequence(0).spawn(chunks)]
        _sum_normals_parallel(gens, 10)
        per_chunk = normals // chunks
        rate = per_chunk * chunks / _best_of(lambda: _sum_normals_parallel(gens, per_chunk))
        best = max(best, (bit_generator.__name__, rate), key=lambda t: t[1])
    return best


def _best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fused_rate(spec: str, samples: int, threads: int) -> float:
    """Outputs/s of momentcalc's Monte Carlo through the public API."""
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        mc.estimate(spec, method="montecarlo", samples=1 << 14)  # compiled or loaded from cache
        return samples / _best_of(lambda: mc.estimate(spec, method="montecarlo", samples=samples))
    finally:
        numba.set_num_threads(before)


def _naive_chunk(spec: str, x: np.ndarray) -> np.ndarray:
    if spec == "maxpool(k=3)":
        return x.max(axis=1)
    if spec == "relu":
        return np.maximum(x, 0.0)
    return 1.0 / (1.0 + np.exp(-x))


def naive_rate(spec: str, samples: int) -> float:
    """Outputs/s of the script a user writes: draw a chunk, reduce it, keep sums."""
    width = OPS[spec]

    def script():
        rng = np.random.default_rng(0)
        total = total_sq = 0.0
        chunk = 1 << 20
        for start in range(0, samples, chunk):
            n = min(chunk, samples - start)
            shape = (n, width) if width > 1 else (n,)
            y = _naive_chunk(spec, rng.standard_normal(shape))
            total += y.sum()
            total_sq += (y * y).sum()
        mean = total / samples
        return mean, math.sqrt(total_sq / samples - mean * mean)

    return samples / _best_of(script)


@njit(cache=True, nogil=True)
def _antithetic_pairs(gen, pairs, k):
    """Pair means of max(x) and max(-x) = -min(x) over windows of k normals."""
    s = s2 = 0.0
    for _ in range(pairs):
        hi = lo = gen.standard_normal()
        for _ in range(k - 1):
            v = gen.standard_normal()
            hi = max(hi, v)
            lo = min(lo, v)
        y = 0.5 * (hi - lo)
        s += y
        s2 += y * y
    m = s / pairs
    return m, s2 / pairs - m * m


@njit(cache=True, nogil=True)
def _plain_windows(gen, n, k):
    s = s2 = 0.0
    for _ in range(n):
        hi = gen.standard_normal()
        for _ in range(k - 1):
            hi = max(hi, gen.standard_normal())
        s += hi
        s2 += hi * hi
    m = s / n
    return m, s2 / n - m * m


def antithetic_gain(n: int) -> dict:
    """Variance x time per estimate of the mean of maxpool(k=3): plain over antithetic (1 thread)."""
    gen = np.random.Generator(np.random.SFC64(1))
    _plain_windows(gen, 10, 9), _antithetic_pairs(gen, 10, 9)
    t_plain = _best_of(lambda: _plain_windows(gen, n, 9))
    _, var_plain = _plain_windows(gen, n, 9)
    t_anti = _best_of(lambda: _antithetic_pairs(gen, n // 2, 9))
    _, var_pair = _antithetic_pairs(gen, n // 2, 9)
    # Equal work: n windows plain, n/2 pairs antithetic. Their estimators' variances: var/n and var_pair/(n/2).
    gain = (var_plain / n * t_plain) / (var_pair / (n // 2) * t_anti)
    return {"variance_x_time_gain": gain, "plain_s": t_plain, "antithetic_s": t_anti}


def time_to_se(target: float, quick: bool, mc_rate: float) -> dict:
    """Wall time to reach SE(mean) <= target on maxpool(k=3): qmc measured, Monte Carlo from its rate."""
    var = quadrature.estimate_moments(mc.parse("maxpool(k=3)"), 0.0, 1.0)[1] ** 2
    mc_seconds = var / target**2 / mc_rate
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
        mc.estimate("maxpool(k=3)", method="montecarlo", samples=int(var / target**2))
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
    fresh = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="momentcalc-numba-"))
    estimate = cli + ["estimate", "relu", "--method", "montecarlo"]
    return {
        "help_s": min(_wall(cli + ["--help"]) for _ in range(3)),
        "import_constants_s": min(_wall([python, "-c", "import momentcalc.constants"]) for _ in range(3)),
        "estimate_first_process_s": _wall(estimate, fresh),
        "estimate_second_process_s": _wall(estimate, fresh),
    }


def exact_timings() -> dict:
    """Quadrature per default-table entry, and the whole default table build."""
    from momentcalc import tables

    per_entry = {}
    for spec in tables.DEFAULT_SPECS:
        quadrature.estimate_moments(mc.parse(spec), 0.0, 1.0)
        per_entry[spec] = _best_of(lambda: quadrature.estimate_moments(mc.parse(spec), 0.0, 1.0))
    start = time.perf_counter()
    tables.build()
    return {"quadrature_s": per_entry, "slowest_quadrature_s": max(per_entry.values()), "table_build_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: about two minutes, half of it one cold compile")
    quick = parser.parse_args().quick
    threads = numba.get_num_threads()
    normals = 1 << (25 if quick else 27)
    limit_name, limit = rng_limit(normals)
    print(f"rng_limit: {limit:.3g} normals/s ({limit_name}, {threads} threads, jitted prange sum)")
    report = {"threads": threads, "rng_limit_bit_generator": limit_name}
    print(f"{'op':<14}{'fused 1 thr':>14}{'fused all':>14}{'naive numpy':>14}{'vs limit':>10}{'vs naive':>10}")
    for spec, width in OPS.items():
        samples = normals // width
        one, all_threads = fused_rate(spec, samples, 1), fused_rate(spec, samples, threads)
        naive = naive_rate(spec, samples // 4)
        row = {
            "fused_per_s": all_threads,
            "fused_1thread_per_s": one,
            "rng_limit_per_s": limit / width,
            "naive_per_s": naive,
            "ratio_vs_limit": all_threads * width / limit,
            "ratio_vs_naive": all_threads / naive,
        }
        report[spec] = row
        print(f"{spec:<14}{one:>14.3g}{all_threads:>14.3g}{naive:>14.3g}{row['ratio_vs_limit']:>10.2f}{row['ratio_vs_naive']:>10.1f}")
    report["time_to_se_1e-5"] = time_to_se(1e-5, quick, report["maxpool(k=3)"]["fused_per_s"])
    print("time to SE 1e-5 on the mean of maxpool(k=3):", json.dumps(report["time_to_se_1e-5"]))
    report["antithetic_maxpool3"] = antithetic_gain(normals // 9)
    print("antithetic variates, maxpool(k=3):", json.dumps(report["antithetic_maxpool3"]))
    report["startup"] = startup()
    print("start-up:", json.dumps(report["startup"]))
    report["exact"] = exact_timings()
    print(f"slowest quadrature entry: {report['exact']['slowest_quadrature_s'] * 1e3:.1f} ms; table build: {report['exact']['table_build_s']:.1f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Pipelines against their window op alone: normals drawn per second, measured side by side in one run.

    python bench/pipelines.py              # k = 3, 2^22 outputs a run, best of 3 rounds
    python bench/pipelines.py --k 2 --threads 1
    python bench/pipelines.py --activations relu tanh gelu sigmoid

For each `activation | maxpool(k)` and `activation | normalize | maxpool(k)`
the ratio of its normals drawn per second to maxpool(k)'s (the target is 0.5
or more). Antithetic pairs draw one window of normals for two outputs, so
normals drawn = outputs * k^2 / 2 for every spec here. Kernels are loaded (or
compiled) before timing; each round times every spec back to back, and the
best round of each is kept, so a ratio compares like with like on a shared
machine. CPU seconds (user + sys of this process) are printed with wall ones, and the ratio from them
(steadier on a loaded machine: wall seconds there include waiting for a core).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numba

import momentcalc as mc
from momentcalc import catalog
from momentcalc.spec import parse
from momentcalc.tables import DEFAULT_SPECS

# The activations of the default table (relu, sigmoid, tanh, gelu, ..., identity), as it writes them.
ACTIVATIONS = tuple(s for s in DEFAULT_SPECS if all(op.kind == catalog.ELEMENTWISE for op in parse(s).ops))


def timed(spec: str, samples: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    mc.estimate(spec, method="montecarlo", samples=samples)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1 << 22)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=numba.get_num_threads())
    parser.add_argument("--activations", nargs="+", default=ACTIVATIONS, help="default: the default table's")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    base = f"maxpool(k={args.k})"
    specs = [base] + [f"{a} | {base}" for a in args.activations]
    specs += [f"{a} | normalize | {base}" for a in args.activations]
    for spec in specs:
        mc.estimate(spec, method="montecarlo", samples=1 << 12)  # kernels loaded or compiled
    drawn = args.samples * args.k**2 / 2
    best = {spec: (float("inf"), float("inf")) for spec in specs}
    for _ in range(args.rounds):
        for spec in specs:
            wall, cpu = timed(spec, args.samples)
            best[spec] = (min(best[spec][0], wall), min(best[spec][1], cpu))
    print(f"{args.threads} threads, {args.samples} outputs a run, load average {os.getloadavg()[0]:.1f}")
    print(f"{'spec':<52}{'normals/s':>12}{'vs ' + base:>18}{'by cpu s':>10}{'wall s':>9}{'cpu s':>8}")
    report = {}
    for spec in specs:
        wall, cpu = best[spec]
        ratio = best[base][0] / wall
        # The same ratio from CPU seconds: steadier where other processes take turns on the cores.
        ratio_cpu = best[base][1] / cpu
        report[spec] = {
            "normals_per_s": drawn / wall,
            "ratio": ratio,
            "ratio_cpu": ratio_cpu,
            "wall_s": wall,
            "cpu_s": cpu,
        }
        print(f"{spec:<52}{drawn / wall:>12.3g}{ratio:>18.2f}{ratio_cpu:>10.2f}{wall:>9.3f}{cpu:>8.3f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Monte Carlo against the generator alone and against maxpool(k): normals drawn per second, side by side in one run.

    python bench/pipelines.py              # k = 3, about 2^23 normals a run, best of 3 rounds
    python bench/pipelines.py --k 2 --threads 1
    python bench/pipelines.py --activations relu tanh gelu sigmoid --ops glu "softmax(n=64)"

Every spec is timed against two yardsticks measured in the same rounds:
`generator`, numpy's SFC64 Generator summing normals in a jitted prange
loop (the pace of plain Monte Carlo through numpy; throughput.py's
rng_limit), and maxpool(k). Specs: each activation alone, before
`maxpool(k)` and before `normalize | maxpool(k)` (issue: 0.7 of the
generator or more), and the ops of several inputs (issue: 0.5 of
maxpool(k) or more). Normals drawn per output: 1 for an elementwise spec,
k^2 / 2 where max pooling runs in antithetic pairs (one window of normals
for two outputs), the inputs of a gated unit, the size of a joint op.
Kernels are loaded (or compiled) before timing; each round times every spec
back to back and keeps the best of each. A run makes at least 2^14 outputs
(softmax's Monte Carlo declines fewer), so softmax(n=4096) draws 2^26
normals: every rate counts the normals its run draws. CPU seconds (user +
sys of this process) are printed with wall ones, and the ratios from them
(steadier on a loaded machine: wall seconds there include waiting for a
core). The load average is printed before and after. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numba
import numpy as np
from throughput import _sum_normals_parallel

import momentcalc as mc
from momentcalc import catalog
from momentcalc.estimators import montecarlo
from momentcalc.spec import parse
from momentcalc.tables import DEFAULT_SPECS

# The activations of the default table (relu, sigmoid, tanh, gelu, ..., identity), as it writes them.
ACTIVATIONS = tuple(s for s in DEFAULT_SPECS if all(op.kind == catalog.ELEMENTWISE for op in parse(s).ops))
SEVERAL = (catalog.PRODUCT, catalog.JOINT, catalog.RESIDUAL)
# The ops of several inputs of the default table, bilinear, and softmax at the sizes the issue names.
OPS = tuple(s for s in DEFAULT_SPECS if parse(s).ops[0].kind in SEVERAL) + (
    "bilinear",
    "softmax(n=16)",
    "softmax(n=1024)",
)
NORMALS = 1 << 23  # normals a timed run draws
GENERATOR = "generator"


def normals_per_output(spec: str) -> float:
    op = parse(spec).ops[0]
    if op.kind == catalog.PRODUCT:
        return float(len(op.info.inputs))
    if op.kind == catalog.JOINT:
        return float(op.info.size(op))
    if op.kind == catalog.RESIDUAL:
        return 1.0
    program = montecarlo.compile_program(parse(spec), 0.0, 1.0)
    n = program.normals_per_output
    return n / 2 if program.antithetic else float(n)


def timed(run) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _generator(chunks: int):
    gens = [np.random.Generator(np.random.SFC64(s)) for s in np.random.SeedSequence(0).spawn(chunks)]
    _sum_normals_parallel(gens, 10)  # compiled or loaded
    return lambda: _sum_normals_parallel(gens, NORMALS // chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=numba.get_num_threads())
    parser.add_argument("--activations", nargs="*", default=ACTIVATIONS, help="default: the default table's")
    parser.add_argument("--ops", nargs="*", default=OPS, help="ops of several inputs (default: the table's)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    base = f"maxpool(k={args.k})"
    specs = [base, *args.activations]
    specs += [f"{a} | {base}" for a in args.activations]
    specs += [f"{a} | normalize | {base}" for a in args.activations]
    specs += list(args.ops)
    per = {spec: normals_per_output(spec) for spec in specs}
    per[GENERATOR] = 1.0
    runs = {GENERATOR: _generator(64)}
    outputs = {GENERATOR: NORMALS}
    for spec in specs:
        # at least 2^14 outputs: softmax's Monte Carlo trusts no fewer than 13,978 at N(0, 1) (its heavy tails);
        # where that draws more than NORMALS (softmax with n > 512), its rates count the normals it draws
        samples = outputs[spec] = max(1 << 14, int(NORMALS / per[spec]))
        mc.estimate(spec, method="montecarlo", samples=min(samples, 1 << 15))  # kernels loaded or compiled
        runs[spec] = lambda spec=spec, samples=samples: mc.estimate(spec, method="montecarlo", samples=samples)
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            wall, cpu = timed(run)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    gen_wall, gen_cpu = best[GENERATOR]
    print(
        f"{args.threads} threads, about {NORMALS} normals a run (2^14 outputs where that is more), "
        f"load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(f"{'spec':<44}{'normals/s':>11}{'vs generator':>13}{'by cpu':>8}{'vs ' + base:>16}{'by cpu':>8}")
    report = {"threads": args.threads, "load_before": load_before, "load_after": os.getloadavg()[0]}
    for name in runs:
        drawn = outputs[name] * per[name]
        wall, cpu = best[name]
        row = {
            "normals_per_s": drawn / wall,
            # per normal drawn: the generator's seconds for as many normals over this spec's
            "vs_generator": (gen_wall / NORMALS) / (wall / drawn),
            "vs_generator_cpu": (gen_cpu / NORMALS) / (cpu / drawn),
            "vs_base": (best[base][0] / (outputs[base] * per[base])) / (wall / drawn),
            "vs_base_cpu": (best[base][1] / (outputs[base] * per[base])) / (cpu / drawn),
            "normals": drawn,
            "wall_s": wall,
            "cpu_s": cpu,
        }
        report[name] = row
        print(
            f"{name:<44}{row['normals_per_s']:>11.3g}{row['vs_generator']:>13.2f}{row['vs_generator_cpu']:>8.2f}"
            f"{row['vs_base']:>16.2f}{row['vs_base_cpu']:>8.2f}"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Monte Carlo on a Dask LocalCluster (estimators/cluster.py) against the local thread driver, and what 100 workers
would take to reach SE 1e-6 and 1e-7 on 'relu | normalize | maxpool(k=3)'.

    PYTHONPATH=. python bench/cluster.py            # 2**24 samples per run (2**20 qmc points)
    PYTHONPATH=. python bench/cluster.py --quick    # 2**22 (2**18)

Measured here, in one run: the local driver on 1 and 2 threads; a LocalCluster
of 1 and 2 worker processes (one thread each; a warm-up run first, so the
workers' kernels are compiled or loaded from numba's cache); every cluster run
is checked to give the local bits, quasi-Monte Carlo included. From these:
seconds per chunk, Dask's overhead per chunk ((W * t_W - t_local1) / chunks),
the efficiency t_local1 / (W * t_W) (for qmc too), and the round trip of an
empty task (what the scheduler costs per task).

By task size (``by_task_size``, printed as a table): on 1 worker process (so
that no second worker competes for a core), the same 2**22 (quick) or 2**24
samples in tasks of 1, 4, 16 and 64 chunks, by the rule before tasks had a
least size (4 a worker thread: "4/slot"), and as the driver cuts them
("auto"), against the local driver on 1 thread: Dask's overhead per task in ms
and in % of the compute per task, from wall seconds and from CPU seconds (this
process, which holds the client and the scheduler, plus the worker: on a shared
machine CPU seconds are what other users' load disturbs least). Best of 3
(by CPU), each run checked to give the local bits. A line fitted to the CPU
over the number of tasks splits it into Dask's CPU per task (the slope: the
last column, as % of compute) and per run (client and worker event loops while
the run lasts, the antithetic pilot's task).

First runs (``first_run``, not with --quick): in a fresh process, a fresh LocalCluster of 2
workers (started untimed), then one timed estimate of 2**16 samples: as
momentcalc does it ("here": this process loads the kernel, each worker on its
first chunk task) against a warm-up ("warm": every worker loads it at once
before the chunk tasks, this process none), with numba's cache full and with
an empty one (MOMENTCALC_KERNELS a fresh folder: everything compiles). Best of 2.

The projection to 100 workers: chunks needed = samples for the target SE (from
this run's SE, SE ~ 1/sqrt(n)) / samples per chunk; time = chunks * seconds per
chunk / (100 * efficiency of 1 worker); the scheduler's bound = tasks * (seconds
per empty task), with tasks of 8 * cluster.batch_scale(100) chunks. Timings on a
loaded machine are noisy: the figures are for their order of magnitude. The last
line printed is JSON.
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

import distributed
import numba
import numpy as np

from momentcalc import engine
from momentcalc.estimators import cluster, driver, montecarlo
from momentcalc.spec import parse

SPEC = "relu | normalize | maxpool(k=3)"
WORKERS = 100


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _run(samples, scheduler=None, method="montecarlo"):
    result = engine.estimate(SPEC, method=method, samples=samples, seed=1, scheduler=scheduler)
    (e,) = result.estimates
    return (e.mean, e.std, e.mean_se, e.std_se, e.samples)


def _local(samples, threads, method="montecarlo"):
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return _timed(lambda: _run(samples, method=method))
    finally:
        numba.set_num_threads(before)


FIRST_RUN = """
import logging, sys, time
import distributed
from momentcalc import engine
from momentcalc.estimators import driver, montecarlo
if sys.argv[1] == "warm":  # the alternative: every worker loads the kernel at once, before the chunk tasks
    here = montecarlo.prepare
    def warm(program):
        client = driver.current_executor().client
        pinned = [client.submit(here, program, workers=[w], allow_other_workers=False, pure=False)
                  for w in client.nthreads()]
        client.gather(pinned)
    montecarlo.prepare = warm
with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                              silence_logs=logging.CRITICAL) as local, distributed.Client(local) as client:
    client.run(lambda: None)  # the workers are up
    start = time.perf_counter()
    engine.estimate(sys.argv[2], method="montecarlo", samples=1 << 16, seed=1, scheduler=client)
    print(time.perf_counter() - start)
"""


def _first_run(way: str, cache: str | None) -> float:
    env = dict(os.environ)
    if cache is not None:
        env["MOMENTCALC_KERNELS"] = cache
    out = subprocess.run([sys.executable, "-c", FIRST_RUN, way, SPEC], env=env, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _first_runs() -> dict:
    """Seconds of a first estimate on a fresh 2-worker cluster, loading here (what momentcalc does) against a
    warm-up on every worker (best of 2)."""
    out = {}
    for way in ("here", "warm"):
        cached = [_first_run(way, None) for _ in range(2)]
        cold = []
        for _ in range(2):
            with tempfile.TemporaryDirectory() as empty:
                cold.append(_first_run(way, empty))
        out[way] = {"cache_full_s": min(cached), "cache_empty_s": min(cold)}
    return out


TASK_SIZES = (1, 4, 16, 64)  # chunks a task, forced; then the rule before tasks had a least size, and "auto"
PER_SLOT = "4/slot"  # that rule: TASKS_PER_THREAD tasks a worker thread, however short


def _cpu(client) -> float:
    """CPU seconds so far of this process (the client, and a LocalCluster's scheduler) and of every worker."""
    return time.process_time() + sum(client.run(time.process_time).values())


def _by_task_size(samples: int, tasks_chunks: int) -> dict:
    """On 1 worker (no second process competing for a core): each task size's wall and CPU seconds against the
    local driver on 1 thread, as Dask's overhead in % of compute per task. Wall and CPU are taken over the same
    chunks (and the antithetic pilot's task), interleaved, best of 3."""
    bits, _ = _local(samples, 1)
    out = {}
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=40) as local,
        distributed.Client(local) as client,
    ):
        _run(1 << 16, client)  # the worker loads the kernel
        count = driver._task_count
        for size in (*TASK_SIZES, PER_SLOT, "auto"):
            best = None
            for _ in range(3):
                cpu = time.process_time()
                _, t_local = _local(samples, 1)
                cpu_local = time.process_time() - cpu
                seen = []

                def tasks(executor, chunks, n, size=size, seen=seen):
                    if size == PER_SLOT:
                        got = min(n, executor.slots * driver.TASKS_PER_THREAD)
                    else:
                        got = count(executor, chunks, n) if size == "auto" else max(1, n // size)
                    seen.append(got)
                    return got

                driver._task_count = tasks
                try:
                    before = _cpu(client)
                    got, t = _timed(lambda: _run(samples, client))
                    cpu_dask = _cpu(client) - before
                finally:
                    driver._task_count = count
                assert got == bits, f"tasks of {size} chunks: {got} != local {bits}"
                row = {
                    "tasks": sum(seen),
                    "cpu_s_dask": cpu_dask,
                    "cpu_s_local": cpu_local,
                    "chunks_per_task": tasks_chunks / max(seen),
                    "compute_ms_per_task": 1e3 * t_local / sum(seen),
                    "overhead_ms_per_task_wall": 1e3 * (t - t_local) / sum(seen),
                    "overhead_pct_wall": 100 * (t - t_local) / t_local,
                    "overhead_pct_cpu": 100 * (cpu_dask - cpu_local) / cpu_local,
                }
                if best is None or row["overhead_pct_cpu"] < best["overhead_pct_cpu"]:
                    best = row
            out[str(size)] = best
    return _per_task(out)


def _per_task(rows: dict) -> dict:
    """Dask's CPU as a + b * tasks (least squares over the forced sizes): b, its CPU per task, against the
    compute per task gives the overhead % by task size; a is what a run costs however it is cut (the client's
    and workers' event loops while it lasts, the antithetic pilot's task)."""
    sizes = [r for k, r in rows.items() if k not in ("auto", PER_SLOT)]
    tasks = np.array([r["tasks"] for r in sizes], dtype=float)
    extra = np.array([r["cpu_s_dask"] - r["cpu_s_local"] for r in sizes])
    b, a = np.polyfit(tasks, extra, 1)
    for r in rows.values():
        r["overhead_pct_cpu_per_task"] = 100 * b * r["tasks"] / r["cpu_s_local"]
    rows["fit"] = {"cpu_ms_per_task": 1e3 * b, "cpu_ms_per_run": 1e3 * a}
    return rows


def _print_table(rows: dict) -> None:
    fit = rows["fit"]
    print(f"Dask's CPU: {fit['cpu_ms_per_task']:.2f} ms a task + {fit['cpu_ms_per_run']:.0f} ms a run")
    print("chunks/task  tasks  compute ms/task  overhead ms/task  overhead % (wall)  overhead % (CPU)  per task (CPU)")
    for size, r in rows.items():
        if size == "fit":
            continue
        print(
            f"{size:>11}  {r['tasks']:5d}  {r['compute_ms_per_task']:15.1f}  {r['overhead_ms_per_task_wall']:15.1f}  "
            f"{r['overhead_pct_wall']:17.1f}  "
            f"{r['overhead_pct_cpu']:16.1f}  {r['overhead_pct_cpu_per_task']:14.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    samples = 1 << (22 if args.quick else 24)
    points = 1 << (18 if args.quick else 20)
    program = montecarlo.compile_program(parse(SPEC), 0.0, 1.0)
    per_chunk = max(2, program.chunk - program.chunk % 2)  # antithetic chunks: whole pairs
    chunks = math.ceil(samples / per_chunk)
    _run(1 << 16), _run(1 << 14, method="qmc")  # compile here first
    bits, t1 = _local(samples, 1)
    _, t2 = _local(samples, 2)
    qbits, q1 = _local(points, 1, "qmc")
    out = {"spec": SPEC, "samples": samples, "chunks": chunks, "samples_per_chunk": per_chunk, "qmc_points": points}
    out["local_threads"] = {"1": t1, "2": t2}
    out["qmc_local_threads"] = {"1": q1, "2": _local(points, 2, "qmc")[1]}
    out["s_per_chunk_local1"] = t1 / chunks
    out["dask_workers"] = {}
    for workers in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=":0", silence_logs=40
            ) as local,
            distributed.Client(local) as client,
        ):
            _, warm = _timed(lambda: _run(1 << 16, client))  # workers compile (or load) the kernels
            got, t = _timed(lambda: _run(samples, client))
            assert got == bits, f"{workers} workers: {got} != local {bits}"
            _, qwarm = _timed(lambda: _run(1 << 14, client, "qmc"))  # workers import scipy.stats, load the kernel
            qgot, tq = _timed(lambda: _run(points, client, "qmc"))
            assert qgot == qbits, f"{workers} workers, qmc: {qgot} != local {qbits}"
            empties, te = _timed(lambda: client.gather([client.submit(int, i, pure=False) for i in range(1000)]))
            out["dask_workers"][str(workers)] = {
                "seconds": t,
                "first_run_s": warm,
                "overhead_s_per_chunk": (workers * t - t1) / chunks,
                "efficiency": t1 / (workers * t),
                "empty_task_s": te / len(empties),
                "qmc_first_run_s": qwarm,
                "qmc_seconds": tq,
                "qmc_efficiency": q1 / (workers * tq),
                "same_bits": True,
            }
    # One worker's overhead per chunk: a second worker process is only as fast as a free core, and this machine
    # may have none (compare local_threads 1 and 2: equal times mean no spare core).
    d1 = out["dask_workers"]["1"]
    se = max(bits[2], bits[3])
    chunk_s, efficiency = out["s_per_chunk_local1"], min(1.0, d1["efficiency"])
    chunks_per_task = driver.Chunks.batch * cluster.batch_scale(WORKERS) // driver.TASKS_PER_THREAD  # 800
    for target in (1e-6, 1e-7):
        need = samples * (se / target) ** 2
        n_chunks = need / per_chunk
        compute = n_chunks * chunk_s / (WORKERS * efficiency)
        scheduler = n_chunks / chunks_per_task * d1["empty_task_s"]
        out[f"workers{WORKERS}_se{target:g}"] = {
            "samples": need,
            "chunks": n_chunks,
            "hours_compute": compute / 3600,
            "hours_scheduler_bound": scheduler / 3600,
            "hours_one_core": n_chunks * chunk_s / 3600,
            "scheduler_share": scheduler / compute,
        }
    out["by_task_size"] = _by_task_size(samples, chunks)
    _print_table(out["by_task_size"])
    print(f"efficiency on 2 workers: {out['dask_workers']['2']['efficiency']:.2f} (1 worker: {d1['efficiency']:.2f})")
    if not args.quick:
        out["first_run"] = _first_runs()
    out["load_1_5_15min"] = [load_before, os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

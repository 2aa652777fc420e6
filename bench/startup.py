"""Wall and CPU time of the commands a user runs first: cold (empty numba cache) and warm.

    python bench/startup.py                  # estimate relu, estimate 'maxpool(k=3)', tables build
    python bench/startup.py --only estimate  # skip the table build (the slowest cold command)
    python bench/startup.py --repeats 2      # each measurement this many times (the best is printed too)

Each command runs in a fresh process. "cold" points NUMBA_CACHE_DIR at a new
empty folder (jit.py's cache locator honours it), so everything compiles; the
next runs, "warm", load from that folder. tables build writes into a temporary
folder, never into tables/. CPU is user + sys of the child process: on a
shared machine it varies less than wall time. The load average is printed
with each measurement. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "estimate relu": ["estimate", "relu"],
    "estimate maxpool(k=3)": ["estimate", "maxpool(k=3)"],
    "tables build": ["tables", "build", "--dir", "{tmp}"],
}


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, cpu s) of one run of `momentcalc ARGS` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # From a folder of its own: `-m` puts the working folder first on sys.path, which would shadow the momentcalc
    # that PYTHONPATH or the environment names (comparing two checkouts measured the one run from twice).
    done = subprocess.run(
        [sys.executable, "-m", "momentcalc", *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"momentcalc {' '.join(args)} failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name: str, repeats: int, warm_runs: int) -> dict:
    rows = {"cold": [], "warm": []}
    for _ in range(repeats):
        cache = tempfile.mkdtemp(prefix="momentcalc-numba-")
        out = tempfile.mkdtemp(prefix="momentcalc-tables-")
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        args = [a.replace("{tmp}", out) for a in COMMANDS[name]]
        rows["cold"].append((*timed(args, env), os.getloadavg()[0]))
        for _ in range(warm_runs):
            rows["warm"].append((*timed(args, env), os.getloadavg()[0]))
    for kind, runs in rows.items():
        text = "  ".join(f"{w:.2f}s wall {c:.2f}s cpu (load {load:.1f})" for w, c, load in runs)
        print(f"{name:<24}{kind:<6}{text}", flush=True)
    return {
        kind: {"wall_s": [r[0] for r in runs], "cpu_s": [r[1] for r in runs], "load": [r[2] for r in runs]}
        for kind, runs in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("estimate", "tables"), help="run only these commands")
    parser.add_argument("--repeats", type=int, default=2, help="cold runs per command (each with a new cache)")
    parser.add_argument("--warm", type=int, default=2, help="warm runs after each cold one")
    args = parser.parse_args()
    names = [n for n in COMMANDS if args.only is None or n.startswith(args.only)]
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    report = {name: measure(name, args.repeats, args.warm) for name in names}
    print(json.dumps(report))


if __name__ == "__main__":
    main()

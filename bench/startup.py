"""Wall and CPU time of the commands a user runs first: cold (nothing compiled), installed and warm.

    python bench/startup.py                  # estimate relu, estimate 'maxpool(k=3)', tables build
    python bench/startup.py --only estimate  # skip the table build (the slowest cold command)
    python bench/startup.py --repeats 2      # each measurement this many times (the best is printed too)
    python bench/startup.py --floor          # what a warm command cannot go below: the libraries' own start-up
    python bench/startup.py --served         # warm commands in their own process against served ones
    python bench/startup.py --targets        # the plain process's targets: medians of interleaved warm runs

--targets times each warm command of TARGETS (`estimate relu`, its certified method alone, `list`, `--help`) in
its own process, round after round with the commands interleaved (so that a machine's drift falls on all of them
alike), --repeats rounds (at least 7) after one untimed round that fills the caches, and prints each one's median
and best wall time against its target (issue 33's, on an idle machine), its median CPU time (user + sys, which
drifts less on a shared machine), and the load average.

Each command runs in a fresh process. "cold" points MOMENTCALC_KERNELS (where
the package caches its kernels, estimators/jit.py) and NUMBA_CACHE_DIR at new
empty folders, so everything compiles: a first run where the install compiled
nothing (another numba, an edited kernel). "installed" is a first run after
`pip install`: its kernels folder is a fresh copy of what the wheel's build
compiles (hatch_build.prebuild, run once first, on the checkout measured). The
next runs, "warm", load from the cold run's folder. tables build writes into
a temporary folder, never into tables/. CPU is user + sys of the child process: on a
shared machine it varies less than wall time. The load average is printed
with each measurement. The last line is JSON.

--floor times, in fresh processes, what every warm `estimate` pays before any of momentcalc's own work: the
interpreter, numpy, the CLI's modules, scipy.integrate (quadrature), numba, and numba's first call of a
function loaded from its cache (numba sets up its compiler's registries then, and checks for a BLAS by importing
scipy.linalg). Each line is the best of --repeats runs (at least 3) of one Python statement, leaving by os._exit
as the console script does.

--served times warm commands as the console script runs them, with MOMENTCALC_SERVER=0 (in their own process)
and =1 (forked by a warm server, momentcalc_launch.py), alternating, --repeats runs each (at least 5), after
`momentcalc server start` in a private runtime folder. It prints the mean, the best and their ratio.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# A cached numba function in a module of its own, for the floor's "first call of a cached function".
_CACHED = "import numba\n\n@numba.njit(cache=True)\ndef one(x):\n    return x + 1.0\n"
FLOOR = {
    "python": "pass",
    "numpy": "import numpy",
    "momentcalc CLI": "import momentcalc.cli",
    "scipy.integrate": "import scipy.integrate",
    "numba": "import numba",
    "numba, a cached call": "import cached; cached.one(1.0)",
    "all of these": "import momentcalc.cli, scipy.integrate, cached; cached.one(1.0)",
}


def floor(repeats: int) -> dict:
    """Best wall seconds of each FLOOR statement in a fresh process (numba's cache warmed first)."""
    folder = tempfile.mkdtemp(prefix="momentcalc-floor-")
    with open(os.path.join(folder, "cached.py"), "w") as f:
        f.write(_CACHED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")])))
    env["NUMBA_CACHE_DIR"] = os.path.join(folder, "cache")
    subprocess.run([sys.executable, "-c", FLOOR["numba, a cached call"]], env=env, check=True, cwd=folder)
    best = {}
    for name, statement in FLOOR.items():
        runs = []
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", f"{statement}; import os; os._exit(0)"], env=env, check=True, cwd=folder
            )
            runs.append(time.perf_counter() - start)
        best[name] = min(runs)
        print(f"{name:<24}{best[name]:.3f}s (best of {len(runs)}; load {os.getloadavg()[0]:.1f})", flush=True)
    return best


SERVED = {
    "estimate relu": ["estimate", "relu"],
    "estimate maxpool(k=3)": ["estimate", "maxpool(k=3)"],
    "list": ["list"],
}
# The console script's code, run with -c so that PYTHONPATH's checkout is the one measured.
LAUNCH = "import momentcalc_launch; momentcalc_launch.main()"


def served(repeats: int) -> dict:
    """Mean and best wall seconds of warm commands in their own process and served, alternating."""
    env = dict(os.environ, XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="mc-"), MOMENTCALC_SERVER="1")
    quiet = {"capture_output": True, "check": True, "cwd": tempfile.gettempdir()}
    subprocess.run([sys.executable, "-c", LAUNCH, "server", "start"], env=env, **quiet)
    modes = {"own process": dict(env, MOMENTCALC_SERVER="0"), "served": env}
    report = {}
    try:
        for name, args in SERVED.items():
            runs = {mode: [] for mode in modes}
            for _ in range(max(5, repeats)):
                for mode, mode_env in modes.items():
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-c", LAUNCH, *args], env=mode_env, **quiet)
                    runs[mode].append(time.perf_counter() - start)
            mean = {mode: sum(r) / len(r) for mode, r in runs.items()}
            text = "  ".join(f"{mode} {mean[mode]:.3f}s (best {min(r):.3f}s)" for mode, r in runs.items())
            ratio = mean["own process"] / mean["served"]
            print(f"{name:<24}{text}  served {ratio:.1f}x faster (load {os.getloadavg()[0]:.1f})", flush=True)
            report[name] = {mode: {"wall_s": r} for mode, r in runs.items()}
    finally:
        subprocess.run([sys.executable, "-c", LAUNCH, "server", "stop"], env=env, capture_output=True)
    return report


# command: (arguments, the most wall seconds its median may take on an idle machine)
TARGETS = {
    "estimate relu": (["estimate", "relu"], 0.6),
    "estimate relu --method certified": (["estimate", "relu", "--method", "certified"], 0.3),
    "list": (["list"], 0.15),
    "--help": (["--help"], 0.15),
}


def targets(repeats: int) -> dict:
    """Median and best wall seconds of each warm TARGETS command, interleaved round by round."""
    env = dict(os.environ)
    for args, _ in TARGETS.values():
        timed(args, env)  # fills numba's and the package's caches where this command compiles anything
    runs: dict[str, list[float]] = {name: [] for name in TARGETS}
    cpus: dict[str, list[float]] = {name: [] for name in TARGETS}
    loads = []
    for _ in range(max(7, repeats)):
        for name, (args, _) in TARGETS.items():
            wall, cpu = timed(args, env)
            runs[name].append(wall)
            cpus[name].append(cpu)
        loads.append(os.getloadavg()[0])
    report = {}
    for name, (_, target) in TARGETS.items():
        median = statistics.median(runs[name])
        verdict = "ok" if median <= target else "over"
        # CPU (user + sys) drifts less than wall time on a shared machine: compare two loaded runs by it.
        print(
            f"{name:<36}median {median:.3f}s  best {min(runs[name]):.3f}s  target {target:.2f}s  {verdict}  "
            f"(cpu median {statistics.median(cpus[name]):.3f}s)",
            flush=True,
        )
        report[name] = {"wall_s": runs[name], "cpu_s": cpus[name], "median_s": median, "target_s": target}
    print(f"load average during the rounds: {min(loads):.1f} to {max(loads):.1f} ({os.cpu_count()} CPUs)")
    return report


@functools.lru_cache(maxsize=1)
def installed_kernels() -> str:
    """A kernels folder as the wheel ships it: hatch_build.prebuild on the checkout that `python -m momentcalc`
    runs here (PYTHONPATH's, else this one)."""
    root = Path(importlib.util.find_spec("momentcalc").origin).parent.parent
    spec = importlib.util.spec_from_file_location("hatch_build", root / "hatch_build.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    folder = tempfile.mkdtemp(prefix="momentcalc-installed-")
    start = time.perf_counter()
    if not hook.prebuild(root, Path(folder)):
        raise SystemExit("hatch_build.prebuild failed")
    print(f"the install's kernels compiled in {time.perf_counter() - start:.1f}s (hatch_build.prebuild)", flush=True)
    return folder


def fresh_env(kernels: str | None = None) -> dict:
    """The environment of a first run: new empty numba caches, or a fresh copy of `kernels` as the package's."""
    folder = tempfile.mkdtemp(prefix="momentcalc-kernels-")
    if kernels is not None:
        shutil.copytree(kernels, folder, dirs_exist_ok=True)
    return dict(os.environ, MOMENTCALC_KERNELS=folder, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="momentcalc-numba-"))


def measure(name: str, repeats: int, warm_runs: int) -> dict:
    rows = {"cold": [], "installed": [], "warm": []}
    for _ in range(repeats):
        out = tempfile.mkdtemp(prefix="momentcalc-tables-")
        args = [a.replace("{tmp}", out) for a in COMMANDS[name]]
        rows["installed"].append((*timed(args, fresh_env(installed_kernels())), os.getloadavg()[0]))
        env = fresh_env()
        rows["cold"].append((*timed(args, env), os.getloadavg()[0]))
        for _ in range(warm_runs):
            rows["warm"].append((*timed(args, env), os.getloadavg()[0]))
    for kind, runs in rows.items():
        text = "  ".join(f"{w:.2f}s wall {c:.2f}s cpu (load {load:.1f})" for w, c, load in runs)
        print(f"{name:<24}{kind:<10}{text}", flush=True)
    return {
        kind: {"wall_s": [r[0] for r in runs], "cpu_s": [r[1] for r in runs], "load": [r[2] for r in runs]}
        for kind, runs in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("estimate", "tables"), help="run only these commands")
    parser.add_argument("--repeats", type=int, default=2, help="cold and installed runs per command (each fresh)")
    parser.add_argument("--warm", type=int, default=2, help="warm runs after each cold one")
    parser.add_argument("--floor", action="store_true", help="time the libraries' start-up only")
    parser.add_argument("--served", action="store_true", help="warm commands in their own process and served")
    parser.add_argument("--targets", action="store_true", help="medians of warm commands against their targets")
    args = parser.parse_args()
    # Warm means with bytecode, as every installation has it (pip compiles it; an editable one writes it on its
    # first run): where this is set, every run would compile momentcalc's sources again (30 % of `--help`'s CPU time).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.targets:
        print(json.dumps({"targets": targets(args.repeats)}))
        return
    if args.served:
        print(json.dumps({"served": served(args.repeats)}))
        return
    if args.floor:
        print(json.dumps({"floor_s": floor(args.repeats)}))
        return
    names = [n for n in COMMANDS if args.only is None or n.startswith(args.only)]
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    report = {name: measure(name, args.repeats, args.warm) for name in names}
    print(json.dumps(report))


if __name__ == "__main__":
    main()

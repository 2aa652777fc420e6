"""Where a cold run's compile time goes: every numba compilation of one `estimate`, with its own time.

    MOMENTCALC_KERNELS=$(mktemp -d) python bench/compile_profile.py relu
    MOMENTCALC_KERNELS=$(mktemp -d) python bench/compile_profile.py 'maxpool(k=3)' --method montecarlo
    MOMENTCALC_KERNELS=$(mktemp -d) python bench/compile_profile.py --tables   # the default table's entries

Run it with an empty MOMENTCALC_KERNELS (where the package caches its kernels,
estimators/jit.py) to see a first run that compiles everything. "self" is a
function's compile time less the compilations nested in it (a kernel compiles
its callees first). Cache loads are listed apart. Prints the slowest first.
The first line also gives the compiling's CPU seconds (this process's, while
compiling): on a shared machine they vary less than wall seconds. With
--setup-apart, numba's one-time set-up (its first compilation in a process
loads its registries and imports modules, scipy.linalg among them) is timed
first, on a trivial function, and left out of the table, so that the first
kernel's line is its own.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from numba.core import event


class Recorder(event.Listener):
    def __init__(self):
        self.stack, self.total, self.self_time, self.count = (
            [],
            defaultdict(float),
            defaultdict(float),
            defaultdict(int),
        )
        self.cpu, self._cpu_start = 0.0, 0.0

    def on_start(self, ev):
        if not self.stack:
            self._cpu_start = time.process_time()
        self.stack.append(
            [
                ev.data["dispatcher"].py_func.__qualname__,
                ev.data["dispatcher"].py_func.__module__,
                time.perf_counter(),
                0.0,
            ]
        )

    def on_end(self, ev):
        name, module, start, nested = self.stack.pop()
        spent = time.perf_counter() - start
        key = f"{module}.{name}"
        self.total[key] += spent
        self.self_time[key] += spent - nested
        self.count[key] += 1
        if self.stack:
            self.stack[-1][3] += spent
        else:
            self.cpu += time.process_time() - self._cpu_start


def _time_setup() -> None:
    import numba

    wall, cpu = time.perf_counter(), time.process_time()
    numba.njit(lambda x: x + 1)(1)
    print(
        f"numba's set-up (first compilation, of a trivial function): {time.perf_counter() - wall:.2f} s "
        f"({time.process_time() - cpu:.2f} s cpu)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="relu")
    parser.add_argument("--tables", action="store_true", help="every entry of the default table instead of SPEC")
    parser.add_argument("--method", default="auto")
    parser.add_argument("--setup-apart", action="store_true", help="time numba's one-time set-up apart (see above)")
    args = parser.parse_args()
    start = time.perf_counter()
    import momentcalc as mc
    from momentcalc import tables

    mc.estimate  # noqa: B018 (loads the engine: imports are timed apart)
    imported = time.perf_counter()
    if args.setup_apart:
        _time_setup()
    recorder = Recorder()
    event.register("numba:compile", recorder)
    for spec in tables.DEFAULT_SPECS if args.tables else [args.spec]:
        mc.estimate(spec, method=args.method)
    done = time.perf_counter()
    compiled = sum(recorder.self_time.values())
    print(
        f"import {imported - start:.2f} s; estimate {done - imported:.2f} s, of which compiling {compiled:.2f} s "
        f"({recorder.cpu:.2f} s cpu; {sum(recorder.count.values())} compilations of {len(recorder.count)} functions)"
    )
    for key in sorted(recorder.self_time, key=recorder.self_time.get, reverse=True)[:40]:
        print(
            f"{recorder.self_time[key]:7.2f} s self {recorder.total[key]:7.2f} s total  x{recorder.count[key]}  {key}"
        )


if __name__ == "__main__":
    main()

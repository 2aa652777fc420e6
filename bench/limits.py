"""Issue 13's costly arguments: time and peak memory of each, and how fast Ctrl-C ends a long run.

    python bench/limits.py            # every case (a few minutes: some still run, with a bar, by design)
    python bench/limits.py --quick    # the refusals and the Ctrl-C latency only

Each case runs as its own `python -m momentcalc` child under a 4 GiB address-space limit and a timeout,
so that a regression cannot take the machine's memory; its peak resident memory is the child's
ru_maxrss (resource.getrusage(RUSAGE_CHILDREN) read around a fresh child that runs it). Before this
work: shape i=1e8 took 94 s and 21 GB, backward --size 1000000 died at 7.28 TiB, estimate --size 1e9
was killed at 24 GB, maxpool(n=1e6) ran for more than an hour, a 3,000-stage pipeline and qmc with
an unreachable tol ran for hours, Ctrl-C took 2 s (32 s reported) and printed nothing. The last line
printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import subprocess
import sys
import time

MEMORY_LIMIT = 4 << 30
TIMEOUT_S = 600

REFUSED = [
    ["shape", "--i", "99999999999999999999", "--k", "3"],
    ["shape", "--i", "100000000", "--k", "3", "--s", "2"],
    ["estimate", "maxpool(k=3)", "--size", "1000000000", "--samples", "10"],
    ["backward", "maxpool(k=3,s=2)", "--size", "1000000"],
    ["backward", "conv(k=3,s=2,p=1)", "--size", "7", "--trials", "1000000000000"],
    ["estimate", " | ".join(["relu"] * 3000)],
    ["estimate", "relu", "--method", "qmc", "--tol", "1e-300"],
    ["estimate", "maxpool(k=3)", "--method", "qmc", "--tol", "1e-9"],
    ["estimate", "maxpool(k=10000)"],
    ["estimate", "avgpool(k=10000)"],
    # issue 28: a file without end, and a depth whose plan alone took 13.5 s and 1.4 GB (10**9: a MemoryError)
    ["tables", "show", "--file", "/dev/zero"],
    ["propagate", "--depth", "100000000"],
    ["propagate", "--depth", "1000000000"],
]
RUN = [
    ["estimate", "maxpool(n=1000000)"],
    ["estimate", "maxpool(n=1000000)", "--method", "quadrature"],
    ["estimate", "maxpool(k=2,s=1)", "--size", "512", "--json"],
    ["backward", "maxpool(k=3,s=2)", "--size", "1024", "--trials", "0"],
]
LONG_RUN = ["estimate", "relu", "--method", "montecarlo", "--samples", "60000000000"]


def _limits() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job's children inherit SIGINT ignored
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_case(args: list[str]) -> dict:
    """Exit code, seconds, peak RSS (MiB) and the last line of stderr of one `momentcalc ARGS` child."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        done = subprocess.run(
            [sys.executable, "-m", "momentcalc", *args], capture_output=True, text=True, timeout=TIMEOUT_S,
            preexec_fn=_limits,
        )  # fmt: skip
        code, err = done.returncode, done.stderr.strip().splitlines()
    except subprocess.TimeoutExpired:
        code, err = "timeout", []
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB; the max over children so far
    return {
        "args": " ".join(args)[:80],
        "exit": code,
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": round(peak / 1024, 1) if peak > before else f"<= {before / 1024:.1f}",
        "stderr": err[-1][:160] if err else "",
    }


def ctrl_c_latency(wait_s: float = 8.0) -> dict:
    """Seconds from SIGINT to exit for a run that would last minutes, its exit code and message."""
    child = subprocess.Popen(
        [sys.executable, "-m", "momentcalc", *LONG_RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limits,
    )  # fmt: skip
    time.sleep(wait_s)
    sent = time.perf_counter()
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    return {"latency_s": round(time.perf_counter() - sent, 3), "exit": child.returncode, "stderr": err.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="refusals and Ctrl-C only")
    quick = parser.parse_args().quick
    # ru_maxrss of children is a running maximum: run the cheap cases first, so each peak is its own.
    cases = [run_case(args) for args in REFUSED + ([] if quick else RUN)]
    for case in cases:
        print(f"{case['exit']!s:>7} {case['seconds']:>8.2f} s {case['peak_rss_mib']!s:>10} MiB  {case['args']}")
        if case["stderr"]:
            print(f"{'':>30}{case['stderr']}")
    interrupt = ctrl_c_latency()
    print(f"Ctrl-C: exit {interrupt['exit']} after {interrupt['latency_s']} s: {interrupt['stderr']}")
    print(json.dumps({"cases": cases, "ctrl_c": interrupt}))


if __name__ == "__main__":
    main()

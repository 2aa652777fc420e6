"""Build hook: compile the default table's kernels while pip builds momentcalc, so the wheel ships them.

Why: numba compiles a kernel on its first call, and a first `momentcalc estimate relu` spent 3.5 of its 6 s
compiling (a first `tables build` about 17 of 23 s). Here pip pays that once, at install, in the build's
environment (KernelsHook.dependencies asks pip to put the runtime dependencies there). The kernels go to
momentcalc/_kernels (momentcalc/estimators/jit.py says why entries compiled here serve the installed copy).

What is compiled: what `momentcalc tables build` uses, all of the default table's entries, which covers
`estimate` of any one of them (relu, maxpool(k=3), the README's pipelines). Anything else compiles on first use,
as before.

Opt-in: MOMENTCALC_PREBUILD=1 before `pip install`. Measured on 2 cores, the prebuild made `pip install .` about
100 s longer (130 s against 34 s) to save 3-4 s on a first `estimate` and about 17 s on a first `tables build`: the
README's main command (install, build, show) took longer with it than without, and a one-off environment (a CI job
that checks a table) only pays. It pays off for an install that runs many first commands (a shared cluster
install, a container image); those ask for it.

A build where this fails (no compiler support for the CPU, a crash) still succeeds: it ships no kernels, says so
in pip's verbose output, and numba compiles on first use as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported without hatchling: the tests call prebuild() alone
    BuildHookInterface = object

PREBUILD_VARIABLE = "MOMENTCALC_PREBUILD"
MARKER = "prebuilt.json"
TIMEOUT_S = 900.0  # a build that hangs must not hang pip: 26 s on 2 cores here
# Every kernel the default table's entries need; "{scratch}" is a scratch folder, so the committed tables stay as
# they are.
WORKLOAD = ("tables", "build", "--dir", "{scratch}")


def prebuild(root: Path, kernels: Path, command: tuple[str, ...] = WORKLOAD, timeout: float = TIMEOUT_S) -> bool:
    """Run `python -m momentcalc <command>` on the sources under `root`, with their kernels cached in `kernels`.
    True if it ran to the end; False (and a line on stderr) if it failed or ran past `timeout` seconds."""
    start = time.perf_counter()
    (kernels / MARKER).unlink(missing_ok=True)  # an editable tree's record of an earlier install says nothing now
    # NUMBA_* stay: they choose what numba compiles for (NUMBA_CPU_NAME=generic for kernels that any x86-64 runs).
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOMENTCALC_")}
    # pip's isolated build environment reaches its packages through PYTHONPATH: keep it, after the sources.
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env.update(PYTHONPATH=path, MOMENTCALC_KERNELS=str(kernels), MOMENTCALC_SERVER="0")
    with tempfile.TemporaryDirectory(prefix="momentcalc-prebuild-") as scratch:
        argv = [sys.executable, "-m", "momentcalc", *(part.format(scratch=scratch) for part in command)]
        failed = _run(argv, scratch, env, timeout)
    if failed:
        print(f"momentcalc: kernels not compiled at install ({failed}); they compile on first use", file=sys.stderr)
        return False
    # A record that the folder holds what `command` compiles (CI checks that its install made one).
    record = {"command": list(command), "seconds": round(time.perf_counter() - start, 1)}
    (kernels / MARKER).write_text(json.dumps(record) + "\n")
    return True


def _run(argv: list[str], cwd: str, env: dict, timeout: float) -> str | None:
    """Run `argv`; None if it succeeded, else why not (its last line). In a session of its own, so that a timeout
    or Ctrl-C stops its worker processes too (tables build runs one per CPU), not the first process alone."""
    pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    child = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True, **pipes)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(child)
        return f"still running after {timeout:.0f} s"
    except BaseException:  # Ctrl-C in pip: the session does not get it, so stop it here
        _stop(child)
        raise
    return None if child.returncode == 0 else ((err or out).strip().splitlines() or ["no output"])[-1]


def _stop(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.communicate()


def skipped() -> bool:
    """True unless MOMENTCALC_PREBUILD=1 asks for the prebuild (opt-in: see the module's docstring)."""
    return os.environ.get(PREBUILD_VARIABLE, "0").strip() != "1"


def fill(root: Path, version: str, build_data: dict, compile_into=prebuild) -> str | None:
    """Fill momentcalc/_kernels for a build of `version`: in the source tree for an editable install (where the
    package is imported from), else in a scratch folder that goes into the wheel (returned, for finalize to
    remove)."""
    if skipped():
        return None
    if version == "editable":
        compile_into(root, root / "momentcalc" / "_kernels")
        return None
    scratch = tempfile.mkdtemp(prefix="momentcalc-kernels-")
    if compile_into(root, Path(scratch)):
        build_data["force_include"][scratch] = "momentcalc/_kernels"
    return scratch


class KernelsHook(BuildHookInterface):
    """hatchling's custom build hook (pyproject.toml): fill() before the wheel is built, its scratch removed after."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # The table build runs momentcalc: pip puts its runtime dependencies into the build's environment (about
        # 35 s of the install here), unless the build compiles nothing.
        return [] if skipped() else list(self.metadata.core.dependencies)

    def initialize(self, version: str, build_data: dict) -> None:
        self._scratch = fill(Path(self.root), version, build_data)

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_scratch", None):
            shutil.rmtree(self._scratch, ignore_errors=True)

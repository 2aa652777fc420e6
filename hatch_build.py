"""Build hook: compile the default table's kernels while pip builds momentcalc, so the wheel ships them.

Why: numba compiles a kernel on its first call, and a first `momentcalc estimate relu` spent 3.5 of its 6 s
compiling (a first `tables build` about 17 of 23 s). Here pip pays that once, at install, in the build's
environment (pyproject.toml asks hatchling to put the runtime dependencies there). The kernels go to
momentcalc/_kernels (momentcalc/estimators/jit.py says why entries compiled here serve the installed copy).

What is compiled: what `momentcalc tables build` uses, all of the default table's entries, which covers
`estimate` of any one of them (relu, maxpool(k=3), the README's pipelines). Anything else compiles on first use,
as before.

A build where this fails (no compiler support for the CPU, a crash) still succeeds: it ships no kernels, says so
in pip's verbose output, and numba compiles on first use as before. MOMENTCALC_PREBUILD=0 skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported without hatchling: the tests call prebuild() alone
    BuildHookInterface = object

SKIP_VARIABLE = "MOMENTCALC_PREBUILD"
MARKER = "prebuilt.json"
# Every kernel the default table's entries need; "{scratch}" is a scratch folder, so the committed tables stay as
# they are.
WORKLOAD = ("tables", "build", "--dir", "{scratch}")


def prebuild(root: Path, kernels: Path, command: tuple[str, ...] = WORKLOAD) -> bool:
    """Run `python -m momentcalc <command>` on the sources under `root`, with their kernels cached in `kernels`.
    True if it ran to the end; False (and a line on stderr) if it failed."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="momentcalc-prebuild-") as scratch:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MOMENTCALC_", "NUMBA_"))}
        # pip's isolated build environment reaches its packages through PYTHONPATH: keep it, after the sources.
        path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        env.update(PYTHONPATH=path, MOMENTCALC_KERNELS=str(kernels), MOMENTCALC_SERVER="0")
        argv = [sys.executable, "-m", "momentcalc", *(part.format(scratch=scratch) for part in command)]
        done = subprocess.run(argv, cwd=scratch, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"momentcalc: kernels not compiled at install ({tail[0]}); they compile on first use", file=sys.stderr)
        return False
    # A record that the folder holds what `command` compiles (CI checks that its install made one).
    record = {"command": list(command), "seconds": round(time.perf_counter() - start, 1)}
    (kernels / MARKER).write_text(json.dumps(record) + "\n")
    return True


def fill(root: Path, version: str, build_data: dict, compile_into=prebuild) -> str | None:
    """Fill momentcalc/_kernels for a build of `version`: in the source tree for an editable install (where the
    package is imported from), else in a scratch folder that goes into the wheel (returned, for finalize to
    remove)."""
    if os.environ.get(SKIP_VARIABLE, "1").strip() == "0":
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

    def initialize(self, version: str, build_data: dict) -> None:
        self._scratch = fill(Path(self.root), version, build_data)

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_scratch", None):
            shutil.rmtree(self._scratch, ignore_errors=True)

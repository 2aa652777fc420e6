"""A real `pip install` of this checkout into a fresh environment, with the kernel prebuild asked for
(MOMENTCALC_PREBUILD=1): the installed copy must load the kernels the build compiled, without compiling.

Why in tests_long/ (run by .ci/run after the README's test command, not by it): the install builds the wheel in
pip's isolated environment and runs the default table's build there, about 2 minutes on 2 cores. It is the test
that sees what pip really does (new file times, another path, the wheel's RECORD), which copying the package
folder (tests/test_install_kernels.py) cannot.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prints where momentcalc came from and the seconds numba spent compiling for one Monte Carlo estimate of an entry
# of the default table (cache loads are not compiling: jit.CompileClock).
_RUN = """
import momentcalc
from momentcalc import engine
from momentcalc.estimators import jit
with jit.compile_clock() as clock:
    engine.estimate("relu", method="montecarlo", samples=100_000)
print(momentcalc.__file__)
print(clock.seconds)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOMENTCALC_", "NUMBA_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "MOMENTCALC_SERVER": "0", **extra}


def test_a_pip_install_with_the_prebuild_loads_its_kernels_without_compiling(tmp_path):
    target = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", str(ROOT)]
    done = subprocess.run(install, env=_env(MOMENTCALC_PREBUILD="1"), capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    # Run from a folder that is not the checkout, so that the installed copy is imported.
    done = subprocess.run([str(python), "-c", _RUN], env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    where, seconds = done.stdout.split()
    assert Path(where).is_relative_to(target), where
    assert float(seconds) < 0.5, f"the installed copy compiled for {seconds} s: its shipped kernels did not load"

"""A plain process loads only what its command needs: `list` and --help no numpy, scipy or numba; a certified
estimate no numpy, scipy or numba; `estimate relu` (auto: certified and the closed form) neither scipy nor numba;
quadrature no scipy.optimize; no command pydantic (typer 0.29 imports it for every command it parses; pyproject.toml
keeps typer below it). The commands run one after another in one fresh interpreter (this one has loaded everything
long ago), each checked for what it added; a regression here is what bench/startup.py would show as a slower
command."""

import json
import subprocess
import sys

import pytest
from fresh import REPO

# Runs each command as the console script does (without leaving by os._exit) and names, after each, the heavy
# packages executed so far: a package counts once one of its submodules is loaded, since a lazy module waiting in
# sys.modules (momentcalc._lazy) has executed nothing and imported no submodule.
RUN = """
import contextlib, io, json, sys
from momentcalc.cli import app

HEAVY = {"numpy", "scipy", "numba", "llvmlite", "flint", "pydantic"}
# Modules that the packages' own __init__ imports: scipy.integrate._quadpack alone is quadrature's (quadpack.py).
MARKERS = {"scipy.optimize": "scipy.optimize._optimize", "scipy.integrate": "scipy.integrate._quadpack_py"}
found = []
for args in json.loads(sys.argv[1]):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            app(args, prog_name="momentcalc", standalone_mode=False)
        except SystemExit:
            pass
    loaded = {m.partition(".")[0] for m in sys.modules if "." in m} & HEAVY
    loaded |= {name for name, marker in MARKERS.items() if marker in sys.modules}
    found.append({"loaded": sorted(loaded), "printed": printed.getvalue()})
print(json.dumps(found))
"""
COMMANDS = [
    ["--help"],
    ["list"],
    ["estimate", "--help"],
    ["estimate", "relu", "--method", "certified"],
    ["estimate", "relu"],
    ["estimate", "maxpool(k=3)", "--method", "quadrature"],
]


@pytest.fixture(scope="module")
def runs() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(COMMANDS)], capture_output=True, text=True, cwd=REPO, timeout=240
    )
    assert done.returncode == 0, done.stderr
    return {" ".join(args): found for args, found in zip(COMMANDS, json.loads(done.stdout))}


@pytest.mark.parametrize("command", ["--help", "list", "estimate --help"])
def test_help_and_list_load_no_numerics(runs, command):
    assert runs[command]["loaded"] == [] and "momentcalc" in runs[command]["printed"]


def test_a_certified_estimate_loads_no_numpy_scipy_or_numba(runs):
    found = runs["estimate relu --method certified"]
    assert found["loaded"] == ["flint"] and "certified*" in found["printed"]


def test_estimate_auto_of_relu_loads_neither_scipy_nor_numba_and_says_what_it_left_out(runs):
    found = runs["estimate relu"]
    assert not {"scipy", "numba"} & set(found["loaded"])
    assert "not run by auto: quadrature, montecarlo (--method all runs every method)" in found["printed"]
    assert "agree" in found["printed"]


def test_quadrature_loads_neither_scipy_optimize_nor_scipy_integrate(runs):
    found = runs["estimate maxpool(k=3) --method quadrature"]
    assert {"numpy", "scipy"} <= set(found["loaded"]) and "quadrature*" in found["printed"]
    assert not {"scipy.optimize", "scipy.integrate", "numba"} & set(found["loaded"])

"""Kernels compiled at install (hatch_build.py) and where the package caches its kernels (estimators/jit.py).

A first run after `pip install` loads what the wheel's build compiled: these tests check that kernels compiled in
one copy of the package load, without compiling, in another copy at another path (what pip's build and the
installed package are), and how the build hook places them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from momentcalc.estimators import dispatch, jit, mc_kernels

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
hatch_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hatch_build)

# What the copy in the second process runs: the one-line check prints where the package came from and how many
# seconds numba spent compiling (cache loads are not compiling: jit.CompileClock).
_RUN = """
import momentcalc
from momentcalc import engine
from momentcalc.estimators import jit
with jit.compile_clock() as clock:
    engine.estimate("relu", method="montecarlo", samples=100_000)
print(momentcalc.__file__, clock.seconds)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOMENTCALC_", "NUMBA_", "PYTHONPATH"))}
    return {**env, "MOMENTCALC_SERVER": "0", **extra}


def _copy_package(to: Path) -> Path:
    shutil.copytree(ROOT / "momentcalc", to / "momentcalc", ignore=shutil.ignore_patterns("__pycache__", "_kernels"))
    return to


# Run by tests_long/test_long_install_kernels.py: it compiles relu's Monte Carlo kernels into an empty folder in a
# process of its own (about 5 s of CPU), which tests_long/test_pip_install.py does through a real pip install too.
def kernels_compiled_in_one_copy_load_in_another_without_compiling(tmp_path):
    built = _copy_package(tmp_path / "build")
    command = ("estimate", "relu", "--method", "montecarlo")
    assert hatch_build.prebuild(built, built / "momentcalc" / "_kernels", command)
    # relu's Monte Carlo kernels: the activation kernel all share and relu's block loop (dispatch.block_N).
    for kernels in ("chain_kernels.*.nbi", "dispatch.*.nbi"):
        assert list((built / "momentcalc" / "_kernels" / "estimators").glob(kernels)), kernels
    record = json.loads((built / "momentcalc" / "_kernels" / hatch_build.MARKER).read_text())
    assert record["command"] == list(command) and record["seconds"] > 0
    installed = tmp_path / "site-packages"
    shutil.copytree(built, installed)  # what pip does with the wheel: the same files, at another path
    out = subprocess.run(
        [sys.executable, "-c", _RUN],
        cwd=tmp_path,
        env=_clean_env(PYTHONPATH=str(installed)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(out[0]).is_relative_to(installed)
    assert float(out[1]) == 0.0, "the copy compiled kernels the build had compiled"


def test_a_prebuild_that_fails_says_so_in_one_line_and_returns_false(tmp_path, capfd):
    assert not hatch_build.prebuild(ROOT, tmp_path / "kernels", ("estimate", "no_such_op"))
    assert not (tmp_path / "kernels" / hatch_build.MARKER).exists()
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("momentcalc: kernels not compiled at install (error: unknown op 'no_such_op'")
    assert err[0].endswith("they compile on first use")


def test_a_prebuild_that_runs_too_long_is_stopped_and_says_so(tmp_path, capfd):
    assert not hatch_build.prebuild(ROOT, tmp_path / "kernels", ("estimate", "relu"), timeout=0.01)
    assert capfd.readouterr().err.strip() == (
        "momentcalc: kernels not compiled at install (still running after 0 s); they compile on first use"
    )
    assert not (tmp_path / "kernels" / hatch_build.MARKER).exists()


def test_the_build_hook_fills_the_source_tree_for_an_editable_install_and_the_wheel_otherwise(tmp_path, monkeypatch):
    monkeypatch.setenv(hatch_build.PREBUILD_VARIABLE, "1")
    calls = []
    record = lambda root, kernels: calls.append((root, kernels)) or True
    data = {"force_include": {}}
    assert hatch_build.fill(tmp_path, "editable", data, record) is None
    assert calls == [(tmp_path, tmp_path / "momentcalc" / "_kernels")] and data == {"force_include": {}}
    scratch = hatch_build.fill(tmp_path, "standard", data, record)
    assert calls[1] == (tmp_path, Path(scratch))
    assert data == {"force_include": {scratch: "momentcalc/_kernels"}}
    os.rmdir(scratch)


def test_the_wheel_gets_no_kernels_folder_when_compiling_failed_or_was_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(hatch_build.PREBUILD_VARIABLE, "1")
    data = {"force_include": {}}
    scratch = hatch_build.fill(tmp_path, "standard", data, lambda root, kernels: False)
    assert data == {"force_include": {}}
    os.rmdir(scratch)
    monkeypatch.setenv(hatch_build.PREBUILD_VARIABLE, "0")
    called = []
    assert hatch_build.fill(tmp_path, "standard", data, lambda *a: called.append(a)) is None
    assert hatch_build.fill(tmp_path, "editable", data, lambda *a: called.append(a)) is None
    assert called == [] and data == {"force_include": {}}


def test_the_build_asks_for_the_runtime_dependencies_only_where_it_compiles(monkeypatch):
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    metadata = SimpleNamespace(core=SimpleNamespace(dependencies=runtime))
    monkeypatch.setattr(hatch_build.KernelsHook, "metadata", metadata, raising=False)
    hook = object.__new__(hatch_build.KernelsHook)
    monkeypatch.setenv(hatch_build.PREBUILD_VARIABLE, "1")
    assert hook.dependencies() == runtime
    monkeypatch.setenv(hatch_build.PREBUILD_VARIABLE, "0")
    assert hook.dependencies() == []
    monkeypatch.delenv(hatch_build.PREBUILD_VARIABLE)  # opt-in: a plain `pip install` compiles nothing
    assert hook.dependencies() == []


@pytest.mark.parametrize("kernel", [mc_kernels.weighted_moments, dispatch.BLOCKS[dispatch.CODES["relu"]]])
def test_the_package_caches_its_kernels_in_its_kernels_folder_by_package_folder(kernel):
    locator = kernel._cache._impl.locator
    assert Path(locator.get_cache_path()) == jit.kernels_folder() / "estimators"
    assert locator.get_source_stamp()[1] == jit.sources_stamp()


def test_momentcalc_kernels_moves_the_folder(tmp_path):
    code = "from momentcalc.estimators import mc_kernels as m; print(m.weighted_moments._cache.cache_path)"
    env = _clean_env(PYTHONPATH=str(ROOT), MOMENTCALC_KERNELS=str(tmp_path / "k"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == tmp_path / "k" / "estimators"


@pytest.fixture
def unwritable(monkeypatch, tmp_path):
    """Folders under tmp_path/ro count as unwritable (the tests run as root here, whom permissions do not stop),
    and the user's cache is tmp_path/cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = jit._writable
    monkeypatch.setattr(jit, "_writable", lambda folder: not folder.is_relative_to(tmp_path / "ro") and real(folder))
    jit.cache_root.cache_clear()
    yield tmp_path / "ro"
    jit.cache_root.cache_clear()


def test_an_install_its_user_cannot_write_to_serves_its_kernels_from_a_copy_in_the_users_cache(unwritable):
    shipped = unwritable / "momentcalc" / "_kernels"
    (shipped / "estimators").mkdir(parents=True)
    (shipped / "estimators" / "k.nbi").write_text("shipped")
    root = jit.cache_root(shipped, True)
    assert root.parent == unwritable.parent / "cache" / "momentcalc"
    assert (root / "estimators" / "k.nbi").read_text() == "shipped"
    (root / "estimators" / "k.nbi").write_text("compiled since")  # numba saved a new entry in the copy
    jit.cache_root.cache_clear()  # another process
    assert jit.cache_root(shipped, True) == root
    assert (root / "estimators" / "k.nbi").read_text() == "compiled since"
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no scratch copies left


def test_an_unwritable_momentcalc_kernels_folder_leaves_the_kernels_to_numbas_places(unwritable):
    assert jit.cache_root(unwritable / "mine", False) is None
    assert not (unwritable.parent / "cache").exists()


def test_a_writable_folder_is_used_as_it_is(tmp_path):
    assert jit.cache_root(tmp_path / "k", True) == tmp_path / "k"
    assert jit.cache_root(tmp_path / "m", False) == tmp_path / "m"

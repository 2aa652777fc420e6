"""Kernel caches heal: a cached kernel that fails its checksum, or fails to load in any other way, is removed with
one line on stderr and compiled again; no corruption reaches numba and LLVM (where it crashed the process:
SIGILL, SIGSEGV, "LLVM ERROR"); with no folder to cache in, kernels compile in memory, with one line.

Each hostile case runs in a process of its own, so that a crash fails the test instead of the test run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from momentcalc.estimators import dispatch, jit, kernel_cache

TIMEOUT_S = 300
# How relu's block loop (the kernel `estimate relu` samples with) names its cache files: dispatch.block_<code>-<line>.
RELU_BLOCK = f"dispatch.block_{dispatch.CODES['relu']}-"

KERNEL = """
from pathlib import Path

from momentcalc.estimators import jit

jit.MIRRORS.add(Path(__file__).resolve())  # as kernel_stamps.stamp_kernels_of (this runs apart from tests/)


@jit.jit()
def triple(x):
    return 3.0 * x
"""

# Runs in a child process: for each corruption, damage one file of the kernel's cache, then load the kernel in a
# fresh module twice: the first load must heal (one line, compiled again), the second must hit the healed cache.
DRIVER = """
import importlib.util, json, logging, os, pickle, random, sys

from momentcalc.estimators import kernel_cache

kernel_file, cache, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
lines = []


class Catch(logging.Handler):
    def emit(self, record):
        lines.append(record.getMessage())


logging.getLogger("momentcalc.kernels").addHandler(Catch())


def fresh():
    spec = importlib.util.spec_from_file_location("kern", kernel_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.triple


def load():
    del lines[:]
    kernel = fresh()
    value = kernel(2.0)
    stats = kernel.stats
    return {"value": value, "lines": list(lines), "hits": sum(stats.cache_hits.values()),
            "misses": sum(stats.cache_misses.values())}


def files(suffix):
    return sorted(os.path.join(root, f) for root, _, names in os.walk(cache) for f in names if f.endswith(suffix))


def damage(path, how):
    data = bytearray(open(path, "rb").read())
    rng = random.Random(len(data))
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = b""
    elif how.startswith("flip@"):
        at = {"magic": 0, "digest": len(kernel_cache.MAGIC) + 5, "middle": len(data) // 2, "last": len(data) - 1}
        data[at[how[5:]]] ^= 0x5A
    elif how == "garbage":
        data = bytes(rng.getrandbits(8) for _ in data)
    elif how == "garbage-with-magic":
        data = kernel_cache.MAGIC + bytes(rng.getrandbits(8) for _ in data)
    elif how == "sealed-nonsense":  # passes the checksum; numba cannot use it
        data = kernel_cache.seal(pickle.dumps(("not", "a", "compiled", "kernel")))
    open(path, "wb").write(bytes(data))


first = load()  # compiles and saves (or loads a healthy entry)
results = {"first": first}
for suffix, how in cases:
    (target,) = files(suffix)
    damage(target, how)
    results[f"{suffix} {how}"] = [load(), load()]
print(json.dumps(results))
"""

CORRUPTIONS = [
    "truncated",
    "empty",
    "flip@magic",
    "flip@digest",
    "flip@middle",
    "flip@last",
    "garbage",
    "garbage-with-magic",
    "sealed-nonsense",
]


def _child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("suffix", [".nbc", ".nbi"])
def test_every_corruption_is_removed_and_compiled_again_with_one_line(tmp_path, suffix):
    (tmp_path / "kern.py").write_text(KERNEL)
    (tmp_path / "driver.py").write_text(DRIVER)
    cache = tmp_path / "cache"
    cases = [[suffix, how] for how in CORRUPTIONS]
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "kern.py"), str(cache), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_child_env(NUMBA_CACHE_DIR=str(cache)),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results.pop("first")["value"] == 6.0
    for case, (healed, again) in results.items():
        assert healed["value"] == again["value"] == 6.0, case
        assert len(healed["lines"]) == 1, (case, healed["lines"])
        assert "triple" in healed["lines"][0] and "removed it, compiling again" in healed["lines"][0], case
        assert (healed["hits"], healed["misses"]) == (0, 1), case  # compiled, not loaded
        assert (again["lines"], again["hits"], again["misses"]) == ([], 1, 0), case  # the healed entry serves


def test_seal_and_unseal_round_trip_and_refuse_any_changed_byte():
    payload = bytes(range(256)) * 3
    sealed = kernel_cache.seal(payload)
    assert kernel_cache.unseal(sealed, "x.nbc") == payload
    for at in range(0, len(sealed), 17):
        changed = bytearray(sealed)
        changed[at] ^= 1
        with pytest.raises(kernel_cache.BrokenEntry):
            kernel_cache.unseal(bytes(changed), "x.nbc")
    for cut in (0, 1, len(kernel_cache.MAGIC), len(sealed) - 1):
        with pytest.raises(kernel_cache.BrokenEntry):
            kernel_cache.unseal(sealed[:cut], "x.nbc")


def _script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


def test_a_corrupted_package_kernel_heals_in_the_cli(tmp_path):
    # The kernels `estimate relu` samples with, in a copy of this installation's kernels folder (compiled into it
    # by the first run where it has none), then one of them damaged as a disk or a killed copy would.
    folder = tmp_path / "kernels"
    if jit.kernels_folder().is_dir():
        shutil.copytree(jit.kernels_folder(), folder)
    env = _child_env(MOMENTCALC_KERNELS=str(folder))
    command = [_script(), "estimate", "relu", "--method", "montecarlo", "--json"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    entries = sorted(folder.glob(f"estimators/{RELU_BLOCK}*.nbc"))  # the copied folder may hold older ones
    assert entries
    for data in entries:  # every one, so that the one this run loads is damaged too
        damaged = bytearray(data.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        data.write_bytes(bytes(damaged))
    healed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert healed.returncode == 0, healed.stderr[-2000:]
    lines = healed.stderr.strip().splitlines()
    assert len(lines) == 1 and RELU_BLOCK in lines[0] and "checksum" in lines[0], lines
    # The same bits: the seeded Monte Carlo of a kernel compiled again is that of the one loaded before.
    assert [json.loads(r.stdout)[key] for r in (first, healed) for key in ("mean", "std")] == [
        json.loads(first.stdout)[key] for _ in range(2) for key in ("mean", "std")
    ]
    again = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert (again.returncode, again.stderr) == (0, "")


def _read_only(folder: Path) -> None:
    """Make folder unwritable, for root too where it can (the immutable attribute); skip where nothing serves."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root, and the folder cannot be made immutable (chattr +i)")


def _writable_again(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    else:
        folder.chmod(0o755)


def test_no_folder_to_cache_in_compiles_in_memory_with_one_line(tmp_path):
    # What HOME=/nonexistent on a read-only install did: "cannot cache function ...: no locator available", a
    # 120-160 line traceback, exit 1. Here every place numba could cache the kernel in is unwritable: its own
    # folder (read-only), NUMBA_CACHE_DIR (unset) and the user's cache (HOME is a file).
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "kern.py").write_text(KERNEL)
    program = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("kern", {str(folder / "kern.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(module.triple(2.0), module.triple(5.0))
    """)
    _read_only(folder)
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=_child_env(HOME="/dev/null", XDG_CACHE_HOME="/dev/null/cache"),
        )
    finally:
        _writable_again(folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["6.0", "15.0"]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "compiling them in memory" in lines[0], lines
    assert sorted(p.name for p in folder.iterdir()) == ["kern.py"]

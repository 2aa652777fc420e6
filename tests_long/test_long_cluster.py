"""Dask runs that start processes of their own: a worker killed mid-run, a `local:N` cluster started and stopped
by the run, and a fresh interpreter that must never import dask.

Why in tests_long/: each starts and tears down processes (Dask workers that import the package and load or compile
its kernels; a fresh interpreter that compiles relu's kernel where the cache is cold), about 25 s of CPU together.
tests/test_cluster.py keeps the same bits on its module's cluster.
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import test_cluster  # skips this module where dask.distributed is missing (never in CI: conftest.OPTIONAL_IN_CI)
from test_cluster import ROOT, SAMPLES, _run

from momentcalc.estimators import cluster, driver, montecarlo
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

client = test_cluster.client  # a cluster of 2 worker processes for this module, as for test_cluster.py's


def _dies_once(streams, index, marker):
    def seeded(first, count):
        if first <= index < first + count and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the worker process dies mid-run, its task unfinished; Dask runs the task again
        return streams(first, count)

    return seeded


def test_a_worker_killed_mid_run_changes_no_bit(client, tmp_path):
    program = montecarlo.compile_program(parse("maxpool(k=3)"), 0.0, 1.0)
    chunks = montecarlo.program_chunks(program, 3)
    settings = RunSettings(method="montecarlo", samples=40 * chunks.size, seed=3)
    local = driver.drive(chunks, montecarlo.PLAIN_ROWS, settings, 0)
    marker = str(tmp_path / "died")
    dying = replace(chunks, streams=_dies_once(chunks.streams, 25, marker))
    with cluster.running_on(client):
        remote = driver.drive(dying, montecarlo.PLAIN_ROWS, settings, 0)
    assert os.path.exists(marker)  # a worker did die
    assert (remote.mean, remote.std, remote.mean_se, remote.std_se, remote.samples) == (
        local.mean,
        local.std,
        local.mean_se,
        local.std_se,
        local.samples,
    )


def test_local_n_starts_and_stops_its_own_cluster():
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    assert _run("maxpool(k=3)", "local:1", samples=SAMPLES) == _run("maxpool(k=3)", samples=SAMPLES)


def test_no_scheduler_imports_no_dask():
    # momentcalc itself never imports dask: a subprocess that runs an estimate locally and looks.
    code = (
        "import sys, momentcalc; momentcalc.estimate('relu', method='montecarlo', samples=1000); "
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

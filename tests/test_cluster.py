"""Monte Carlo on a Dask cluster (estimators/cluster.py): the same bits as the local driver, a lost worker included.

One LocalCluster of 2 worker processes serves the module. Its workers import
this checkout (PYTHONPATH is set here for them) and compile the kernels once
per process. In CI (env CI set) dask.distributed must be installed
(conftest.OPTIONAL_IN_CI): these tests never skip there.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

from momentcalc import MomentcalcError, engine, tables  # noqa: E402
from momentcalc.cli import app  # noqa: E402
from momentcalc.estimators import cluster, driver, montecarlo  # noqa: E402
from momentcalc.settings import RunSettings  # noqa: E402
from momentcalc.spec import parse  # noqa: E402

cluster_futures = cluster._Futures
ROOT = Path(__file__).resolve().parent.parent
SPECS = ["maxpool(k=3)", "relu | normalize | maxpool(k=3)"]
SAMPLES = 1_000_003  # odd, and not a whole number of chunks: a short last chunk, and pairs rounded up


@pytest.fixture(scope="module")
def client():
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), path]) if path else str(ROOT)  # workers import this tree
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as local,
        distributed.Client(local) as c,
    ):
        yield c


def _bits(result):
    """Every Monte Carlo number of a result, as the exact floats they are."""
    (e,) = [e for e in result.estimates if e.method == "montecarlo"]
    return (e.mean, e.std, e.mean_se, e.std_se, e.grad_sq, e.grad_sq_se, e.samples)


def _run(spec, scheduler=None, **settings):
    return _bits(engine.estimate(spec, method="montecarlo", seed=7, scheduler=scheduler, **settings))


@pytest.mark.parametrize("spec", SPECS)
def test_fixed_samples_give_the_local_bits(client, spec):
    local = _run(spec, samples=SAMPLES)  # first: it compiles the kernels, which the workers then load from the cache
    assert _run(spec, client, samples=SAMPLES) == local


def test_a_tol_run_gives_the_local_bits(client):
    # Pilot chunk first, then whole chunks: the same chunks, so the same stop and the same bits.
    local = _run("maxpool(k=3)", tol=2e-4)
    assert _run("maxpool(k=3)", client, tol=2e-4) == local
    assert local[2] <= 2e-4 and local[3] <= 2e-4


def test_a_map_run_gives_the_local_bits(client):
    def maps(scheduler=None):
        r = engine.estimate(
            "maxpool(k=3,s=1,p=1)", size=4, method="montecarlo", samples=5000, seed=2, scheduler=scheduler
        )
        m = r.montecarlo
        return [a.tobytes() for a in (m.mean, m.std, m.mean_se, m.std_se)] + [m.samples]

    local = maps()
    assert maps(client) == local


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_tables_build_on_a_cluster_gives_the_local_table(client):
    # relu: plain rows with the squared derivative (maxpool runs in antithetic pairs, tested above).
    def build(scheduler=None):
        return _untimed(tables.build(specs=("relu",), samples=SAMPLES, scheduler=scheduler))

    local = build()
    assert build(client) == local


def test_the_cli_runs_on_the_scheduler_of_momentcalc_scheduler(client, monkeypatch):
    # An address (not a Client): momentcalc connects, checks the workers' kernel sources, and closes its client.
    monkeypatch.setenv("MOMENTCALC_SCHEDULER", client.scheduler.address)
    args = ["estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", str(SAMPLES), "--seed", "7", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    (e,) = json.loads(result.stdout)["estimates"]
    local = _run("maxpool(k=3)", samples=SAMPLES)
    assert (e["mean"], e["std"], e["mean_se"], e["std_se"], e["samples"]) == (local[0], local[1], *local[2:4], local[6])


def test_progress_reaches_the_total(client):
    seen = []
    engine.estimate(
        "maxpool(k=3)",
        method="montecarlo",
        samples=SAMPLES,
        scheduler=client,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen and seen[-1][0] == seen[-1][1] >= SAMPLES


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


def _slow_rows(states, counts):
    import time

    time.sleep(0.2)  # so that the next batch is still queued when the run is interrupted (no timing is asserted)
    return np.array([[float(n), 0.0, 0.0, 0.0, 0.0] for n in counts])


def test_ctrl_c_cancels_the_queued_tasks(client, monkeypatch):
    submitted = []
    monkeypatch.setattr(
        cluster, "_Futures", lambda futures: submitted.append(cluster_futures(futures)) or submitted[-1]
    )
    chunks = driver.Chunks(10, lambda first, count: [None] * count, _slow_rows, batch=1)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with cluster.running_on(client), pytest.raises(KeyboardInterrupt):
        driver.run_chunks(chunks, 0, [10] * 100, interrupt, 1000)
    pending = [f for group in submitted[1:] for f in group.futures]
    assert pending and all(f.status in ("cancelled", "finished") for f in pending)
    assert any(f.status == "cancelled" for f in pending)


def test_local_n_starts_and_stops_its_own_cluster():
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    assert _run("maxpool(k=3)", "local:1", samples=SAMPLES) == _run("maxpool(k=3)", samples=SAMPLES)


def test_a_bad_address_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    result = CliRunner().invoke(
        app,
        ["estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", "1000", "--scheduler", "tcp://127.0.0.1:9"],
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in lines[0]


@pytest.mark.parametrize("scheduler", ["", "local:0", "local:two"])
def test_a_malformed_scheduler_is_refused_before_any_work(scheduler):
    with pytest.raises(MomentcalcError, match="scheduler|local:N"):
        engine.estimate("maxpool(k=3)", method="montecarlo", samples=1000, scheduler=scheduler)


def test_without_dask_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(cluster, "DASK_MODULE", "no_such_module_momentcalc_test")
    monkeypatch.setenv("MOMENTCALC_SCHEDULER", "local:2")
    result = CliRunner().invoke(app, ["estimate", "relu", "--method", "montecarlo", "--samples", "1000"])
    assert result.exit_code == 2
    assert "pip install 'momentcalc[dask]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_no_scheduler_imports_no_dask():
    # momentcalc itself never imports dask: a subprocess that runs an estimate locally and looks.
    import subprocess
    import sys

    code = (
        "import sys, momentcalc; momentcalc.estimate('relu', method='montecarlo', samples=1000); "
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

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
from table_refs import untimed
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

from momentcalc import MomentcalcError, engine, tables  # noqa: E402
from momentcalc.cli import app  # noqa: E402
from momentcalc.estimators import cluster, driver, montecarlo, qmc  # noqa: E402
from momentcalc.estimators import program as program_module  # noqa: E402
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
    """Every (quasi-)Monte Carlo number of a result, as the exact floats they are."""
    (e,) = [e for e in result.estimates if e.method in ("montecarlo", "qmc")]
    return (e.mean, e.std, e.mean_se, e.std_se, e.grad_sq, e.grad_sq_se, e.samples)


def _run(spec, scheduler=None, method="montecarlo", **settings):
    return _bits(engine.estimate(spec, method=method, seed=7, scheduler=scheduler, **settings))


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


def test_tables_build_on_a_cluster_gives_the_local_table(client):
    # relu: plain rows with the squared derivative (maxpool runs in antithetic pairs, tested above).
    def build(scheduler=None):
        return untimed(tables.build(specs=("relu",), samples=SAMPLES, scheduler=scheduler))

    local = build()
    assert build(client) == local


def test_the_cli_runs_on_the_scheduler_of_momentcalc_scheduler(client, monkeypatch):
    # An address (not a Client): momentcalc connects, checks each task's worker's kernel sources, closes its client.
    monkeypatch.setenv("MOMENTCALC_SCHEDULER", client.scheduler.address)
    args = ["estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", str(SAMPLES), "--seed", "7", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    (e,) = json.loads(result.stdout)["estimates"]
    local = _run("maxpool(k=3)", samples=SAMPLES)
    assert (e["mean"], e["std"], e["mean_se"], e["std_se"], e["samples"]) == (local[0], local[1], *local[2:4], local[6])


# QMC with blocks of 2**10 points (qmc._BLOCK): 2**16 points are 4 blocks per replica, and TASKS_PER_THREAD = 32
# cuts each replica's points into 4 tasks on 2 workers (a cut after a block: the task re-derives the shift,
# fast-forwards the Sobol sequence and the dropout stream). The tol run doubles the points over several rounds.
QMC_CASES = [
    ("dropout(p=0.5) | relu | maxpool(k=2) | dropout(p=0.2)", {"samples": 1 << 16}),
    ("maxpool(k=3)", {"tol": 3e-4}),
]


@pytest.mark.parametrize(("spec", "settings"), QMC_CASES)
def test_qmc_on_the_cluster_gives_the_local_bits(client, monkeypatch, spec, settings):
    monkeypatch.setattr(qmc, "_BLOCK", 1 << 10)
    local = _run(spec, method="qmc", **settings)
    monkeypatch.setattr(driver, "TASKS_PER_THREAD", 32)
    assert _run(spec, client, method="qmc", **settings) == local
    if "tol" in settings:
        assert max(local[2], local[3]) <= settings["tol"]


def test_progress_reaches_the_total_a_task_at_a_time(client, monkeypatch):
    # maxpool(k=3): 35 chunks in one batch, cut into 8 tasks (2 slots * TASKS_PER_THREAD): a report per task.
    # (A round trip of 1 ns: no task is too short to be worth its cost.)
    monkeypatch.setitem(cluster._round_trips, client.scheduler.address, 1e-9)
    for method in ("montecarlo", "qmc"):
        seen = []
        bits = _run(
            "maxpool(k=3)", client, method, samples=SAMPLES, progress=lambda d, t, seen=seen: seen.append((d, t))
        )
        done = [d for d, _ in seen]
        assert len(seen) >= 8 and done == sorted(set(done)) and seen[-1][0] == seen[-1][1] >= SAMPLES
        assert bits == _run("maxpool(k=3)", method=method, samples=SAMPLES)


def test_a_short_run_groups_its_chunks_into_tasks_of_at_least_min_task_s(client, monkeypatch):
    # 35 chunks of maxpool(k=3) of CHUNK_SECONDS each; a round trip of 2 chunks' seconds makes min_task_s
    # TASK_OVER_OVERHEAD * 2 = 10 chunks' worth: 35 // 10 = 3 tasks (of 11, 12 and 12 chunks), not 8.
    program = montecarlo.compile_program(parse("maxpool(k=3)"), 0.0, 1.0)
    trip = 2 * program_module.CHUNK_SECONDS
    monkeypatch.setitem(cluster._round_trips, client.scheduler.address, trip)
    seen = []
    bits = _run("maxpool(k=3)", client, samples=SAMPLES, progress=lambda d, t: seen.append(d))
    steps = np.diff([0, *seen])
    assert len(steps) == 3 and min(steps) >= 10 * program.chunk
    with cluster.running_on(client) as executor:
        assert executor.min_task_s == pytest.approx(cluster.TASK_OVER_OVERHEAD * trip)
    assert bits == _run("maxpool(k=3)", samples=SAMPLES)


def test_the_round_trip_is_measured_and_bounded(client):
    trip = cluster.round_trip(client, 30.0)
    assert 0 < trip < 30.0 / cluster.ROUND_TRIPS
    # No time to measure it (as with a worker that stopped answering): the assumed round trip, at once.
    assert cluster.round_trip(client, 1e-6) == cluster.ROUND_TRIP_S


def _last_of_all(marker, streams, counts):
    """Rows that name their chunks; the task of chunk 0 ends only after the last task has (it waits for its
    marker), so the tasks finish out of order."""
    import time

    if streams[0] == 0:
        for _ in range(3000):
            if os.path.exists(marker):
                break
            time.sleep(0.01)
        time.sleep(0.1)
    elif streams[-1] == len(SIZES) - 1:
        Path(marker).touch()
    return np.array([[float(j), float(n), 0.0, 0.0, 0.0] for j, n in zip(streams, counts)])


SIZES = [1 << j for j in range(8)]  # one chunk a task (8 tasks on 2 slots), each of its own size


def test_progress_follows_completion_and_rows_keep_chunk_order(client, tmp_path):
    from functools import partial

    chunks = driver.Chunks(1, lambda first, count: list(range(first, first + count)), None)
    chunks = replace(chunks, launch=partial(_last_of_all, str(tmp_path / "last")))
    seen = []
    with cluster.running_on(client):
        rows = driver.run_chunks(chunks, 0, SIZES, lambda d, t: seen.append(d), sum(SIZES))
    assert rows[:, 0].tolist() == list(range(8)) and rows[:, 1].tolist() == SIZES  # merged in chunk order
    steps = np.diff([0, *seen]).tolist()
    assert sorted(steps) == SIZES and steps.index(SIZES[0]) > steps.index(SIZES[-1])  # as they finished


def test_task_size_grows_with_workers_and_changes_no_bit(client, monkeypatch):
    # The rule (cluster.batch_scale): at least BATCH_SCALE, and proportional to the workers beyond.
    assert [cluster.batch_scale(w) for w in (1, 2, 16, 100)] == [16, 16, 16, 100]
    local = _run("maxpool(k=3)", samples=3 * SAMPLES)  # 103 chunks
    monkeypatch.setattr(cluster, "batch_scale", lambda slots: 1)  # batches of 64 chunks, tasks of 8: 2 batches
    assert _run("maxpool(k=3)", client, samples=3 * SAMPLES) == local


def test_callables_and_expr_are_refused_with_a_scheduler():
    # Refused before anything connects ('local:1' never starts here).
    with pytest.raises(MomentcalcError, match="runs in numpy in this process, not on a Dask scheduler"):
        engine.estimate(np.tanh, method="montecarlo", samples=1000, scheduler="local:1")
    args = ["estimate", "expr(x*x)", "--samples", "1000", "--scheduler", "local:1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "without --scheduler" in result.stderr


def _slow_rows(states, counts):
    import time

    time.sleep(0.2)  # so that the next batch is still queued when the run is interrupted (no timing is asserted)
    return np.array([[float(n), 0.0, 0.0, 0.0, 0.0] for n in counts])


def test_ctrl_c_cancels_the_queued_tasks(client, monkeypatch):
    submitted = []
    monkeypatch.setattr(
        cluster,
        "_Futures",
        lambda futures, done, timeout: submitted.append(cluster_futures(futures, done, timeout)) or submitted[-1],
    )
    chunks = driver.Chunks(10, lambda first, count: [None] * count, _slow_rows, batch=1)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with cluster.running_on(client), pytest.raises(KeyboardInterrupt):
        driver.run_chunks(chunks, 0, [10] * 100, interrupt, 1000)
    pending = [f for group in submitted[1:] for f in group.futures]
    assert pending and all(f.status in ("cancelled", "finished") for f in pending)
    assert any(f.status == "cancelled" for f in pending)


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


@pytest.mark.parametrize(
    "spec, settings",
    [
        ("lppool(p=2,k=3)", {"samples": 300_001}),  # a declared sampler: several chunks, a short last one
        ("relu | normalize | lppool(p=2,k=2)", {"tol": 2e-3}),  # its stages before it, and the tolerance loop
    ],
)
def test_sampled_ops_on_the_cluster_give_the_local_bits(client, monkeypatch, spec, settings):
    local = _run(spec, **settings)

    def no_local_pool(*args, **kwargs):
        raise AssertionError("chunks ran on this process's pool, not on the cluster")

    monkeypatch.setattr(driver, "in_order", no_local_pool)  # every chunk after the first must go to the cluster
    assert _run(spec, client, **settings) == local

"""A Dask cluster that changes or stalls: every task's worker is checked, and every wait is bounded.

Issue 28: a worker with other code that joined after connecting was used (its numbers differed, exit 0);
an address that accepts and stays silent hung past 180 s, a scheduler with no workers past 120 s. Here
a scheduler runs in this process (LocalCluster, processes=False) and the hostile workers are `dask worker`
subprocesses on 127.0.0.1. A mismatched worker is a real worker whose momentcalc reports other kernel
sources: a preload script (Dask's own mechanism, run in the worker at start) replaces its
jit.sources_stamp, which is what a worker with edited kernel files would report.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.cli import app  # noqa: E402
from momentcalc.estimators import cluster, driver  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OTHER_SOURCES = """
def dask_setup(worker):
    from momentcalc.estimators import jit
    jit.sources_stamp = lambda: "0" * 64  # what a worker whose kernel files differ reports
"""


def _nones(first, count):
    return [None] * count


def _slow_rows(states, counts):
    time.sleep(0.05)  # so that the run is still going when a worker joins (no timing is asserted)
    return np.array([[float(n), 0.0, 0.0, 0.0, 0.0] for n in counts])


SLOW = driver.Chunks(10, _nones, _slow_rows, batch=1)


def _scheduler():
    """A scheduler in this process, with no worker."""
    return distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None, silence_logs=50
    )


def _worker(address: str, tmp_path: Path, *extra: str) -> subprocess.Popen:
    """A `dask worker` process on 127.0.0.1 that imports this checkout and this test module."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    command = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny"]
    command += ["--host", "127.0.0.1", "--no-dashboard", *extra]
    with open(tmp_path / f"worker{len(list(tmp_path.glob('worker*')))}.log", "w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGCONT)  # a stopped worker cannot die of SIGKILL's cleanup otherwise
    process.kill()
    process.wait(30)


def test_a_worker_with_other_code_that_joins_mid_run_fails_the_run(tmp_path):
    preload = tmp_path / "other_sources.py"
    preload.write_text(OTHER_SOURCES)
    joined = []
    with _scheduler() as local, distributed.Client(local) as client:
        local.scale(1)  # a worker thread in this process: this momentcalc, the run starts on it alone
        client.wait_for_workers(1, timeout=60)
        first = set(client.scheduler_info()["workers"])

        def join_once(done, total):
            if not joined:  # the run has begun, and connected (its one worker had its code accepted)
                joined.append(_worker(local.scheduler_address, tmp_path, "--preload", str(preload)))
                client.wait_for_workers(2, timeout=120)

        try:
            with cluster.running_on(client), pytest.raises(MomentcalcError) as caught:
                driver.run_chunks(SLOW, 0, [10] * 4000, join_once, 40000)
        finally:
            for process in joined:
                _stop(process)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "runs other kernel sources" in message and "so the run stops" in message
    (named,) = [word for word in message.split() if word.startswith("tcp://")]
    assert named not in first  # the worker that joined mid-run, not the one checked at the start


def test_every_task_carries_its_workers_stamp():
    # The check itself: a task's result names its worker and stamp; a foreign stamp is refused, ours is not.
    mine = cluster.kernel_stamp()
    rows = np.zeros((1, 5))
    assert cluster._checked(("tcp://w:1", mine, rows), mine) is rows
    with pytest.raises(MomentcalcError, match=r"Dask worker tcp://w:1 runs momentcalc 0\.0, not this"):
        cluster._checked(("tcp://w:1", ("0.0", mine[1]), rows), mine)
    with pytest.raises(MomentcalcError, match="other kernel sources"):
        cluster._checked(("tcp://w:1", (mine[0], "0" * 64), rows), mine)


def _within(seconds: float, run) -> str:
    start = time.perf_counter()
    with pytest.raises(MomentcalcError) as caught:
        run()
    assert time.perf_counter() - start < seconds
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    return message


def test_a_scheduler_with_no_worker_fails_within_the_timeout():
    with _scheduler() as local:

        def run():
            with cluster.running_on(local.scheduler_address, timeout=2):
                driver.run_chunks(SLOW, 0, [10] * 4, None, 40)

        message = _within(2 + 15, run)  # 15 s: connecting and closing on a loaded machine
    assert "has no worker (none joined within 2 s)" in message and "--timeout" in message


def test_the_cli_says_no_worker_in_one_line_and_exits_2():
    with _scheduler() as local:
        args = ["estimate", "relu", "--method", "montecarlo", "--samples", "1000"]
        args += ["--scheduler", local.scheduler_address, "--timeout", "1"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "has no worker" in result.stderr


def test_a_worker_that_stops_answering_fails_the_run_within_the_timeout(tmp_path):
    with _scheduler() as local, distributed.Client(local) as client:
        worker = _worker(local.scheduler_address, tmp_path)
        try:
            client.wait_for_workers(1, timeout=120)
            os.kill(worker.pid, signal.SIGSTOP)  # it stays connected, as a hung machine's process does

            def run():
                with cluster.running_on(local.scheduler_address, timeout=3):
                    driver.run_chunks(SLOW, 0, [10] * 4, None, 40)

            message = _within(3 + 15, run)
        finally:
            _stop(worker)
    assert "no Dask task finished within 3 s" in message and "--timeout" in message


class _Peer:
    """A TCP server on 127.0.0.1 that accepts every connection and then sends `reply` (or nothing)."""

    def __init__(self, reply: bytes = b""):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.reply, self.held = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            self.held.append(conn)
            if self.reply:
                conn.sendall(self.reply)

    def close(self):
        self.server.close()
        for conn in self.held:
            conn.close()


# garbage: a frame count and lengths no Dask message has (distributed once tried to allocate them: MemoryError)
@pytest.mark.parametrize("reply", [b"", b"\xff" * 64 + b"not dask" * 64, b"\x01" + b"\x00" * 7 + b"\xff" * 8])
def test_an_address_that_is_silent_or_answers_garbage_is_one_line_within_the_timeout(reply):
    peer = _Peer(reply)
    try:

        def run():
            with cluster.running_on(peer.address, timeout=2):
                driver.run_chunks(SLOW, 0, [10] * 4, None, 40)

        message = _within(2 + 10, run)
    finally:
        peer.close()
    assert message.startswith(f"cannot reach a Dask scheduler at {peer.address!r}")


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True])
def test_a_bad_timeout_is_refused_before_connecting(timeout):
    with pytest.raises(MomentcalcError, match="timeout is a number of seconds"):
        cluster.running_on("tcp://127.0.0.1:9", timeout=timeout)


OTHER_VERSION = """
def dask_setup(worker):
    from momentcalc.estimators import cluster
    cluster.__version__ = "0.0.0+other"  # what a worker with another momentcalc release reports
"""


def test_the_cli_refuses_a_worker_of_another_version_in_one_line_and_exit_2(tmp_path):
    preload = tmp_path / "other_version.py"
    preload.write_text(OTHER_VERSION)
    with _scheduler() as local:
        worker = _worker(local.scheduler_address, tmp_path, "--preload", str(preload))
        try:
            args = ["estimate", "relu", "--method", "montecarlo", "--samples", "100000"]
            result = CliRunner().invoke(app, [*args, "--scheduler", local.scheduler_address, "--timeout", "120"])
        finally:
            _stop(worker)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "runs momentcalc 0.0.0+other, not this" in line and "kernel sources" not in line

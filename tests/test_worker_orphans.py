"""Worker processes die with their parent: a table build killed with SIGKILL (which runs none of its code) left
three workers of ~410 MB running for minutes. processes.py has each worker ask the kernel for SIGKILL when its
parent ends (Linux), or watch for it (elsewhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STARTED_S = 120  # spawned workers import momentcalc: seconds on a loaded 2-core machine
GONE_S = 10

# Two workers that each write a file once their task runs (after the initializer), then sleep far longer than
# the test waits.
PARENT = """
import os, sys, time
from momentcalc import processes


def task(number):
    open(os.path.join(sys.argv[1], f"{number}.{os.getpid()}"), "w").close()
    time.sleep(600)


if __name__ == "__main__":
    with processes.mapper(2) as map_:
        list(map_(task, [1, 2]))
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
def test_workers_of_a_parent_killed_with_sigkill_end(tmp_path):
    (tmp_path / "parent.py").write_text(PARENT)
    marks = tmp_path / "marks"
    marks.mkdir()
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(marks)])
    try:
        deadline = time.monotonic() + STARTED_S
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
        workers = [int(p.name.split(".")[1]) for p in marks.iterdir()]
        assert len(workers) == 2, "the workers did not start their tasks"
        assert all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=GONE_S)
        deadline = time.monotonic() + GONE_S
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        for pid in [p for p in locals().get("workers", []) if _alive(p)]:
            os.kill(pid, signal.SIGKILL)  # the test's own cleanup, where the code under test failed
        if parent.poll() is None:
            parent.kill()
    assert left == [], f"workers {left} outlived their parent"


def test_a_worker_whose_parent_has_already_gone_leaves_at_once():
    # The race the kernel's death signal cannot cover: the parent ended while the worker was still starting up.
    script = "import os; from momentcalc import processes; processes._die_with(os.getppid() + 10**6); print('went on')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")


def test_the_watch_thread_ends_an_orphan():
    # Where there is no PR_SET_PDEATHSIG (macOS): the thread that polls getppid. Run in a child whose "parent"
    # (as the watch sees it) is gone after a moment.
    script = (
        "import os, time; from momentcalc import processes\n"
        "real = os.getppid\n"
        "start = time.monotonic()\n"
        "os.getppid = lambda: real() if time.monotonic() - start < 0.5 else 1\n"
        "processes._watch_parent(real())\n"
        "time.sleep(30); print('went on')\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert time.monotonic() - started < 25

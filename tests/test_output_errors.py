"""Every write is checked: output that cannot be written whole ends with one line on stderr and exit code 74
(EX_IOERR), never 0 and never 1 (which says the estimates disagree); a reader that leaves early is no error.

Hostile: /dev/full (a full disk), a closed stdout, a file size limit (RLIMIT_FSIZE, `ulimit -f`), a full
non-blocking pipe, a pipe closed before the first write; table and plot files under a file size limit.
Each command runs in its own process (the console script), as a user's would.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from momentcalc.errors import WriteError
from momentcalc.tables import writer

EXIT_WRITE = 74
TIMEOUT_S = 120
BACKWARD_JSON = ["backward", "maxpool(k=3,s=2)", "--size", "64", "--trials", "0", "--json"]  # ~80 kB of JSON
# Commands whose whole output goes to stdout: tables, JSON, help and version, plain and rich.
COMMANDS = [
    ["list"],
    ["estimate", "relu", "--method", "closed", "--json"],
    ["estimate", "relu", "--method", "closed"],
    ["tables", "show"],
    ["shape", "--i", "7", "--k", "2", "--s", "3", "--pool", "--json"],
    ["server", "status"],
    ["--help"],
    ["--version"],
    BACKWARD_JSON,
]


def _script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([_script(), *args], timeout=TIMEOUT_S, **kwargs)


def _assert_write_error(done: subprocess.CompletedProcess, reason: str) -> None:
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == EXIT_WRITE, (done.returncode, lines[-5:])
    assert len(lines) == 1 and lines[0].startswith("error: could not write the output"), lines[-5:]
    assert reason in lines[0]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_full_disk_is_one_line_and_exit_74(args):
    with open("/dev/full", "wb") as full:
        done = _run(args, stdout=full)
    _assert_write_error(done, "No space left on device")


@pytest.mark.parametrize("args", [["list"], ["estimate", "relu", "--method", "closed", "--json"], ["--version"]])
def test_a_closed_stdout_is_one_line_and_exit_74(args):
    # Python starts with sys.stdout None where descriptor 1 is closed; rich and click then printed nothing, exit 0.
    done = _run(args, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    _assert_write_error(done, "Bad file descriptor")


@pytest.mark.parametrize("args", [BACKWARD_JSON, ["list"]], ids=" ".join)
def test_a_file_size_limit_is_one_line_and_exit_74(tmp_path, args):
    # The system writes up to the limit and refuses the rest; Python's buffered writer reported the short write
    # to a text layer that ignores it: the JSON was cut at the limit with exit 0.
    limit = 1024
    out = tmp_path / "out"
    with out.open("wb") as stream:
        done = _run(args, stdout=stream, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    _assert_write_error(done, "File too large")
    assert out.stat().st_size == limit  # what fitted, and the exit code says it is not all


def test_the_same_output_under_a_limit_it_fits_is_whole(tmp_path):
    whole = _run(BACKWARD_JSON, stdout=subprocess.PIPE)
    assert whole.returncode == 0 and len(whole.stdout) > 50_000
    out = tmp_path / "out"
    with out.open("wb") as stream:
        limit = 2 * len(whole.stdout)
        done = _run(
            BACKWARD_JSON, stdout=stream, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        )
    assert done.returncode == 0 and done.stderr == b""
    assert out.read_bytes() == whole.stdout


def test_a_full_non_blocking_pipe_is_one_line_and_exit_74():
    # Nobody reads: the pipe's buffer (64 kB on Linux) fills, and a non-blocking write fails with EAGAIN.
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
        done = _run(BACKWARD_JSON, stdout=write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    _assert_write_error(done, "without blocking")


def test_a_reader_that_left_is_no_error():
    # The reader closed the pipe before the first write: EPIPE at once. Like `| head`: exit 0, nothing said.
    process = subprocess.Popen([_script(), *BACKWARD_JSON], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=TIMEOUT_S)
    assert (process.returncode, err) == (0, b"")


def test_list_into_head_exits_0_with_no_message():
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{_script()}' list | head -2"], capture_output=True, timeout=TIMEOUT_S
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(done.stdout.splitlines()) == 2


def _file_size_limit(limit: int):
    """Lower this process's soft file size limit for a block (Python ignores SIGXFSZ: writes fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    class Limit:
        def __enter__(self):
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

        def __exit__(self, *exc):
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    return Limit()


def test_a_table_write_that_cannot_finish_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "normprop.json"
    path.write_text("the old table\n")
    with _file_size_limit(4096), pytest.raises(WriteError, match="File too large"):
        writer._atomic_write(path, "x" * 100_000)
    assert path.read_text() == "the old table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normprop.json"]


def test_a_plot_that_cannot_be_written_leaves_nothing(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from momentcalc.torch import compare, plot

    small = compare(depth=2, width=2, size=4, batch=2, pool=None, variants=("normprop",))
    with _file_size_limit(1024), pytest.raises(WriteError, match="File too large"):
        plot.draw(small, tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []

"""The warm server against hostile surroundings: another user's files in the working folder, peers that stay silent
or answer garbage, clients that hold a connection open, and shells whose limits a served command must keep.

Every wait is bounded (subprocess timeouts, MOMENTCALC_SERVER_TIMEOUT); every server a test starts is stopped.
"""

import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import momentcalc_client as client
from momentcalc.server import child, loop, registry

pytestmark = pytest.mark.skipif(not client.supported(), reason="servers need Unix sockets and fork")
needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the server's child in /proc")

PROBE = (
    "import sys, momentcalc_client as C; s = C.connect(C.address() or ''); "
    "c = 99 if s is None else C.run_served(s, sys.argv[1:]); sys.exit(98 if c < 0 else c)"
)
HOSTILE = "import os; open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'HIJACKED-' + __name__), 'w')\n"
# What Python would import from a working folder on sys.path before the installation's own.
HOSTILE_MODULES = ("momentcalc_launch", "momentcalc_client", "momentcalc", "typer", "numba", "rich", "click")


def _script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


@pytest.fixture
def runtime():
    folder = Path(tempfile.mkdtemp(prefix="mc-"))
    yield folder
    subprocess.run([_script(), "server", "stop", "--all"], env=_env(folder), capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)


def _env(runtime: Path, **extra) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # TMPDIR too: `server stop --all` looks there as well, and must find only this test's servers.
    folders = {"XDG_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime)}
    return {**base, "MOMENTCALC_SERVER": "1", **folders, "MOMENTCALC_SERVER_IDLE": "120", **extra}


def _address(env) -> str:
    code = "import momentcalc_client as C; print(C.address())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()


def _wait_serving(address: str, seconds: float = 300) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock = client.connect(address, timeout=1.0)
        except client.ServerError:
            sock = None
        if sock is not None:
            sock.close()
            return registry.running_pid(address)
        time.sleep(0.2)
    raise AssertionError("no server served")


def _hostile_folder(root: Path) -> Path:
    folder = root / "shared"
    folder.mkdir()
    for name in HOSTILE_MODULES:
        (folder / f"{name}.py").write_text(HOSTILE)
    return folder


# ---------------------------------------------------------------- another user's code in the working folder


def test_a_relative_entry_on_the_path_does_not_bring_in_the_working_folder(tmp_path):
    folder = _hostile_folder(tmp_path)
    # The console script run in its own process with the working folder named on PYTHONPATH: it drops it before
    # importing anything of its own. (The wrapper pip writes imports the launcher itself, before any code of ours
    # runs: a PYTHONPATH naming the working folder is the user's own choice there, as for any Python program.)
    (folder / "momentcalc_launch.py").unlink()
    for entry in (".", f":{folder}", str(folder)):
        env = {**os.environ, "MOMENTCALC_SERVER": "0", "PYTHONPATH": entry}
        done = subprocess.run([_script(), "shape", "--i", "8", "--k", "3"], capture_output=True, text=True, env=env,
                              cwd=folder, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("HIJACKED")) == []


def test_the_path_a_server_gets_leaves_out_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept = client.safe_path(["", ".", "relative", str(tmp_path), "/usr/lib/python3", client.install_dir()])
    assert kept == ["/usr/lib/python3", client.install_dir()]
    monkeypatch.chdir(client.install_dir())  # a checkout run from its root: its own folder stays
    assert client.safe_path(["", client.install_dir()]) == [client.install_dir()]


# ---------------------------------------------------------------- silent and garbage peers


def _fake_server(address: str, behaviour):
    """A listener at address whose accepted connections get behaviour(conn) in a thread."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(8)

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener


def _silent(conn):
    time.sleep(30)
    conn.close()


def _garbage(answer: bytes):
    def behaviour(conn):
        conn.recv(1 << 16)
        conn.sendall(answer)
        time.sleep(5)
        conn.close()

    return behaviour


def _client_of(address_env, timeout=60):
    """`momentcalc list`, its output in files: a peer that holds the passed descriptors holds a pipe open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([_script(), "list"], stdout=out, stderr=err, env=address_env)
        code = process.wait(timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(process.args, code, out.read().decode(), err.read().decode())


@pytest.mark.parametrize("accepts", [True, False])
def test_a_silent_peer_gets_one_line_and_exit_2_within_the_timeout(runtime, accepts):
    env = _env(runtime, MOMENTCALC_SERVER_TIMEOUT="1.5")
    address = _address(env)
    listener = _fake_server(address, _silent) if accepts else socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if not accepts:  # listens, never accepts: the connection waits in its queue
        listener.bind(address)
        listener.listen(8)
    try:
        start = time.monotonic()
        done = _client_of(env)
        took = time.monotonic() - start
    finally:
        listener.close()
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"error: the momentcalc server at {address} did not answer within 1.5 s")
    assert took < 1.5 + 10  # the timeout, and a Python's start


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",  # another program's socket
        b"\x7f" * 4096,
        struct.pack("!q", 1),  # init: a pid no server's child has
        struct.pack("!q", -5),
        struct.pack("!q", 1 << 40),
    ],
)
def test_a_peer_that_answers_garbage_gets_one_line_and_no_signal(runtime, answer):
    env = _env(runtime, MOMENTCALC_SERVER_TIMEOUT="5")
    address = _address(env)
    listener = _fake_server(address, _garbage(answer))
    try:
        done = _client_of(env)
    finally:
        listener.close()
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: the momentcalc server at {address} answered nonsense (pid ")
    assert len(done.stderr.splitlines()) == 1


def test_a_peer_that_hangs_up_at_once_leaves_the_command_to_run_here(runtime):
    env = _env(runtime)
    listener = _fake_server(_address(env), lambda conn: conn.close())
    try:
        done = _client_of(env)
    finally:
        listener.close()
    assert done.returncode == 0 and "relu" in done.stdout and done.stderr == ""


# ---------------------------------------------------------------- a real server: connections, limits, one per install


@pytest.fixture(scope="module")
def server():
    folder = Path(tempfile.mkdtemp(prefix="mc-"))
    env = _env(folder, MOMENTCALC_SERVER_IDLE="300")
    started = subprocess.run([_script(), "server", "start"], capture_output=True, text=True, env=env, timeout=600)
    assert started.returncode == 0, started.stderr
    address = _address(env)
    yield env, address, registry.running_pid(address)
    subprocess.run([_script(), "server", "stop", "--all"], env=env, capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)


def _probe(env, *args, timeout=60, **popen):
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, **popen)  # fmt: skip


def test_a_client_that_sends_nothing_holds_up_no_one(server):
    env, address, _pid = server
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(address)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(address)
    half.sendall(client.LENGTH.pack(5000) + b"x" * 10)  # a request that never ends
    try:
        start = time.monotonic()
        done = _probe(env, "shape", "--i", "8", "--k", "3", timeout=30)
        assert done.returncode == 0 and time.monotonic() - start < 5, done.stderr
    finally:
        silent.close()
        half.close()


def _children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _limited(limits: dict, nice: int):
    def apply():
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), value)
        os.nice(nice)

    return apply


LONG = ["estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", "5000000000"]


@needs_proc
def test_a_served_command_has_its_clients_limits_and_niceness(server):
    env, _address_, pid = server
    soft_files = min(256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    limits = {"RLIMIT_NOFILE": (soft_files, soft_files), "RLIMIT_CPU": (900, 1000), "RLIMIT_FSIZE": (1 << 30, 1 << 31),
              "RLIMIT_CORE": (0, 0)}  # fmt: skip
    earlier = _children(pid)
    shell = subprocess.Popen([sys.executable, "-c", PROBE, *LONG], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, preexec_fn=_limited(limits, 3))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (new := _children(pid) - earlier) and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = new
        time.sleep(0.5)  # it has taken on its client's state before it sends its pid
        lines = Path(f"/proc/{child}/limits").read_text().splitlines()[1:]
        seen = {line[:26].strip(): line[26:].split()[:2] for line in lines}
        assert seen["Max open files"] == [str(soft_files)] * 2
        assert seen["Max cpu time"] == ["900", "1000"]
        assert seen["Max file size"] == [str(1 << 30), str(1 << 31)]
        assert seen["Max core file size"] == ["0", "0"]
        nice = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == os.nice(0) + 3
        held = {os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")}
        assert client.lock_path(_address_) not in held  # nothing of the server's: its lock, its listener
    finally:
        shell.kill()
        shell.communicate(timeout=60)


def test_a_memory_limit_sends_the_command_back_to_its_own_process(server):
    env, _address_, _pid = server
    limit = {"RLIMIT_AS": (8 << 30, resource.RLIM_INFINITY)}  # a fork has the warm server's memory already
    done = _probe(env, "list", preexec_fn=_limited(limit, 0))
    assert done.returncode == 98  # sent back: the console script runs it itself
    own = subprocess.run([_script(), "list"], capture_output=True, text=True, env=env, timeout=120,
                         preexec_fn=_limited(limit, 0))  # fmt: skip
    assert own.returncode == 0 and "relu" in own.stdout


def test_a_file_size_limit_cuts_a_served_command_as_its_own(server, tmp_path):
    env, _address_, _pid = server
    results = []
    for mode in ("1", "0"):
        out = tmp_path / f"out{mode}.json"
        shell = f"ulimit -f 1; {_script()} estimate relu --json > {out}"
        done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True,
                              env={**env, "MOMENTCALC_SERVER": mode}, timeout=120)  # fmt: skip
        results.append((done.returncode, out.stat().st_size))
    assert results[0] == results[1] and results[0][1] <= 1024


def test_a_niced_server_leaves_for_a_command_it_cannot_serve(runtime):
    env = _env(runtime)
    started = subprocess.run(["nice", "-n", "5", _script(), "server", "start"], capture_output=True, text=True,
                             env=env, timeout=600)  # fmt: skip
    assert started.returncode == 0, started.stderr
    address = _address(env)
    pid = registry.running_pid(address)
    done = _probe(env, "list")  # at the niceness of this test: a niced fork cannot have it
    assert done.returncode == 98
    deadline = time.monotonic() + 10
    while not registry.ended(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry.ended(pid)


# A newer server stopping the older one of its installation (two servers started): tests_long/test_long_server.py.


def test_stop_all_stops_every_server_of_this_user(runtime):
    env = _env(runtime)
    folder = Path(client.runtime_dir(str(runtime)))
    holder = (
        "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write(f'{os.getpid()} other\\n'); f.flush(); print('held', flush=True); time.sleep(120)"
    )
    others = [subprocess.Popen([sys.executable, "-c", holder, str(folder / f"other{i}.lock")], stdout=subprocess.PIPE,
                               text=True) for i in range(2)]  # fmt: skip
    for other in others:
        assert other.stdout.readline() == "held\n"
    status = subprocess.run([_script(), "server", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert all(f"pid {o.pid} " in status.stdout for o in others)
    mine = subprocess.run([_script(), "server", "stop"], capture_output=True, text=True, env=env, timeout=60)
    assert mine.stdout == "no server was running\n" and all(o.poll() is None for o in others)
    stop = subprocess.run([_script(), "server", "stop", "--all"], capture_output=True, text=True, env=env, timeout=60)
    assert stop.returncode == 0 and stop.stdout.startswith("stopped the servers")
    for other in others:
        assert other.wait(timeout=10) == -signal.SIGTERM


@needs_proc
@pytest.mark.parametrize("mode", ["0", "1"])
def test_worker_processes_import_nothing_from_the_working_folder(server, tmp_path, mode):
    env, _address_, server_pid = server
    folder = _hostile_folder(tmp_path)
    (folder / "multiprocessing.py").write_text(HOSTILE)  # what a spawned worker's `python -c` imports first
    build = subprocess.Popen([_script(), "tables", "check", "--jobs", "2"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**env, "MOMENTCALC_SERVER": mode}, cwd=folder,
                             start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        runs_it = build.pid if mode == "0" else server_pid  # served: the workers are the server's grandchildren
        while time.monotonic() < deadline and not _workers_started(runs_it):
            time.sleep(0.1)
        assert _workers_started(runs_it)
        time.sleep(3)  # they have imported what they start with
    finally:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait(timeout=30)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("HIJACKED")) == []


def _workers_started(pid: int) -> bool:
    """Whether pid or a process it started has spawned multiprocessing's worker processes."""
    sessions = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing" in cmdline and b"spawn_main" in cmdline:
                sessions.append(int(entry.name))
    return any(_ancestor(p, pid) for p in sessions)


def _ancestor(pid: int, of: int) -> bool:
    while pid > 1:
        if pid == of:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def test_a_server_leaves_when_its_installation_changes(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="mc-"))
    try:
        monkeypatch.setattr(loop, "STAMP_EVERY_S", 0.2)
        listener = loop._listen(str(folder / "s.sock"))
        start = time.monotonic()
        loop.Server(str(folder / "s.sock"), 300, runner=None, stamp="an edit ago").serve(listener)
        assert time.monotonic() - start < 5  # not its idle time: the sources it loaded are not the installation's
        listener.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _request(**changes) -> dict:
    state = client.process_state()
    return {"argv": ["list"], "cwd": "/", "env": {"HOME": "/"}, **state, **changes}


def test_judge_serves_sends_back_or_retires():
    state = client.process_state()
    assert child.judge(_request()) == child.SERVE
    assert child.judge(_request(nice=state["nice"] + 2)) == child.SERVE  # a fork can be niced further
    limits = state["limits"]
    soft, hard = limits["RLIMIT_NOFILE"]
    assert child.judge(_request(limits={**limits, "RLIMIT_NOFILE": (soft // 2, soft)})) == child.SERVE
    memory = {**limits, "RLIMIT_AS": (1 << 33, resource.RLIM_INFINITY)}
    assert child.judge(_request(limits=memory)) == child.RUN_HERE  # the fork has the server's memory already
    assert child.judge(_request(env={"PYTHONHASHSEED": "1"})) == child.RUN_HERE  # the isolated server ignores it
    assert child.judge(_request(env={"PYTHONPATH": "/x", "PYTHONUNBUFFERED": "1"})) == child.SERVE
    if hard != resource.RLIM_INFINITY:  # a hard limit above the server's: a server started without it can serve
        assert child.judge(_request(limits={**limits, "RLIMIT_NOFILE": (soft, hard + 1)})) == child.RETIRE
    assert child.judge(_request(nice=state["nice"] - 1)) == child.RETIRE


def _answers_with_a_child(delay_s: float, code: int, seen: list):
    """A peer that answers as a server does, with a real child of its own, after delay_s; what it read after the
    pid (GO or nothing) goes to seen."""

    def behaviour(conn):
        conn.recv(1 << 16)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            time.sleep(delay_s)
            conn.sendall(client.PID.pack(sleeper.pid))
            conn.settimeout(10)
            seen.append(conn.recv(1))
            conn.sendall(client.CODE.pack(code))
        except OSError as error:
            seen.append(error)
        finally:
            sleeper.kill()
            sleeper.wait()
            conn.close()

    return behaviour


def test_an_exit_code_no_process_has_is_nonsense(runtime):
    env = _env(runtime)
    seen = []
    listener = _fake_server(_address(env), _answers_with_a_child(0, 1000, seen))
    try:
        done = _client_of(env)
    finally:
        listener.close()
    assert seen == [client.GO]  # the pid was its child: the client went ahead
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "answered nonsense (exit code 1000)" in done.stderr


def test_a_pid_that_comes_after_the_timeout_gets_no_go(runtime):
    # The client has given up (one line, exit 2): a server that answers late must not run the command.
    env = _env(runtime, MOMENTCALC_SERVER_TIMEOUT="1")
    seen = []
    listener = _fake_server(_address(env), _answers_with_a_child(2.5, 0, seen))
    try:
        done = _client_of(env)
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        listener.close()
    assert done.returncode == 2 and "did not answer within 1 s" in done.stderr
    assert seen and seen[0] != client.GO  # nothing, or the connection's end: never GO


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff" * 64,  # a length of 4 GB: refused before anything is read or allocated
        client.LENGTH.pack(6) + b"\x00garb!",  # marshal of nothing, and no descriptors
        client.LENGTH.pack(3) + b"i\x01\x00",  # half an int
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_a_garbage_request_is_dropped_and_the_server_goes_on(server, garbage):
    env, address, pid = server
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.settimeout(loop.REQUEST_WAIT_S + 5)
    peer.connect(address)
    try:
        peer.sendall(garbage)
        start = time.monotonic()
        assert peer.recv(16) == b""  # closed without an answer
        assert time.monotonic() - start < 3  # at once: each of these is wrong from its first bytes
    finally:
        peer.close()
    assert not registry.ended(pid)
    assert _probe(env, "shape", "--i", "8", "--k", "3").returncode == 0


def test_managing_servers_loads_neither_numba_nor_the_server_loop(runtime):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "momentcalc", "server", "status"],
                          capture_output=True, text=True, env=_env(runtime), timeout=60)  # fmt: skip
    assert done.returncode == 0 and "not running" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "numba" not in imported and "momentcalc.server.loop" not in imported

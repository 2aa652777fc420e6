"""The warm server behind the console script (momentcalc_launch.py, momentcalc_client.py, momentcalc/server/).

A served command must be indistinguishable from one run in its own process: the same output, exit code and
one-line errors, in the client's folder and environment, and Ctrl-C must reach it. The server must be private to
its user and installation, and must leave when idle or asked to.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from table_refs import untimed

import momentcalc_client as client
import momentcalc_launch as launch
from momentcalc.server import loop, registry

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not client.supported(), reason="servers need Unix sockets and fork")

# Runs `momentcalc ARGV` through the running server only; exit 99 where none serves this installation, 98 where it
# sent the command back to run in its own process.
PROBE = (
    "import sys, momentcalc_client as C; s = C.connect(C.address() or ''); "
    "c = 99 if s is None else C.run_served(s, sys.argv[1:]); sys.exit(98 if c < 0 else c)"
)


def _env(runtime: Path, **extra) -> dict:
    return {**os.environ, "MOMENTCALC_SERVER": "1", "XDG_RUNTIME_DIR": str(runtime), **extra}


def _address(env) -> str:
    """The server address of the console script run with env."""
    code = "import momentcalc_client as C; print(C.address())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()


def _script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


def _run(args, env, served: bool, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """momentcalc ARGS through the server (the probe) or in a process of its own (python -m momentcalc)."""
    command = [sys.executable, "-c", PROBE] if served else [sys.executable, "-m", "momentcalc"]
    env = env if served else {**env, "MOMENTCALC_SERVER": "0"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _start(env) -> int:
    started = subprocess.run([_script(), "server", "start"], capture_output=True, text=True, env=env, timeout=600)
    assert started.returncode == 0 and "serving at" in started.stdout, started.stderr
    return registry.running_pid(started.stdout.split("serving at ")[1].strip())


@pytest.fixture
def short_tmp():
    """A folder with a short path: a Unix socket's path is at most ~100 bytes, pytest's tmp_path is long."""
    folder = tempfile.mkdtemp(prefix="mc-")
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    runtime = tempfile.mkdtemp(prefix="mc-")
    env = _env(Path(runtime), MOMENTCALC_SERVER_IDLE="300")
    pid = _start(env)
    yield env, pid
    subprocess.run([_script(), "server", "stop"], env=env, timeout=60)
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_served_estimate_is_the_same_as_one_in_its_own_process(server):
    env, _pid = server
    served, own = (_run(["estimate", "tanh | maxpool(k=2)", "--json"], env, s) for s in (True, False))
    assert served.returncode == own.returncode == 0 and served.stderr == own.stderr == ""
    assert untimed(json.loads(served.stdout)) == untimed(json.loads(own.stdout))  # Monte Carlo to the bit


def test_a_served_command_runs_in_the_clients_folder_and_environment(server, tmp_path):
    env, _pid = server
    shutil.copytree(REPO / "tables", tmp_path / "mine")
    colour = {**env, "FORCE_COLOR": "1"}  # rich reads it per console: colour codes though piped
    served, own = (_run(["tables", "show", "--dir", "mine"], colour, s, cwd=tmp_path) for s in (True, False))
    assert served.returncode == own.returncode == 0 and served.stdout == own.stdout
    plain = _run(["tables", "show", "--dir", "mine"], env, True, cwd=tmp_path)
    assert "\x1b[" in served.stdout and "\x1b[" not in plain.stdout
    missing = _run(["tables", "show", "--dir", "mine"], env, True, cwd=REPO)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no table at")


def test_bad_input_gets_its_one_line_and_exit_code_through_the_console_script(server):
    env, _pid = server
    done = subprocess.run([_script(), "estimate", "maxpol(k=3)"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: unknown op 'maxpol' in 'maxpol(k=3)'; did you mean 'maxpool' or 'minpool' or 'avgpool'?"
    ]
    listed = subprocess.run([_script(), "list"], capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0 and listed.stdout == _run(["list"], env, False).stdout


def _server_children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _long_run(env, pid: int, **popen) -> tuple[subprocess.Popen, int]:
    """A served estimate of a minute, and the server's child that runs it (Linux), once it runs."""
    args = ["estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", "5000000000"]
    earlier = _server_children(pid)  # the last test's commands may still be on their way out
    client = subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = _server_children(pid) - earlier
        if new:
            time.sleep(1.0)  # well into its run (the child reports its pid, then starts the command)
            return client, new.pop()
        time.sleep(0.05)
    raise AssertionError("the server started no child")


def _ctrl_c_as_at_a_terminal():
    # A suite started as a shell's background job (`pytest &`) hands its children SIGINT ignored, and the client
    # then rightly ignores Ctrl-C (as its state says): the tests that send one restore what a terminal gives.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the server's child in /proc")


@needs_proc
def test_ctrl_c_reaches_the_served_command(server):
    env, pid = server
    client, _child = _long_run(env, pid, preexec_fn=_ctrl_c_as_at_a_terminal)
    client.send_signal(signal.SIGINT)  # what the terminal sends to its foreground process
    out, err = client.communicate(timeout=60)
    assert client.returncode == 130 and out == ""
    assert err.splitlines() == ["error: interrupted"]
    assert _run(["shape", "--i", "8", "--k", "3", "--json"], env, True).returncode == 0  # it still serves


@needs_proc
def test_a_served_command_that_is_killed_ends_its_client_with_one_line(server):
    env, pid = server
    client, child = _long_run(env, pid)
    os.kill(child, signal.SIGKILL)
    out, err = client.communicate(timeout=60)
    assert client.returncode == 1 and out == ""
    assert err.splitlines() == ["error: the momentcalc server's process for this command ended without an exit code"]


def test_an_idle_server_leaves_and_removes_its_socket(short_tmp):
    address = str(short_tmp / "s.sock")
    listener = loop._listen(address)
    start = time.monotonic()
    loop.Server(address, 0.5, runner=None).serve(listener)  # returns once idle for 0.5 s (it looks every second)
    assert 0.5 <= time.monotonic() - start < 5
    listener.close()
    os.unlink(address)
    listener = loop._listen(address)
    os.unlink(address)  # `server stop` by hand, or a cleaned-up folder: it leaves too
    start = time.monotonic()
    loop.Server(address, 300, runner=None).serve(listener)
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- addresses, privacy and when a server is used


def test_the_stamp_changes_with_the_source_and_the_startup_environment(tmp_path, monkeypatch):
    package = tmp_path / "momentcalc"
    package.mkdir()
    (package / "ops.py").write_text("x = 1\n")
    monkeypatch.setattr(client, "_package_dir", lambda: str(package))
    for name in ("NUMBA_CACHE_DIR", "MOMENTCALC_KERNELS"):  # unset below: they must not be set to begin with
        monkeypatch.delenv(name, raising=False)
    first = client.stamp()
    monkeypatch.setenv("SOMETHING_ELSE", "1")  # read per command, from the client's environment
    assert client.stamp() == first
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))  # read when numba starts: another server
    assert client.stamp() != first
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert client.stamp() == first
    monkeypatch.setenv("MOMENTCALC_KERNELS", str(tmp_path))  # read when the kernels are declared: another server
    assert client.stamp() != first
    monkeypatch.delenv("MOMENTCALC_KERNELS")
    assert client.stamp() == first
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(client, "_site_packages", lambda: [str(site)])
    first = client.stamp()
    os.utime(site, ns=(1, 1))  # pip installed or removed a package (numba upgraded)
    assert client.stamp() != first
    first = client.stamp()
    os.utime(package / "ops.py", ns=(1, 1))  # an edit
    assert client.stamp() != first


def test_no_server_where_the_runtime_folder_is_open_to_others(short_tmp, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp))
    assert client.address().startswith(str(short_tmp / f"momentcalc-{os.getuid()}"))
    os.chmod(short_tmp / f"momentcalc-{os.getuid()}", 0o755)
    assert client.runtime_dir() is None and client.address() is None
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp / ("x" * 120)))  # too long for a socket's path
    assert client.address() is None


@pytest.mark.parametrize(
    "mode, terminal, starts", [("auto", False, False), ("auto", True, True), ("1", False, True), ("0", True, False)]
)
def test_a_server_starts_for_a_terminal_or_when_asked(short_tmp, monkeypatch, mode, terminal, starts):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp))
    monkeypatch.setenv("MOMENTCALC_SERVER", mode)
    started = []
    monkeypatch.setattr(client, "start_server", lambda path, after=None: started.append((path, after)))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: terminal, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal, raising=False)
    assert launch._served(["list"]) is None  # none runs: this command runs here
    assert started == ([(client.address(), os.getpid())] if starts else [])  # warms up once this process has ended
    assert launch._served(["server", "start"]) is None and len(started) == int(starts)  # managing is never served


def test_mode_reads_the_usual_spellings(monkeypatch):
    for value, mode in [("1", "on"), ("on", "on"), ("YES", "on"), ("0", "off"), ("off", "off"), ("", "auto")]:
        monkeypatch.setenv("MOMENTCALC_SERVER", value)
        assert client.mode() == mode


def test_a_server_started_by_a_command_waits_for_it_to_end():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    start = time.monotonic()
    loop._wait_for(sleeper.pid)  # it ends as a zombie here (this process has not collected it)
    assert time.monotonic() - start >= 1.0 and sleeper.poll() is not None


def _server(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([_script(), "server", *args], capture_output=True, text=True, env=env, timeout=60)


def _read_all(fd: int) -> bytes:
    """What a pseudo-terminal's leader has to read now."""
    import select

    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        data += os.read(fd, 1 << 16)
    return data


def test_a_command_at_a_terminal_starts_a_server_for_the_next_one_and_stop_stops_it(short_tmp):
    env = _env(short_tmp, MOMENTCALC_SERVER="auto", MOMENTCALC_SERVER_IDLE="60")
    address = _address(env)
    leader, terminal = os.openpty()  # stdin and stderr are a terminal, as for someone typing commands
    try:
        shape = [_script(), "shape", "--i", "8", "--k", "3"]
        done = subprocess.run(shape, stdin=terminal, stdout=terminal, stderr=terminal, env=env, timeout=60)
        assert done.returncode == 0
        shown = _read_all(leader).decode()
        notice = client.START_NOTICE.format(idle=60.0)
        assert shown.count(notice) == 1 and "momentcalc server stop --all" in notice  # said once, in one line
        deadline = time.monotonic() + 300  # it warms up after that command (compiling, in a new environment)
        while (sock := client.connect(address)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        sock.close()
        assert _run(["shape", "--i", "8", "--k", "3", "--json"], env, True).returncode == 0  # served
        assert " serving, " in _server(env, "status").stdout
        stop = _server(env, "stop")
        assert stop.returncode == 0 and stop.stdout.startswith("stopped the server")
        assert "not running" in _server(env, "status").stdout
        assert _run(["shape", "--i", "8", "--k", "3"], env, True).returncode == 99  # nobody serves now
        done = subprocess.run(shape, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0 and registry.running_pid(address) is None  # not a terminal: no start
        done = subprocess.run(shape, stdin=terminal, stdout=terminal, stderr=terminal, env=env, timeout=60)
        assert done.returncode == 0 and "warm server" not in _read_all(leader).decode()  # told once is enough
    finally:
        os.close(leader)
        os.close(terminal)
        _server(env, "stop")


@pytest.mark.parametrize(
    "argv, exit_code, warmed",
    [
        (["estimate", "tanh | maxpool(k=2)"], 0, True),
        (["estimate", "tanh | maxpool(k=2)"], 2, False),  # failed: nothing worth loading
        (["estimate", "tanh", "--samples", "1e9"], 0, False),  # with options: it may take long here
        (["list"], 0, False),
    ],
)
def test_the_server_loads_what_a_served_estimate_used(monkeypatch, argv, exit_code, warmed):
    ran = []
    monkeypatch.setattr(loop, "_run_quietly", lambda runner, argv: ran.append(argv))
    server = loop.Server("unused", 60, runner=None)
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({exit_code})"])
    server.children[process.pid] = (argv, time.monotonic())
    while server.children:  # reap() collects it with waitpid, as the server does its forked children
        server.reap()
        time.sleep(0.05)
    assert ran == ([argv] if warmed else [])
    server.warm_up(argv)
    assert ran == [argv]  # once, whoever asked first


def test_a_served_command_writes_files_with_the_clients_umask(server, tmp_path):
    env, _pid = server
    for mask, mode in [(0o077, 0o600), (0o022, 0o644)]:
        plot = tmp_path / f"c{mask:o}.svg"
        probe = [sys.executable, "-c", PROBE, "cmap", "relu", "--c", "0.5", "--plot", str(plot)]
        done = subprocess.run(probe, capture_output=True, text=True, env=env, timeout=120, umask=mask)
        assert done.returncode == 0, done.stderr
        assert plot.stat().st_mode & 0o777 == mode


_BECOME = """
import json, os, resource, sys
import momentcalc_client as client
from momentcalc.server import child
state = client.process_state()
state.update(argv=["list"], cwd=sys.argv[1], env={"ONLY": "this"}, umask=0o027, nice=os.nice(0) + 3,
             cpus=[min(os.sched_getaffinity(0))], limits={**state["limits"], "RLIMIT_NOFILE": (64, 64)})
child.become(state)
print(json.dumps([os.getcwd(), dict(os.environ), sys.argv, os.umask(0), os.nice(0), sorted(os.sched_getaffinity(0)),
                  resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_a_served_command_takes_on_the_clients_process_state(tmp_path):
    nice = os.nice(0)
    done = subprocess.run([sys.executable, "-c", _BECOME, str(tmp_path)], capture_output=True, text=True, check=True)
    cwd, env, argv, mask, niceness, cpus, files = json.loads(done.stdout)
    assert cwd == str(tmp_path) and env == {"ONLY": "this"} and argv == ["momentcalc", "list"]
    assert mask == 0o027 and niceness == nice + 3 and cpus == [min(os.sched_getaffinity(0))] and files == 64


def test_a_server_that_fails_to_start_says_where_its_log_is(short_tmp):
    # A numba that cannot be imported, first on the path: the server cannot warm up.
    broken = short_tmp / "broken"
    broken.mkdir()
    (broken / "numba.py").write_text("raise ImportError('numba is broken here, for a test')\n")
    env = _env(short_tmp, PYTHONPATH=str(broken))
    started = subprocess.run([_script(), "server", "start"], capture_output=True, text=True, env=env, timeout=120)
    log = client.log_path(_address(env))
    assert started.returncode == 2 and started.stdout == ""
    assert started.stderr.splitlines() == [f"error: the server stopped before it served (exit code 1); see {log}"]
    assert Path(log).read_text().startswith("Traceback (most recent call last):")  # why, for whoever looks
    status = subprocess.run([_script(), "server", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert f"log      {log}" in status.stdout and "not running" in status.stdout


@needs_proc
def test_a_served_command_stops_when_its_client_is_killed(server):
    env, pid = server
    client, child = _long_run(env, pid)
    client.kill()  # no Ctrl-C to forward: the server's child notices its client has gone
    client.communicate(timeout=60)
    deadline = time.monotonic() + 10  # its run would take a minute
    while not registry.ended(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry.ended(child)


@needs_proc
def test_a_served_command_ignores_what_its_client_was_told_to_ignore(server):
    env, pid = server
    ignore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a shell script
    client, child = _long_run(env, pid, preexec_fn=ignore_ctrl_c)
    client.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert client.poll() is None and not registry.ended(child)  # as one run in its own process: it goes on
    client.kill()
    client.communicate(timeout=60)


_NO_PID = """
import os, signal, socket, sys, threading
import momentcalc_client as launch

signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as at a terminal, whatever this was started with
ours, theirs = socket.socketpair()

forwarded = threading.Event()  # set once the launcher's own handler has taken a Ctrl-C
install = launch._signal.signal


def signal_noting_forward(signum, handler):
    if getattr(handler, "__name__", "") == "forward":
        inner = handler

        def handler(number, frame):
            inner(number, frame)
            forwarded.set()

        handler.__name__ = "forward"
    return install(signum, handler)


launch._signal.signal = signal_noting_forward


def read(count):
    data = b""
    while len(data) < count:  # a read stops where the descriptors were passed: read on
        chunk = theirs.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def server_that_takes_nothing(interrupt):
    (size,) = launch.LENGTH.unpack(read(launch.LENGTH.size))
    read(size)  # the whole request arrives; no child is started, no pid comes back
    if interrupt:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while waiting for the pid
        forwarded.wait(30)
    theirs.close()


interrupt = sys.argv[1] == "ctrl-c"
threading.Thread(target=server_that_takes_nothing, args=(interrupt,)).start()
before = signal.getsignal(signal.SIGINT)
code = launch.run_served(ours, ["list"])
print(code, signal.getsignal(signal.SIGINT) is before)
"""


@pytest.mark.parametrize("interrupt, code", [("none", "-1"), ("ctrl-c", "130")])
def test_a_command_no_server_took_runs_here_with_its_own_ctrl_c(interrupt, code):
    # With no pid back the console script runs the command itself: Ctrl-C must be its own again, not forwarded to
    # no one; a Ctrl-C that came while it waited stops it there, with the CLI's one line.
    done = subprocess.run(
        [sys.executable, "-c", _NO_PID, interrupt],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.stdout.split() == [code, "True"], done.stderr
    assert done.stderr == ("error: interrupted\n" if interrupt == "ctrl-c" else "")

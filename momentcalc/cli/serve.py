"""The warm server behind the console script (momentcalc_launch.py): numba, scipy and the kernels loaded once.

`python -m momentcalc_launch ADDRESS [PID]` (started by the console script or `momentcalc server start`):
1. takes ADDRESS.lock, so that one server serves an address; it holds its pid. Given the PID of the command that
   started it, waits until that command has ended;
2. warms up: runs `estimate relu` and `estimate 'maxpool(k=3)'` here, on one thread, output discarded, which
   imports everything and loads the kernels they use from numba's cache (compiling them on a first run);
3. listens on the Unix socket ADDRESS and forks a child per command. A fork starts with all of that loaded:
   a served `estimate relu` takes ~0.1 s of the child's time. The child runs the command as the console script
   does, on the client's stdin/stdout/stderr (passed with the request), in its folder and environment, with its
   umask, niceness, CPUs, resource limits and ignored signals, on the usual number of threads, and reports its pid
   first (the client forwards Ctrl-C to it) and its exit code last. If the client is killed, the child stops as
   on Ctrl-C;
4. after a served `estimate SPEC` succeeds, runs it here too (when it took under WARM_AGAIN_S), so that the next
   one finds its kernels loaded;
5. leaves after `idle` seconds without a command, on SIGTERM (`momentcalc server stop`), or when its socket file
   is gone, and removes its socket.

Forking is safe here because this process never starts a thread: it warms up on one thread (so the Monte Carlo
thread pool is never created here; each child makes its own), and the kernels run no numba parallel regions.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import marshal
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout

import momentcalc_launch as launch

WARM_UP = (["estimate", "relu"], ["estimate", "maxpool(k=3)"])
WARM_AGAIN_S = 10.0  # a served estimate that took longer is not run again here (the server would be busy as long)
REQUEST_MAX = 1 << 24  # bytes: an environment is a few KB
TICK_S = 1.0  # how often the loop looks at its children and its idle time
WAIT_TICK_S = 0.1
CLIENT_LEFT = signal.SIGUSR1  # what a served command's watcher sends it when its client has gone
WAIT_MAX_S = 600.0  # a command that runs longer shares the CPUs with the warm-up after all


def lock_path(address: str) -> str:
    return address + ".lock"


def running_pid(address: str) -> int | None:
    """The pid of the server holding address's lock, or None where none does."""
    try:
        with open(lock_path(address)) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = lock.read().strip()
                return int(text) if text.isdigit() else None
            return None
    except FileNotFoundError:
        return None


def _take_lock(address: str):
    """ADDRESS.lock, held for as long as this process lives; None where another server holds it."""
    lock = open(lock_path(address), "a+")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


_command: list = []


def _cli():
    """The click command that typer builds from the app's signatures, built once here: a command's 0.05 s."""
    if not _command:
        import typer.main

        from . import app

        _command.append(typer.main.get_command(app))
    return _command[0]


def _run_quietly(argv: list[str]) -> None:
    """Run a command here with its output discarded (warming up): it loads what the command uses."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        try:
            _cli()(args=argv, prog_name="momentcalc", standalone_mode=False)
        except Exception:  # noqa: BLE001 (a warm-up that fails only leaves less warm; SIGTERM's SystemExit passes)
            traceback.print_exc(file=sys.__stderr__)  # the server's log


def _one_thread() -> None:
    from ..estimators import driver

    driver.use_threads(1)  # no Monte Carlo thread pool in this process: it forks


def _listen(address: str) -> socket.socket:
    if os.path.exists(address):  # left by a server that was killed: the lock says none runs
        os.unlink(address)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    os.chmod(address, 0o600)
    listener.listen(64)
    return listener


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    while len(data) < launch.LENGTH.size or len(data) < launch.LENGTH.size + launch.LENGTH.unpack_from(data)[0]:
        if len(data) > REQUEST_MAX:
            raise ValueError("request too long")
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise ValueError("request cut short")
        data += chunk
    return marshal.loads(data[launch.LENGTH.size :]), list(fds)


def _same_user(conn: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):  # macOS: the private folder is the guard
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


def _reopen_std_streams() -> None:
    """Python's stdin/stdout/stderr over the client's descriptors, line-buffered where they are terminals."""
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        old = getattr(sys, name)
        mode = "r" if number == 0 else "w"
        buffering = 1 if os.isatty(number) else -1  # 1: by line
        stream = open(number, mode, buffering, old.encoding, old.errors, closefd=False)  # noqa: SIM115
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _become(request: dict) -> None:
    """Take on the client's environment, folder, argv, umask, niceness, CPUs and resource limits."""
    import resource

    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["momentcalc", *request["argv"]]
    os.umask(request["umask"])
    if request["nice"] > os.nice(0):  # only ever lower the priority (raising it needs privileges)
        os.nice(request["nice"] - os.nice(0))
    if request["cpus"] is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request["cpus"])
    for name, soft in request["limits"].items():
        which = getattr(resource, name)
        hard = resource.getrlimit(which)[1]
        if hard == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and soft <= hard):
            resource.setrlimit(which, (soft, hard))


def _stop_if_client_leaves(conn: socket.socket, reported: list) -> None:
    """Interrupt this command (as Ctrl-C would) if its client goes away before it has finished (killed)."""
    try:
        conn.recv(1)  # the client sends nothing more: this returns when it closes its end
    except OSError:
        pass
    if not reported:  # a client closes after its exit code, unless it was killed
        os.kill(os.getpid(), CLIENT_LEFT)  # not SIGINT: the client may have been told to ignore that


def _client_left(_signum, _frame):
    raise KeyboardInterrupt  # the command stops as on Ctrl-C: it closes what it opened, writes nothing half


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the client's command, run it, report; never returns."""
    from .. import processes
    from ..estimators import driver
    from ._util import EXIT_INTERRUPTED, exit_at_once

    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGCHLD"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in request["ignored"]:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(CLIENT_LEFT, _client_left)
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    _reopen_std_streams()
    reported = []

    def report(code: int) -> None:
        if not reported:
            reported.append(code)
            conn.sendall(launch.CODE.pack(code))

    conn.sendall(launch.PID.pack(os.getpid()))
    threading.Thread(target=_stop_if_client_leaves, args=(conn, reported), daemon=True).start()
    code = 1
    try:
        _become(request)
        driver.use_threads(processes.cpus())  # the client's CPUs, now this process's (at most NUMBA_NUM_THREADS)
        with exit_at_once(report):
            _cli()(args=request["argv"], prog_name="momentcalc")
        code = 0
    except SystemExit as done:  # a message to print, or a normal exit after a build with worker processes
        if isinstance(done.code, int | None):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
        if reported:  # a build with worker processes: run the exit handlers that release their semaphores
            atexit._run_exitfuncs()  # what a normal exit does; unwinding instead would run the server's frames
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling began
        print("error: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BaseException:  # noqa: BLE001 (a bug: the traceback the console script would print)
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    report(code)
    os._exit(code)


class Server:
    def __init__(self, address: str, idle: float):
        self.address = address
        self.idle = idle
        self.children: dict[int, tuple[list[str], float]] = {}
        self.warm: set[tuple[str, ...]] = set()
        self.last = time.monotonic()

    def warm_up(self, argv: list[str]) -> None:
        if tuple(argv) not in self.warm:
            self.warm.add(tuple(argv))
            _run_quietly(argv)

    def handle(self, conn: socket.socket, listener: socket.socket) -> None:
        fds: list[int] = []
        try:
            if not _same_user(conn):
                return
            request, fds = _read_request(conn)
            if len(fds) != 3:
                return
            pid = os.fork()
            if pid == 0:
                try:  # the child must never return into this loop
                    listener.close()
                    _child(conn, request, fds)
                finally:
                    os._exit(1)
            self.children[pid] = (list(request["argv"]), time.monotonic())
        except (OSError, ValueError, KeyError):
            pass  # the client runs the command itself when it gets no pid
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()

    def reap(self) -> None:
        """Collect ended children; warm up on the estimates they ran well."""
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 1
            if done:
                argv, started = self.children.pop(pid)
                self.last = time.monotonic()
                took = self.last - started
                if status == 0 and len(argv) == 2 and argv[0] == "estimate" and took < WARM_AGAIN_S:
                    self.warm_up(argv)

    def serve(self, listener: socket.socket) -> None:
        self.last = time.monotonic()  # idle from now: the warm-up may have taken longer than `idle`
        while os.path.exists(self.address):
            self.reap()
            if not self.children and time.monotonic() - self.last > self.idle:
                return
            ready, _, _ = select.select([listener], [], [], TICK_S)
            if ready:
                conn, _ = listener.accept()
                self.handle(conn, listener)


def _stop(_signum, _frame):
    raise SystemExit(0)


def _ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid is someone else's now
        return True
    try:  # Linux: a zombie has ended too (its parent has not collected it yet)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _wait_for(pid: int) -> None:
    """Until process pid has ended (the command that started this server: it must not share the CPUs with us)."""
    deadline = time.monotonic() + WAIT_MAX_S
    while not _ended(pid) and time.monotonic() < deadline:
        time.sleep(WAIT_TICK_S)


def serve(address: str, idle: float, after: int | None = None) -> None:
    lock = _take_lock(address)
    if lock is None:
        return  # another server has this address
    signal.signal(signal.SIGTERM, _stop)
    if after is not None:
        _wait_for(after)
    server = Server(address, idle)
    _one_thread()
    for argv in WARM_UP:
        server.warm_up(list(argv))
    gc.freeze()  # what the warm-up made stays out of the children's collections (fewer copied pages)
    os.chdir("/")  # hold no user folder (children move to their client's)
    listener = _listen(address)
    try:
        server.serve(listener)
    finally:
        listener.close()
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        lock.close()

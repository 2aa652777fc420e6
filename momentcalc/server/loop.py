"""The warm server's process: warm up, then accept commands and fork a child for each (child.py).

`serve(address, idle, after, runner)` (momentcalc_launch.serve_here, in a process started with python -I):
1. takes the installation's lock (registry.take: an older version's server is stopped; one of this version
   already running is left alone and this process leaves). Given the pid of the command that started it, waits
   until that command has ended;
2. warms up: runs `estimate relu` and `estimate 'maxpool(k=3)'` by every method (WARM_UP) here, on one thread,
   output discarded, which imports everything and loads the kernels they use from numba's cache (compiling them
   on a first run);
3. listens on the Unix socket `address`; reads every connection's request without blocking, each within
   REQUEST_WAIT_S (a client that sends nothing holds up no one) and REQUEST_MAX bytes, from this user only,
   and forks a child per complete request (child.py), unless judge() sends it back to its client;
4. after a served `estimate SPEC` succeeds, runs it here too (when it took under WARM_AGAIN_S), so that the next
   one finds its kernels loaded;
5. leaves after `idle` seconds without a command, on SIGTERM (`momentcalc server stop`, or a newer server), when
   its socket file is gone or the installation has changed (checked every STAMP_EVERY_S), or when a client's
   state shows it is more restricted than its user's commands; it removes its socket.

Forking is safe here because this process never starts a thread: it warms up on one thread (so the Monte Carlo
thread pool is never created here; each child makes its own), and the kernels run no numba parallel regions.
"""

from __future__ import annotations

import gc
import marshal
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field

import momentcalc_client as client

from ..estimators import driver
from . import child, registry

# --method all: auto samples only where its exact methods do not check each other, and loads no numba for these.
WARM_UP = (["estimate", "relu", "--method", "all"], ["estimate", "maxpool(k=3)", "--method", "all"])
WARM_AGAIN_S = 5.0  # a served estimate that took longer is not run again here (the server would be busy as long)
REQUEST_MAX = 1 << 20  # bytes: an environment is a few KB
REQUEST_WAIT_S = 5.0  # a connection that has not sent its whole request by then is closed
PENDING_MAX = 64  # connections still sending their request; more are closed at once
TICK_S = 1.0  # how often the loop looks at its children and its idle time
STAMP_EVERY_S = 5.0  # how often it checks that the installation is the one it serves
WAIT_TICK_S = 0.1
WAIT_MAX_S = 600.0  # a command that runs longer shares the CPUs with the warm-up after all


def _run_quietly(runner, argv: list[str]) -> None:
    """Run a command here with its output discarded (warming up): it loads what the command uses."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        try:
            runner.warm(argv)
        except Exception:  # noqa: BLE001 (a warm-up that fails only leaves less warm; SIGTERM's SystemExit passes)
            traceback.print_exc(file=sys.__stderr__)  # the server's log


def _listen(address: str) -> socket.socket:
    if os.path.exists(address):  # left by a server that was killed: the lock says none runs
        os.unlink(address)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    os.chmod(address, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    return listener


def _same_user(conn: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):  # macOS: the private folder is the guard
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


@dataclass
class Pending:
    """A connection whose request has not all arrived."""

    conn: socket.socket
    deadline: float
    data: bytes = b""
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.conn.close()

    def read(self) -> dict | None:
        """Read what has come; the request once complete. ValueError for a request no client sends."""
        data, fds, _flags, _addr = socket.recv_fds(self.conn, 1 << 16, 3)
        self.fds += fds
        if not data:
            raise ValueError("closed before its request was complete")
        self.data += data
        if len(self.fds) > 3 or len(self.data) > REQUEST_MAX + client.LENGTH.size:
            raise ValueError("request too long")
        size = client.LENGTH.size
        if len(self.data) >= size and client.LENGTH.unpack_from(self.data)[0] > REQUEST_MAX:
            raise ValueError("request too long")  # said before it is sent: nothing more is read
        if len(self.data) < size or len(self.data) < size + client.LENGTH.unpack_from(self.data)[0]:
            return None
        if len(self.fds) != 3 or len(self.data) != size + client.LENGTH.unpack_from(self.data)[0]:
            raise ValueError("not a request")
        try:
            request = marshal.loads(self.data[size:])
            if not isinstance(request, dict) or not isinstance(request["argv"], list):
                raise ValueError("not a request")
        except Exception as error:  # noqa: BLE001 (marshal raises what it likes on bytes it did not write)
            raise ValueError("not a request") from error
        return request


class Server:
    def __init__(self, address: str, idle: float, runner, stamp: str = ""):
        self.address = address
        self.idle = idle
        self.runner = runner
        self.stamp = stamp
        self.children: dict[int, tuple[list[str], float]] = {}
        self.pending: list[Pending] = []
        self.warm: set[tuple[str, ...]] = set()
        self.last = time.monotonic()
        self.retiring = False
        self.closing: list = []  # what a child must not hold (the listener, the lock)

    def warm_up(self, argv: list[str]) -> None:
        if tuple(argv) not in self.warm:
            self.warm.add(tuple(argv))
            _run_quietly(self.runner, argv)

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if len(self.pending) >= PENDING_MAX or not _same_user(conn):
                conn.close()
                continue
            conn.setblocking(False)
            self.pending.append(Pending(conn, time.monotonic() + REQUEST_WAIT_S))

    def receive(self, pending: Pending) -> None:
        """Read from one connection; once its request is complete, answer it."""
        try:
            request = pending.read()
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError, struct.error):
            self.pending.remove(pending)
            pending.close()
            return
        if request is not None:
            self.pending.remove(pending)
            try:
                pending.conn.setblocking(True)
                self.answer(pending.conn, request, pending.fds)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # the client runs the command itself when it gets no pid
            finally:
                pending.close()

    def answer(self, conn: socket.socket, request: dict, fds: list[int]) -> None:
        if request.get("stamp") != self.stamp:
            conn.sendall(client.PID.pack(client.STALE))  # another version: it starts its own, which stops this one
            return
        verdict = child.judge(request)
        if verdict != child.SERVE:
            self.retiring = verdict == child.RETIRE
            conn.sendall(client.PID.pack(client.STALE if self.retiring else client.RUN_HERE))
            return
        pid = os.fork()
        if pid == 0:
            try:  # the child must never return into this loop
                for held in self.closing:
                    held.close()
                for other in self.pending:
                    other.close()
                child.run(conn, request, fds, self.runner)
            finally:
                os._exit(1)
        self.children[pid] = (list(request["argv"]), time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self.pending if p.deadline < now]:
            self.pending.remove(pending)
            pending.close()

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

    def _installation_changed(self, checked: list[float]) -> bool:
        if not self.stamp or time.monotonic() - checked[0] < STAMP_EVERY_S:
            return False
        checked[0] = time.monotonic()
        return client.stamp() != self.stamp

    def serve(self, listener: socket.socket) -> None:
        self.last = time.monotonic()  # idle from now: the warm-up may have taken longer than `idle`
        checked = [time.monotonic()]
        while os.path.exists(self.address) and not self.retiring and not self._installation_changed(checked):
            self.reap()
            self.expire()
            if not self.children and not self.pending and time.monotonic() - self.last > self.idle:
                return
            wait = min([TICK_S, *(p.deadline - time.monotonic() for p in self.pending)])
            ready, _, _ = select.select([listener, *(p.conn for p in self.pending)], [], [], max(0.0, wait))
            for pending in [p for p in self.pending if p.conn in ready]:
                self.receive(pending)
            if listener in ready:
                self.accept(listener)

    def close_pending(self) -> None:
        for pending in self.pending:
            pending.close()
        self.pending = []


def _stop(_signum, _frame):
    raise SystemExit(0)


def _wait_for(pid: int) -> None:
    """Until process pid has ended (the command that started this server: it must not share the CPUs with us)."""
    deadline = time.monotonic() + WAIT_MAX_S
    while not registry.ended(pid) and time.monotonic() < deadline:
        time.sleep(WAIT_TICK_S)


def serve(address: str, idle: float, after: int | None = None, runner=None) -> None:
    stamp = client.stamp()
    signal.signal(signal.SIGTERM, _stop)
    lock = registry.take(address, stamp)
    if lock is None:
        return  # a server of this version runs, or the older one would not leave
    if after is not None:
        _wait_for(after)
    server = Server(address, idle, runner, stamp)
    driver.use_threads(1)  # no Monte Carlo thread pool in this process: it forks
    for argv in WARM_UP:
        server.warm_up(list(argv))
    gc.freeze()  # what the warm-up made stays out of the children's collections (fewer copied pages)
    os.chdir("/")  # hold no user folder (children move to their client's)
    listener = _listen(address)
    server.closing = [listener, lock]
    try:
        server.serve(listener)
    finally:
        server.close_pending()
        listener.close()
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        lock.close()

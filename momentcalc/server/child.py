"""A served command's process: forked from the warm server, it becomes the client's command and runs it.

It takes on what a process of its own would have inherited from the client's shell: stdin/stdout/stderr (passed
over the socket), folder, environment, argv, umask, niceness, CPUs, every resource limit (soft and hard) and
ignored signals; it holds no descriptor of the server's. What a fork cannot take on, judge() sends back to the
client to run in its own process: a memory limit (the fork already has the warm server's memory), another stack
limit (set when a process starts), a niceness or a hard limit below the server's own (the server then leaves, so
that the next command starts one that can serve it).
"""

from __future__ import annotations

import atexit
import os
import resource
import signal
import sys
import threading
import traceback

import momentcalc_client as client

from .. import processes
from ..estimators import driver

EXIT_INTERRUPTED = 130  # as the CLI's, and a shell's after SIGINT
CLIENT_LEFT = signal.SIGUSR1  # what a served command's watcher sends it when its client has gone
GO_WAIT_S = 10.0  # the client sends GO as soon as it has the pid
SERVE, RUN_HERE, RETIRE = "serve", "run here", "retire"
# Set by a process's history, not by setrlimit: a fork of the warm server cannot have a command's own limit.
FORK_BOUND = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_RSS")


def _above(a: int, b: int) -> bool:
    """Whether limit a is looser than b (RLIM_INFINITY is the loosest)."""
    infinite = resource.RLIM_INFINITY
    return a != b and (a == infinite or (b != infinite and a > b))


def judge(request: dict) -> str:
    """Whether this process's fork can take on the client's process state (SERVE), or the client runs the command
    itself (RUN_HERE), or this server is more restricted than its user's commands and should leave (RETIRE)."""
    if request["nice"] < os.nice(0):
        return RETIRE  # a fork can only be niced further
    verdict = SERVE
    for name, (soft, hard) in request["limits"].items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        mine = resource.getrlimit(which)
        if _above(hard, mine[1]):
            return RETIRE  # hard limits only go down
        if name in FORK_BOUND and soft != resource.RLIM_INFINITY or name == "RLIMIT_STACK" and (soft, hard) != mine:
            verdict = RUN_HERE
    unserved = client.unserved_variables(request["env"])
    return RUN_HERE if unserved else verdict


def become(request: dict) -> None:
    """Take on the client's environment, folder, argv, umask, niceness, CPUs and resource limits."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["momentcalc", *request["argv"]]
    os.umask(request["umask"])
    if request["nice"] > os.nice(0):  # judge() saw to it that the client's is never below
        os.nice(request["nice"] - os.nice(0))
    if request["cpus"] is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request["cpus"])
    for name, (soft, hard) in request["limits"].items():
        which = getattr(resource, name, None)
        if which is not None and resource.getrlimit(which) != (soft, hard) and name != "RLIMIT_STACK":
            resource.setrlimit(which, (soft, hard))  # ValueError where it cannot: the client runs it itself
    sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))


def _reopen_std_streams(unbuffered: bool) -> None:
    """Python's stdin/stdout/stderr over the client's descriptors, line-buffered where they are terminals."""
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        old = getattr(sys, name)
        mode = "r" if number == 0 else "w"
        buffering = 1 if os.isatty(number) or number == 2 else -1  # 1: by line (stderr: as Python's own)
        stream = open(number, mode, buffering, old.encoding, old.errors, closefd=False)  # noqa: SIM115
        if unbuffered and number:
            stream.reconfigure(write_through=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _stop_if_client_leaves(conn, reported: list) -> None:
    """Interrupt this command (as Ctrl-C would) if its client goes away before it has finished (killed)."""
    try:
        conn.recv(1)  # the client sends nothing more: this returns when it closes its end
    except OSError:
        pass
    if not reported:  # a client closes after its exit code, unless it was killed
        os.kill(os.getpid(), CLIENT_LEFT)  # not SIGINT: the client may have been told to ignore that


def _client_left(_signum, _frame):
    raise KeyboardInterrupt  # the command stops as on Ctrl-C: it closes what it opened, writes nothing half


def _signals(ignored: list[str]) -> None:
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGCHLD"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ignored:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(CLIENT_LEFT, _client_left)


def _got_go(conn) -> bool:
    conn.settimeout(GO_WAIT_S)
    try:
        return conn.recv(1) == client.GO
    except OSError:
        return False
    finally:
        conn.settimeout(None)


def _finalized(code: int) -> int:
    """The exit code after an uncaught exception, as Python's own exit gives it: 120 where stdout cannot be
    flushed (a full disk, `ulimit -f`), else code."""
    try:
        sys.stdout.flush()
    except OSError:
        traceback.print_exc()
        return 120
    return code


def run(conn, request: dict, fds: list[int], runner) -> None:
    """In the forked child: become the client's command, run it, report; never returns."""
    _signals(request["ignored"])
    try:
        become(request)
    except (OSError, ValueError, KeyError, TypeError):  # a folder that is gone, a limit out of reach
        conn.sendall(client.PID.pack(client.RUN_HERE))
        os._exit(0)
    conn.sendall(client.PID.pack(os.getpid()))
    if not _got_go(conn):  # the client gave up waiting and runs the command itself
        os._exit(0)
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    _reopen_std_streams(bool(request["env"].get("PYTHONUNBUFFERED")))
    reported = []

    def report(code: int) -> None:
        if not reported:
            reported.append(code)
            conn.sendall(client.CODE.pack(code))

    threading.Thread(target=_stop_if_client_leaves, args=(conn, reported), daemon=True).start()
    code = 1
    try:
        driver.use_threads(processes.cpus())  # the client's CPUs, now this process's (at most NUMBA_NUM_THREADS)
        runner.run(request["argv"], report)
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
    except BaseException:  # noqa: BLE001 (a bug, or a write that failed: what the console script would print)
        sys.excepthook(*sys.exc_info())
        code = _finalized(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    report(code)
    os._exit(code)

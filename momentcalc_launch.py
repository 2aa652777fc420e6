"""The `momentcalc` console script: hand the command to this installation's warm server where one runs, else run it.

A warm command spends nearly all its time starting up: importing numba and scipy and loading compiled kernels
(1.5 s at best, `bench/startup.py --floor`) against 0.05-0.1 s of computing. A server process
(momentcalc/cli/serve.py) keeps all of that loaded and forks a child per command. The child takes this process's
stdin, stdout and stderr (passed over a Unix socket, so a terminal stays a terminal), its working directory,
environment and arguments, and runs the command as the console script would; this process forwards signals
(Ctrl-C) to it and leaves with its exit code.

When a server is used (MOMENTCALC_SERVER):
- ``auto`` (the default): if one is running; one is started in the background when stdin and stderr are
  terminals (someone typing commands), never for scripts, pipes or CI;
- ``1``: always, starting one when none runs; ``0``: never.
A server serves one installation as it is: its address is a hash of the Python, the package's source files
(path, size, mtime) and the environment read at import time (NUMBA_*, MOMENTCALC_KERNELS, PYTHON*, locale), so
an edit, an upgrade or another MOMENTCALC_KERNELS gets a server of its own. It leaves after MOMENTCALC_SERVER_IDLE
seconds (600) without a command. `momentcalc server status|start|stop` manage it.

This module lives outside the package on purpose: importing anything inside `momentcalc` runs its __init__,
which fills the op registry (0.09 s, a third of a served command's budget). It imports only the standard library.
"""

from __future__ import annotations

# The C modules behind `socket` and `signal`: their Python wrappers import enum, 10 ms of a served command's
# ~60 ms in this process (Python itself takes 25 ms); nothing here needs more than the C layer gives.
import _signal
import os


def _leave(_signum, _frame):
    # Ctrl-C before a command runs (imports, finding a server): nothing is open yet, so leave at once as the CLI
    # does (error: interrupted, 130), not with a KeyboardInterrupt cut into an import (a traceback, or a module
    # left half-imported). The CLI puts its own handler in place once a command starts (cli/_interrupts.py).
    try:
        os.write(2, b"error: interrupted\n")
    finally:
        os._exit(130)


# The console script only (the server, run as __main__, has handlers of its own); not where Ctrl-C is ignored.
if __name__ != "__main__" and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _leave)

# After the handler: Ctrl-C in these imports leaves as above, not with a traceback.
import _socket  # noqa: E402
import marshal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402

MODE_VARIABLE = "MOMENTCALC_SERVER"
IDLE_VARIABLE = "MOMENTCALC_SERVER_IDLE"
IDLE_DEFAULT_S = 600.0
# Read when Python, numba, momentcalc's kernels (MOMENTCALC_KERNELS) or the locale start up, so a server serves
# only clients that agree on them.
STARTUP_VARIABLES = ("NUMBA_", "MOMENTCALC_KERNELS", "PYTHON", "LANG", "LC_")
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
PID = struct.Struct("!q")  # the server's first answer: the pid of the child running the command
CODE = struct.Struct("!i")  # its last: the command's exit code
SOCKET_PATH_MAX = 100  # bytes: a Unix socket's path is at most 104 (macOS) or 108 (Linux)
LENGTH = struct.Struct("!I")  # before a request: its length in bytes


def supported() -> bool:
    """Whether this system can pass file descriptors over Unix sockets and fork (Linux, macOS; not Windows)."""
    return hasattr(_socket, "AF_UNIX") and hasattr(_socket, "SCM_RIGHTS") and hasattr(os, "fork")


def mode() -> str:
    """'auto', 'on' or 'off', from MOMENTCALC_SERVER."""
    value = os.environ.get(MODE_VARIABLE, "auto").strip().lower()
    return {"1": "on", "on": "on", "yes": "on", "0": "off", "off": "off", "no": "off"}.get(value, "auto")


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(IDLE_VARIABLE, IDLE_DEFAULT_S)))
    except ValueError:
        return IDLE_DEFAULT_S


def _package_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "momentcalc")  # installed side by side


def _site_packages() -> list[str]:
    """The folders pip installs this environment's packages into (without importing sysconfig: 5 ms)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [os.path.join(sys.prefix, "lib", version, "site-packages"), os.path.join(sys.prefix, "Lib", "site-packages")]


def stamp() -> str:
    """A checksum of what a server's answers depend on besides the request: the Python, the source, the startup env."""
    # The interpreter itself (python and python3 in a venv are one) and the environment (its site-packages).
    parts = [os.path.realpath(sys.executable), sys.prefix, sys.version, __file__, _package_dir()]
    for root, dirs, files in os.walk(_package_dir()):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith((".py", ".json"))):
            info = os.stat(os.path.join(root, name))
            parts.append(f"{root}/{name} {info.st_size} {info.st_mtime_ns}")
    info = os.stat(__file__)
    parts.append(f"{info.st_size} {info.st_mtime_ns}")
    for folder in _site_packages():  # installing or upgrading any package (numba, scipy) changes its listing
        try:
            parts.append(f"{folder} {os.stat(folder).st_mtime_ns}")
        except OSError:
            pass
    parts += [f"{key}={os.environ[key]}" for key in sorted(os.environ) if key.startswith(STARTUP_VARIABLES)]
    # Two 32-bit checksums, not a cryptographic hash (hashlib loads OpenSSL, 5 ms): the address names a version of
    # an installation inside the user's private folder; it guards against nothing.
    data = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def runtime_dir() -> str | None:
    """This user's private folder for server sockets, or None where none can be had safely."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base:
        import tempfile  # 5 ms: only where the session has no runtime folder

        base = tempfile.gettempdir()
    path = os.path.join(base, f"momentcalc-{os.getuid()}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    # Whoever can connect can run commands as this user: the folder must be ours and closed to others.
    private = info.st_uid == os.getuid() and not info.st_mode & 0o077 and os.path.isdir(path)
    return path if private and not os.path.islink(path) else None


def address() -> str | None:
    """Where this installation's server listens (a Unix socket), or None where servers can't be used."""
    folder = runtime_dir() if supported() else None
    path = None if folder is None else os.path.join(folder, f"{stamp()}.sock")
    return path if path is not None and len(os.fsencode(path)) < SOCKET_PATH_MAX else None


def connect(path: str):
    """A socket connected to the server at path, or None where none listens."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:  # none listening (no file, or one a killed server left)
        sock.close()
        return None
    return sock


def start_server(path: str, after: int | None = None):
    """Start a server for `path` in the background, in a session of its own, detached from this terminal.

    With `after` (a pid), it warms up only once that process has ended: the command that started it runs at
    full speed (a table build uses every CPU).
    """
    import subprocess

    quiet = subprocess.DEVNULL
    command = [sys.executable, "-m", "momentcalc_launch", path, *([] if after is None else [str(after)])]
    with open(log_path(path), "w") as log:  # what went wrong, where something did (`momentcalc server status`)
        return subprocess.Popen(command, stdin=quiet, stdout=quiet, stderr=log, start_new_session=True, close_fds=True)


def log_path(path: str) -> str:
    return path + ".log"


def _receive(sock, form: struct.Struct) -> int | None:
    data = b""
    while len(data) < form.size:
        chunk = sock.recv(form.size - len(data))
        if not chunk:
            return None
        data += chunk
    return form.unpack(data)[0]


LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE")


def process_state() -> dict:
    """What a command inherits from the shell besides its environment: umask, niceness, CPUs, resource limits.

    A served command takes them on (`ulimit -v`, `nice`, `taskset` apply to it as to one run here).
    """
    import resource  # 1 ms

    mask = os.umask(0o077)
    os.umask(mask)
    limits = {name: resource.getrlimit(getattr(resource, name))[0] for name in LIMITS if hasattr(resource, name)}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    # Signals the shell told this process to ignore (`cmd &` in a script ignores Ctrl-C): the child ignores them too.
    ignored = [name for name in FORWARDED_SIGNALS if _signal.getsignal(getattr(_signal, name)) == _signal.SIG_IGN]
    return {"umask": mask, "nice": os.nice(0), "cpus": cpus, "limits": limits, "ignored": ignored}


def run_served(sock, argv: list[str]) -> int:
    """Have the server run `momentcalc ARGV` with this process's stdin/stdout/stderr; its exit code."""
    # marshal: built in and fast; both ends run the same Python (the address says so)
    state = process_state()
    request = marshal.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), **state})
    data = LENGTH.pack(len(request)) + request
    child: list[int | None] = [None]
    pending: list[int] = []

    def forward(signum, _frame):  # Ctrl-C reaches this process (the terminal's foreground), not the child
        if child[0] is None:
            pending.append(signum)
        else:
            os.kill(child[0], signum)

    # Before the request goes: from then on the command may run, and a Ctrl-C must reach it.
    forwarded = [getattr(_signal, name) for name in FORWARDED_SIGNALS if name not in state["ignored"]]
    before = {signum: _signal.signal(signum, forward) for signum in forwarded}
    try:
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("3i", 0, 1, 2))])
        if sent < len(data):  # (sending nothing more to a server that has read it all and closed: EPIPE)
            sock.sendall(data[sent:])
        child[0] = _receive(sock, PID)
    finally:
        if child[0] is None:  # no command runs there: this process runs it, with its own Ctrl-C
            for signum, handler in before.items():
                _signal.signal(signum, handler)
    if child[0] is None:
        if pending:  # Ctrl-C before the server took the command: it ran nowhere, and stops here, as the CLI does
            sys.stderr.write("error: interrupted\n")
            return 130
        return -1
    for signum in pending:
        os.kill(child[0], signum)
    code = _receive(sock, CODE)
    if code is None:  # the child ended without reporting (killed): say so as a shell would
        sys.stderr.write("error: the momentcalc server's process for this command ended without an exit code\n")
        return 1
    return code


def _served(argv: list[str]) -> int | None:
    """The exit code of `momentcalc ARGV` run by a server, or None to run it in this process."""
    chosen = mode()
    if chosen == "off" or (argv[:1] == ["server"]) or not supported():
        return None
    try:
        path = address()
    except OSError:
        return None
    if path is None:
        return None
    sock = connect(path)
    if sock is None:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        if chosen == "on" or interactive:
            start_server(path, after=os.getpid())  # for the next command; it warms up once this one has run here
        return None
    try:
        code = run_served(sock, argv)
    except OSError:  # e.g. a closed stdin can't be passed
        return None
    finally:
        sock.close()
    return None if code < 0 else code


def main() -> None:
    """Console-script entry point (`momentcalc`)."""
    code = _served(sys.argv[1:])
    if code is None:
        from momentcalc.cli import main as run_here

        run_here()
    else:
        sys.stdout.flush()
        os._exit(code)


if __name__ == "__main__":  # the server (start_server); not when a worker process of a served build imports it
    from momentcalc.cli.serve import serve

    serve(sys.argv[1], idle_seconds(), after=int(sys.argv[2]) if len(sys.argv) > 2 else None)

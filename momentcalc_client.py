"""The warm server's client side and its addresses: what the `momentcalc` script (momentcalc_launch.py), the
`momentcalc server` command and the server itself (momentcalc/server/) share.

Standard library only, and outside the package: importing anything inside `momentcalc` runs its __init__, which
fills the op registry (0.09 s, a third of a served command's budget). It imports neither momentcalc nor the
launcher (tests/test_layers.py checks it).

One server per installation (the Python and this folder): it listens on INSTALL.sock in the user's private runtime
folder and holds INSTALL.lock, which names its pid and its stamp (a checksum of the sources and of the start-up
environment). A command whose stamp differs (an edit, an upgrade, another MOMENTCALC_KERNELS) is not served by
it: the command runs in its own process and starts a new server, which stops the old one.

A command, over one connection (same user only):
1. client -> server: LENGTH, then the marshalled request (argv, cwd, environment, stamp, process state), with the
   client's stdin, stdout and stderr passed as SCM_RIGHTS;
2. server -> client: PID of the child that will run it, or RUN_HERE (a process state the server cannot take on:
   the client runs the command itself) or STALE (run it yourself and start a server of your own);
3. client -> server: GO, one byte: the client no longer runs the command itself. A child that gets no GO leaves
   without touching the client's streams, so a command never runs twice;
4. server -> client: CODE, the command's exit code.
"""

from __future__ import annotations

# The C modules behind `socket` and `signal`: their Python wrappers import enum, 10 ms of a served command's
# ~60 ms in this process (Python itself takes 25 ms); nothing here needs more than the C layer gives.
import _signal
import _socket
import marshal
import os
import struct
import sys
import zlib

MODE_VARIABLE = "MOMENTCALC_SERVER"
IDLE_VARIABLE = "MOMENTCALC_SERVER_IDLE"
TIMEOUT_VARIABLE = "MOMENTCALC_SERVER_TIMEOUT"
IDLE_DEFAULT_S = 600.0
# How long a client waits to connect and for the server's first answer; a server forks at once, unless it is
# loading a spec's kernels after a served estimate (at most ~WARM_AGAIN_S, momentcalc/server/loop.py).
TIMEOUT_DEFAULT_S = 10.0
# Read when numba, momentcalc's kernels (MOMENTCALC_KERNELS), the locale or the server's path (PYTHONPATH) start
# up, so a server serves only clients that agree on them. (The isolated server ignores the other PYTHON* variables.)
STARTUP_VARIABLES = ("NUMBA_", "MOMENTCALC_KERNELS", "PYTHONPATH", "LANG", "LC_")
# The server runs isolated (python -I): it ignores PYTHON* variables. A client that sets one runs in its own
# process, except these, which the server's child takes on (PYTHONPATH: the client's sys.path is the server's).
SERVED_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONSAFEPATH")
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
LENGTH = struct.Struct("!I")  # before a request: its length in bytes
PID = struct.Struct("!q")  # the server's first answer
CODE = struct.Struct("!i")  # its last: the command's exit code
GO = b"g"
RUN_HERE = 0
STALE = -1
PID_MAX = 1 << 22  # Linux's largest pid_max
SOCKET_PATH_MAX = 100  # bytes: a Unix socket's path is at most 104 (macOS) or 108 (Linux)
START_NOTICE = (
    "momentcalc: started a warm server for the next commands (about 200 MB, it leaves after {idle:g} s "
    "unused); stop it: momentcalc server stop --all; never start one: export MOMENTCALC_SERVER=0"
)
# Started with python -I (no working folder, no user site, no PYTHON* variables) and the client's sys.path, less
# any entry that names the working folder: it imports only what the command would import in its own process.
BOOTSTRAP = (
    "import sys; sys.path[:] = sys.argv[3:]; import momentcalc_launch; "
    "momentcalc_launch.serve_here(sys.argv[1], int(sys.argv[2]) or None)"
)


class ServerError(Exception):
    """A server that does not answer, or answers nonsense: the command fails with this one line (exit 2)."""


def supported() -> bool:
    """Whether this system can pass file descriptors over Unix sockets and fork (Linux, macOS; not Windows)."""
    return hasattr(_socket, "AF_UNIX") and hasattr(_socket, "SCM_RIGHTS") and hasattr(os, "fork")


def mode() -> str:
    """'auto', 'on' or 'off', from MOMENTCALC_SERVER."""
    value = os.environ.get(MODE_VARIABLE, "auto").strip().lower()
    return {"1": "on", "on": "on", "yes": "on", "0": "off", "off": "off", "no": "off"}.get(value, "auto")


def _seconds(variable: str, default: float, least: float) -> float:
    try:
        return max(least, float(os.environ.get(variable, default)))
    except ValueError:
        return default


def idle_seconds() -> float:
    return _seconds(IDLE_VARIABLE, IDLE_DEFAULT_S, 1.0)


def timeout_seconds() -> float:
    return _seconds(TIMEOUT_VARIABLE, TIMEOUT_DEFAULT_S, 0.1)


def install_dir() -> str:
    """The folder this file and the package were installed into (site-packages, or a checkout)."""
    return os.path.dirname(os.path.abspath(__file__))


def _package_dir() -> str:
    return os.path.join(install_dir(), "momentcalc")  # installed side by side


def _site_packages() -> list[str]:
    """The folders pip installs this environment's packages into (without importing sysconfig: 5 ms)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [os.path.join(sys.prefix, "lib", version, "site-packages"), os.path.join(sys.prefix, "Lib", "site-packages")]


def _checksum(parts: list[str]) -> str:
    # Two 32-bit checksums, not a cryptographic hash (hashlib loads OpenSSL, 5 ms): they name a version of an
    # installation inside the user's private folder; they guard against nothing.
    data = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def install_key() -> str:
    """Names this installation (the interpreter, the environment, this folder): one server for each."""
    return _checksum([os.path.realpath(sys.executable), sys.prefix, install_dir()])


def stamp() -> str:
    """A checksum of what a server's answers depend on besides the request: the Python, the source, the startup env."""
    parts = [os.path.realpath(sys.executable), sys.prefix, sys.version, __file__, _package_dir()]
    for root, dirs, files in os.walk(_package_dir()):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith((".py", ".json"))):
            info = os.stat(os.path.join(root, name))
            parts.append(f"{root}/{name} {info.st_size} {info.st_mtime_ns}")
    for name in ("momentcalc_launch.py", "momentcalc_client.py"):
        try:
            info = os.stat(os.path.join(install_dir(), name))
            parts.append(f"{name} {info.st_size} {info.st_mtime_ns}")
        except OSError:
            pass
    for folder in _site_packages():  # installing or upgrading any package (numba, scipy) changes its listing
        try:
            parts.append(f"{folder} {os.stat(folder).st_mtime_ns}")
        except OSError:
            pass
    parts += [f"{key}={os.environ[key]}" for key in sorted(os.environ) if key.startswith(STARTUP_VARIABLES)]
    return _checksum(parts)


def runtime_dir(base: str | None = None) -> str | None:
    """This user's private folder for server sockets (under `base`), or None where none can be had safely."""
    if base is None:
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
    path = None if folder is None else os.path.join(folder, f"{install_key()}.sock")
    return path if path is not None and len(os.fsencode(path)) < SOCKET_PATH_MAX else None


def lock_path(address: str) -> str:
    return address[: -len(".sock")] + ".lock" if address.endswith(".sock") else address + ".lock"


def log_path(address: str) -> str:
    return address[: -len(".sock")] + ".log" if address.endswith(".sock") else address + ".log"


def safe_path(entries: list[str]) -> list[str]:
    """sys.path without the working folder: no '', no relative entry, none that is the working folder.

    The installation's own folder stays (a checkout run from its root), and is added where missing.
    """
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:  # a working folder that was removed: nothing can be imported from it
        here = None
    mine = install_dir()
    kept = []
    for entry in entries:
        if not entry or not os.path.isabs(entry):
            continue
        if os.path.realpath(entry) == here and os.path.realpath(entry) != os.path.realpath(mine):
            continue
        kept.append(entry)
    return kept if mine in kept else [*kept, mine]


def unserved_variables(environ) -> list[str]:
    """The PYTHON* variables set in environ that an isolated server cannot take on."""
    return sorted(k for k in environ if k.startswith("PYTHON") and k not in SERVED_PYTHON_VARIABLES and environ[k])


def connect(path: str, timeout: float | None = None):
    """A socket connected to the server at path, or None where none listens; connecting waits `timeout` at most."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout_seconds() if timeout is None else timeout)
    try:
        sock.connect(path)
    except TimeoutError:  # a listener whose queue is full: a server that does not accept
        sock.close()
        raise ServerError(_silent(path)) from None
    except OSError:  # none listening (no file, or one a killed server left)
        sock.close()
        return None
    return sock


def _silent(path: str) -> str:
    return (
        f"the momentcalc server at {path} did not answer within {timeout_seconds():g} s ({TIMEOUT_VARIABLE}); "
        "stop it with 'momentcalc server stop --all', or run commands in their own process with MOMENTCALC_SERVER=0"
    )


def _nonsense(path: str, what: str) -> str:
    return (
        f"the momentcalc server at {path} answered nonsense ({what}); "
        "stop it with 'momentcalc server stop --all', or run commands in their own process with MOMENTCALC_SERVER=0"
    )


LIMITS = (
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
)
# A server started under these hard limits, or niced, could serve no one unlimited: a command started there runs
# in its own process and starts no server.
HOST_LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE")


def process_state() -> dict:
    """What a command inherits from the shell besides its environment: umask, niceness, CPUs, resource limits.

    A served command takes them on (`ulimit`, `nice`, `taskset` apply to it as to one run in its own process).
    """
    import resource  # 1 ms

    mask = os.umask(0o077)
    os.umask(mask)
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in LIMITS if hasattr(resource, name)}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    # Signals the shell told this process to ignore (`cmd &` in a script ignores Ctrl-C): the child ignores them too.
    ignored = [name for name in FORWARDED_SIGNALS if _signal.getsignal(getattr(_signal, name)) == _signal.SIG_IGN]
    return {"umask": mask, "nice": os.nice(0), "cpus": cpus, "limits": limits, "ignored": ignored}


def can_host(state: dict) -> bool:
    """Whether a server started from this state could take on any user's state (no hard limits, not niced)."""
    unlimited = all(state["limits"].get(name, (-1, -1))[1] == -1 for name in HOST_LIMITS)  # -1: RLIM_INFINITY
    return unlimited and state["nice"] <= 0


def _unlimit() -> None:
    """In the server before it starts: the soft limits of the shell that started it are not the server's."""
    import resource

    for name in LIMITS:
        if hasattr(resource, name) and name != "RLIMIT_STACK":  # set when a process starts: kept as commands have it
            which = getattr(resource, name)
            soft, hard = resource.getrlimit(which)
            if soft != hard:
                try:
                    resource.setrlimit(which, (hard, hard))
                except (ValueError, OSError):
                    pass


def start_server(path: str, after: int | None = None):
    """Start a server for `path` in the background, in a session of its own, detached from this terminal.

    With `after` (a pid), it warms up only once that process has ended: the command that started it runs at
    full speed (a table build uses every CPU).
    """
    import subprocess

    quiet = subprocess.DEVNULL
    command = [sys.executable, "-I", "-c", BOOTSTRAP, path, str(after or 0), *safe_path(sys.path)]
    with open(log_path(path), "w") as log:  # what went wrong, where something did (`momentcalc server status`)
        return subprocess.Popen(
            command, stdin=quiet, stdout=quiet, stderr=log, start_new_session=True, close_fds=True, cwd="/",
            preexec_fn=_unlimit,
        )  # fmt: skip


def _receive(sock, form: struct.Struct) -> int | None:
    data = b""
    while len(data) < form.size:
        chunk = sock.recv(form.size - len(data))
        if not chunk:
            return None
        data += chunk
    return form.unpack(data)[0]


def _a_child_of(pid: int, sock) -> bool:
    """Whether pid is a process the server on sock forked (Linux; elsewhere, any plausible pid)."""
    if not 1 < pid < PID_MAX:
        return False
    if not hasattr(_socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
    server, uid = struct.unpack("3i", creds)[:2]
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False  # gone already, or not ours to see
    return uid == os.getuid() and parent == server


def run_served(sock, argv: list[str], stamp_: str | None = None, path: str = "the server") -> int:
    """Have the server run `momentcalc ARGV` with this process's stdin/stdout/stderr; its exit code.

    RUN_HERE or STALE (both negative here: -1, -2) where this process is to run it itself; ServerError where the
    server stays silent or answers nonsense.
    """
    # marshal: built in and fast; both ends run the same Python (the stamp says so)
    state = process_state()
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "stamp": stamp_ or stamp(), **state}
    data = marshal.dumps(request)
    data = LENGTH.pack(len(data)) + data
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
    answer = None
    try:
        answer = _hand_over(sock, data, path)
        if answer > 0:
            child[0] = answer
    finally:
        if child[0] is None:  # no command runs there: this process runs it, with its own Ctrl-C
            for signum, handler in before.items():
                _signal.signal(signum, handler)
    if child[0] is None:
        if pending:  # Ctrl-C before the server took the command: it ran nowhere, and stops here, as the CLI does
            sys.stderr.write("error: interrupted\n")
            return 130
        return -2 if answer == STALE else -1
    for signum in pending:
        os.kill(child[0], signum)
    sock.settimeout(None)  # the command may run for hours
    try:
        code = _receive(sock, CODE)
    except OSError:  # it runs there: never run it here a second time
        code = None
    if code is None:  # the child ended without reporting (killed): say so as a shell would
        sys.stderr.write("error: the momentcalc server's process for this command ended without an exit code\n")
        return 1
    if not 0 <= code <= 255:
        raise ServerError(_nonsense(path, f"exit code {code}"))
    return code


def _hand_over(sock, data: bytes, path: str) -> int:
    """Send the request; the server's first answer (a pid the client has sent GO to, RUN_HERE or STALE)."""
    try:
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("3i", 0, 1, 2))])
        if sent < len(data):
            sock.sendall(data[sent:])
        answer = _receive(sock, PID)
    except TimeoutError:
        raise ServerError(_silent(path)) from None
    if answer is None:  # it closed without a word: nothing runs there
        return RUN_HERE
    if answer in (RUN_HERE, STALE):
        return answer
    if not _a_child_of(answer, sock):
        raise ServerError(_nonsense(path, f"pid {answer}"))
    sock.sendall(GO)
    return answer

"""The `momentcalc` console script: hand the command to this installation's warm server where one runs, else run it.

A warm command spends nearly all its time starting up: importing numba and scipy and loading compiled kernels
(1.5 s at best, `bench/startup.py --floor`) against 0.05-0.1 s of computing. A server process
(momentcalc/server/) keeps all of that loaded and forks a child per command. The child takes this process's
stdin, stdout and stderr (passed over a Unix socket, so a terminal stays a terminal), its working directory,
environment, arguments and process state (limits, niceness, CPUs, umask), and runs the command as the console
script would; this process forwards signals (Ctrl-C) to it and leaves with its exit code. The protocol and the
addresses are in momentcalc_client.py.

When a server is used (MOMENTCALC_SERVER):
- ``auto`` (the default): if one is running; one is started in the background when stdin and stderr are
  terminals (someone typing commands), never for scripts, pipes or CI; the first start says so on stderr;
- ``1``: always, starting one when none runs; ``0``: never.
A command whose state a server cannot take on runs in its own process: a memory limit (`ulimit -v`, `-d`: a
fork of the warm server has its memory), a PYTHON* variable the isolated server ignores, a server niced or
limited more than the command (that server leaves; the next command starts one).

The server is started isolated (python -I) with this process's sys.path less the working folder: it imports
nothing that the command would not import in its own process, and nothing from the working folder. This process
drops the working folder from sys.path too, before it imports anything of momentcalc's.

Layers: this module is the top (it imports momentcalc_client, momentcalc.cli and momentcalc.server.loop); nothing
imports it. Importing anything inside `momentcalc` runs its __init__, which fills the op registry (0.09 s, a third
of a served command's budget): only the standard library is imported before a command is handed over.
"""

# No `from __future__` import: it would be the first statement, before the Ctrl-C handler below.
# The C module behind `signal`: its Python wrapper imports enum, 10 ms of a served command's budget.
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


# Not where Ctrl-C is ignored (`cmd &` in a script).
if __name__ != "__main__" and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _leave)

import sys  # noqa: E402 (after the handler: Ctrl-C from here on leaves as above)


def _drop_working_folder() -> None:
    """sys.path less the working folder ('', relative entries, the folder itself), before anything is imported
    from it: momentcalc_client.safe_path's rule, which cannot be imported before this has run."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        cwd = None
    unsafe = [p for p in sys.path if not p or not os.path.isabs(p) or os.path.realpath(p) in (cwd,)]
    sys.path[:] = [p for p in sys.path if p not in unsafe or os.path.realpath(p or ".") == here]


_drop_working_folder()

import momentcalc_client as client  # noqa: E402 (after the path is safe)


def _start_for_next(path: str, chosen: str) -> None:
    """Start a server for the next command where this one is typed at a terminal, or servers are asked for."""
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not (chosen == "on" or interactive) or not client.can_host(client.process_state()):
        return
    client.start_server(path, after=os.getpid())  # it warms up once this command has run here
    notice = os.path.join(os.path.dirname(path), "told")
    if chosen == "auto" and not os.path.exists(notice):  # once per runtime folder (a login session)
        sys.stderr.write(client.START_NOTICE.format(idle=client.idle_seconds()) + "\n")
        try:
            open(notice, "w").close()
        except OSError:
            pass


def _served(argv: list[str]) -> int | None:
    """The exit code of `momentcalc ARGV` run by a server, or None to run it in this process."""
    chosen = client.mode()
    if chosen == "off" or (argv[:1] == ["server"]) or not client.supported():
        return None
    if client.unserved_variables(os.environ):
        return None  # the isolated server would ignore them
    if None in (sys.stdin, sys.stdout, sys.stderr):
        return None  # a closed stream: as a process of its own has it (and a socket must not take its number)
    try:
        path = client.address()
    except OSError:
        return None
    if path is None:
        return None
    sock = client.connect(path)
    if sock is None:
        _start_for_next(path, chosen)
        return None
    try:
        code = client.run_served(sock, argv, path=path)
    except OSError:  # e.g. a closed stdin can't be passed
        return None
    finally:
        sock.close()
    if code == -2:  # that server is for another version: this command starts one of its own
        _start_for_next(path, chosen)
    return None if code < 0 else code


def main() -> None:
    """Console-script entry point (`momentcalc`)."""
    try:
        code = _served(sys.argv[1:])
    except client.ServerError as error:
        sys.stderr.write(f"error: {error}\n")
        code = 2
    if code is None:
        # Worker processes a command spawns (`tables build --jobs`) start as `python -c ...`, which would put the
        # working folder first on their path (its multiprocessing.py would run) before they take this one's.
        os.environ["PYTHONSAFEPATH"] = "1"
        from momentcalc.cli import main as run_here

        run_here()
    else:
        sys.stdout.flush()
        os._exit(code)


def serve_here(address: str, after: int | None) -> None:
    """The server's process (client.BOOTSTRAP, started by start_server): serve this installation at address."""
    from momentcalc.cli import command_runner
    from momentcalc.server.loop import serve

    serve(address, client.idle_seconds(), after=after, runner=command_runner())

"""`momentcalc server status|start|stop`: the warm server that runs commands in ~0.1 s (serve.py)."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated

import typer
from rich.console import Console

import momentcalc_launch as launch

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ._util import HELP_MARKUP, _console, _examples, app

serve = lazy_module("momentcalc.cli.serve")  # POSIX only (fcntl, fork): loads when a server command runs

STOP_WAIT_S = 10.0

server_app = typer.Typer(
    help="The warm server that runs commands without starting Python, numba and scipy each time "
    "(MOMENTCALC_SERVER=auto|1|0).",
    epilog="Examples:  momentcalc server status  ·  momentcalc server start  ·  momentcalc server stop",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(server_app, name="server")


def _address() -> str:
    address = launch.address()
    if address is None:
        raise MomentcalcError(
            "no server on this system: it needs Unix sockets, fork and a private runtime folder "
            "(XDG_RUNTIME_DIR or the temporary folder); commands run in their own process"
        )
    return address


def _serving(address: str) -> bool:
    sock = launch.connect(address)
    if sock is not None:
        sock.close()
    return sock is not None


@server_app.command("status", epilog=_examples("server status"))
def server_status() -> None:
    """Whether this installation's server runs, where it listens, and when commands use it."""
    address = _address()
    pid = serve.running_pid(address)
    state = "not running" if pid is None else f"{'serving' if _serving(address) else 'warming up'} (pid {pid})"
    console = _console()
    console.print(f"server   {state}", highlight=False)
    console.print(f"address  {address}", highlight=False)
    console.print(f"log      {launch.log_path(address)}", highlight=False)
    console.print(f"mode     {launch.MODE_VARIABLE}={launch.mode()}", highlight=False)
    console.print(f"idle     leaves after {launch.idle_seconds():g} s without a command", highlight=False)


@server_app.command("start", epilog=_examples("server start", "server start --no-wait"))
def server_start(
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until it serves (it warms up first: seconds).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait at most.")] = 600.0,
) -> None:
    """Start this installation's server in the background (commands then start it themselves at a terminal)."""
    address = _address()
    started = launch.start_server(address) if serve.running_pid(address) is None else None
    if not wait:
        return
    with Console(stderr=True).status("the server warms up (loads its kernels; compiles them on a first run)"):
        deadline = time.monotonic() + timeout
        while not _serving(address):
            if started is not None and started.poll() is not None and serve.running_pid(address) is None:
                log = launch.log_path(address)
                raise MomentcalcError(
                    f"the server stopped before it served (exit code {started.returncode}); see {log}"
                )
            if time.monotonic() > deadline:
                raise MomentcalcError(f"the server did not serve within {timeout:g} s; see 'momentcalc server status'")
            time.sleep(0.1)
    _console().print(f"serving at {address}", highlight=False)


@server_app.command("stop", epilog=_examples("server stop"))
def server_stop() -> None:
    """Stop this installation's server (commands it is running finish)."""
    address = _address()
    pid = serve.running_pid(address)
    if pid is None:
        _console().print("no server was running", highlight=False)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while serve.running_pid(address) is not None:
        if time.monotonic() > deadline:
            raise MomentcalcError(f"the server (pid {pid}) did not stop within {STOP_WAIT_S:g} s")
        time.sleep(0.05)
    _console().print(f"stopped the server (pid {pid})", highlight=False)

"""`momentcalc server status|start|stop`: the warm server that runs commands in ~0.1 s (momentcalc/server/)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

import momentcalc_client as client

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ._util import HELP_MARKUP, _console, _examples, app

registry = lazy_module("momentcalc.server.registry")  # POSIX only (fcntl): loads when a server command runs

STOP_WAIT_S = 10.0

server_app = typer.Typer(
    help="The warm server that runs commands without starting Python, numba and scipy each time "
    "(MOMENTCALC_SERVER=auto|1|0).",
    epilog="Examples:  momentcalc server status  ·  momentcalc server start  ·  momentcalc server stop --all",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(server_app, name="server")


def _address() -> str:
    address = client.address()
    if address is None:
        raise MomentcalcError(
            "no server on this system: it needs Unix sockets, fork and a private runtime folder "
            "(XDG_RUNTIME_DIR or the temporary folder); commands run in their own process"
        )
    return address


def _serving(address: str) -> bool:
    try:
        sock = client.connect(address, timeout=1.0)
    except client.ServerError:
        return False
    if sock is not None:
        sock.close()
    return sock is not None


def _describe(found: dict, address: str, stamp: str) -> str:
    state = "serving" if _serving(found["address"]) else "warming up"
    whose = "this installation" if found["address"] == address else "another installation"
    whose += "" if found["address"] != address or found["stamp"] == stamp else " (an older version: it leaves)"
    memory = "" if found["rss_mb"] is None else f", {found['rss_mb']:.0f} MB"
    return f"pid {found['pid']}  {state}{memory}  {whose}  {found['address']}"


@server_app.command("status", epilog=_examples("server status"))
def server_status() -> None:
    """Every server of this user that runs, this installation's address, and when commands use one."""
    address = _address()
    console = _console()
    running = registry.servers()
    stamp = client.stamp()
    mine = "running" if any(s["address"] == address for s in running) else "not running"
    console.print(f"server   {mine}", highlight=False)
    for found in running:
        console.print(f"         {_describe(found, address, stamp)}", highlight=False)
    console.print(f"address  {address}", highlight=False)
    console.print(f"log      {client.log_path(address)}", highlight=False)
    console.print(f"mode     {client.MODE_VARIABLE}={client.mode()}", highlight=False)
    console.print(f"idle     leaves after {client.idle_seconds():g} s without a command", highlight=False)


@server_app.command("start", epilog=_examples("server start", "server start --no-wait"))
def server_start(
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until it serves (it warms up first: seconds).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait at most.")] = 600.0,
) -> None:
    """Start this installation's server in the background (commands then start it themselves at a terminal)."""
    address = _address()
    stamp = client.stamp()
    held = registry.running_pid(address)
    current = held is not None and any(s["pid"] == held and s["stamp"] == stamp for s in registry.servers())
    started = None if current else client.start_server(address)
    if not wait:
        return
    with Console(stderr=True).status("the server warms up (loads its kernels; compiles them on a first run)"):
        deadline = time.monotonic() + timeout
        while not (_serving(address) and _current(address, stamp)):
            if started is not None and started.poll() is not None and not _current(address, stamp):
                log = client.log_path(address)
                raise MomentcalcError(
                    f"the server stopped before it served (exit code {started.returncode}); see {log}"
                )
            if time.monotonic() > deadline:
                raise MomentcalcError(f"the server did not serve within {timeout:g} s; see 'momentcalc server status'")
            time.sleep(0.1)
    _console().print(f"serving at {address}", highlight=False)


def _current(address: str, stamp: str) -> bool:
    return any(s["address"] == address and s["stamp"] == stamp for s in registry.servers())


@server_app.command("stop", epilog=_examples("server stop", "server stop --all"))
def server_stop(
    every: Annotated[bool, typer.Option("--all", help="Stop every server of this user, of any installation.")] = False,
) -> None:
    """Stop this installation's server, or every one of this user's (commands they are running finish)."""
    address = _address()
    running = [s for s in registry.servers() if every or s["address"] == address]
    if not running:
        _console().print("no server was running", highlight=False)
        return
    pids = [s["pid"] for s in running]
    left = registry.stop(pids, STOP_WAIT_S)
    if left:
        raise MomentcalcError(f"the server (pid {', '.join(map(str, left))}) did not stop within {STOP_WAIT_S:g} s")
    stopped = ", ".join(map(str, pids))
    _console().print(f"stopped the server{'s' if len(pids) > 1 else ''} (pid {stopped})", highlight=False)

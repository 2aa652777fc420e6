"""The warm server against hostile surroundings, the cases that start the most processes: another user's code in
the working folder (a server started and served in each mode), closed or full streams (each in a served and an
own process), and a newer server that replaces the older one of its installation.

Why in tests_long/: each case runs the console script two to four times in fresh processes (about 14 s of CPU
together; the newer server's case starts two servers, each importing the whole package, about 5 s);
tests/test_server_hostile.py keeps the working folder's code out of worker processes and a file size limit on a
served command in the main suite, and tests/test_server.py starts, serves and stops a server.
"""

import os
import subprocess
from pathlib import Path

import pytest
import test_server_hostile as hostile
from test_server_hostile import _address, _env, _hostile_folder, _probe, _script, _wait_serving

from momentcalc.server import registry

runtime = hostile.runtime  # the fixtures of tests/test_server_hostile.py: a private runtime folder, a module's server
server = hostile.server


@pytest.mark.parametrize("mode", ["auto", "1", "0"])
def test_no_code_from_the_working_folder_runs_served_or_not(runtime, mode):
    folder = _hostile_folder(runtime)
    env = _env(runtime, MOMENTCALC_SERVER=mode)
    leader, terminal = os.openpty()  # auto starts a server only for someone at a terminal
    try:
        command = [_script(), "estimate", "relu", "--json"]
        first = subprocess.run(command, stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, env=env, cwd=folder,
                               timeout=300)  # fmt: skip
        assert first.returncode == 0 and first.stdout.startswith(b"{")
        if mode != "0":
            pid = _wait_serving(_address(env))
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if Path("/proc").exists() else [b"-I"]
            assert b"-I" in cmdline  # isolated: no working folder, no user site, no PYTHON* variables
            served = subprocess.run(command, stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, env=env,
                                    cwd=folder, timeout=120)  # fmt: skip
            assert served.returncode == 0 and served.stdout.startswith(b"{")
    finally:
        os.close(leader)
        os.close(terminal)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("HIJACKED")) == []


@pytest.mark.parametrize(
    "shell", ["{cmd} estimate maxpol 2>&-", "{cmd} list >&-", "{cmd} list <&-", "{cmd} list > /dev/full"]
)
def test_a_closed_or_full_stream_gives_the_exit_code_of_the_commands_own_process(server, shell):
    env, _address_, _pid = server
    codes = []
    for mode in ("1", "0"):
        done = subprocess.run(["sh", "-c", shell.format(cmd=_script())], capture_output=True, text=True,
                              env={**env, "MOMENTCALC_SERVER": mode}, timeout=120)  # fmt: skip
        codes.append(done.returncode)
    assert codes[0] == codes[1]


def test_a_newer_server_stops_the_older_one_of_its_installation(runtime):
    env = _env(runtime)
    first = subprocess.run([_script(), "server", "start"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    address = _address(env)
    old = registry.running_pid(address)
    changed = {**env, "LC_MOMENTCALC_TEST": "another"}  # read at start-up: another version of the server
    assert _probe(changed, "list").returncode == 98  # the old one sends it back: not its version
    second = subprocess.run([_script(), "server", "start"], capture_output=True, text=True, env=changed, timeout=600)
    assert second.returncode == 0, second.stderr
    status = subprocess.run([_script(), "server", "status"], capture_output=True, text=True, env=changed, timeout=60)
    assert registry.ended(old) and status.stdout.count(" pid ") == 1 and f"pid {old} " not in status.stdout
    assert _address(changed) == address  # one address per installation

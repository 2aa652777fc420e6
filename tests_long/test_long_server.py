"""The warm server against hostile surroundings, the cases that start the most processes: another user's code in
the working folder (a server started and served in each mode), and closed or full streams (each in a served and an
own process).

Why in tests_long/: each case runs the console script two to four times in fresh processes (about 14 s of CPU
together); tests/test_server_hostile.py keeps the working folder's code out of worker processes and a file size
limit on a served command in the main suite.
"""

import os
import subprocess
from pathlib import Path

import pytest
import test_server_hostile as hostile
from test_server_hostile import _address, _env, _hostile_folder, _script, _wait_serving

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

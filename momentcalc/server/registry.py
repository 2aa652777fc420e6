"""Which warm servers run: each holds its installation's lock file (INSTALL.lock), which names its pid and stamp.

At most one server per installation: a server that starts for a new stamp (an edit, an upgrade, another
environment) stops the one holding the lock, and one for the same stamp leaves the running one alone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

import momentcalc_client as client

TAKE_OVER_S = 10.0  # how long a new server waits for the old one to leave
TICK_S = 0.05


def _held_by(path: str) -> tuple[int, str] | None:
    """(pid, stamp) of the process holding the lock at path, or None where none does."""
    try:
        with open(path) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                words = lock.read(200).split()
                if words and words[0].isdigit():
                    return int(words[0]), (words[1] if len(words) > 1 else "")
            return None
    except OSError:
        return None


def running_pid(address: str) -> int | None:
    """The pid of the server holding address's lock, or None where none does."""
    held = _held_by(client.lock_path(address))
    return None if held is None else held[0]


def take(address: str, stamp: str):
    """The installation's lock for a server of `stamp`, held as long as the returned file stays open; None where
    a server of the same stamp holds it, or an older one did not leave within TAKE_OVER_S."""
    lock = open(client.lock_path(address), "a+")  # noqa: SIM115 (held until exit)
    deadline = time.monotonic() + TAKE_OVER_S
    told = None
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            held = _held_by(client.lock_path(address))
            if held is not None and held[1] == stamp or time.monotonic() > deadline:
                lock.close()
                return None
            if held is not None and held[0] != told:
                _terminate(held[0])  # an older version: it leaves (commands it runs finish)
                told = held[0]
            time.sleep(TICK_S)
    lock.truncate(0)
    lock.write(f"{os.getpid()} {stamp}\n")
    lock.flush()
    return lock


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def folders() -> list[str]:
    """This user's runtime folders where servers may listen (XDG_RUNTIME_DIR's, the temporary folder's)."""
    import tempfile

    found = [client.runtime_dir(), client.runtime_dir(tempfile.gettempdir())]
    return [f for i, f in enumerate(found) if f is not None and f not in found[:i]]


def servers() -> list[dict]:
    """Every server of this user that runs: pid, stamp, address, memory (Linux), whether it listens yet."""
    found = []
    for folder in folders():
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".lock"):
                continue
            held = _held_by(os.path.join(folder, name))
            if held is not None:
                address = os.path.join(folder, name[: -len(".lock")])
                address = address if address.endswith(".sock") else address + ".sock"
                found.append({"pid": held[0], "stamp": held[1], "address": address, "rss_mb": _rss_mb(held[0])})
    return found


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def stop(pids: list[int], wait_s: float) -> list[int]:
    """SIGTERM each server; the pids still running after wait_s."""
    for pid in pids:
        _terminate(pid)
    deadline = time.monotonic() + wait_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if not ended(pid)]
        time.sleep(TICK_S)
    return left


def ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid is someone else's now
        return True
    try:  # Linux: a zombie has ended too (its parent has not collected it yet)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False

"""No number is ever cut: in a terminal 80 or 60 columns wide, every value and bound that --json gives shows whole.

Each command runs in a pseudo-terminal of the given width (rich reads it from the terminal, as for a user), and
its text is searched for every number of its --json output, formatted as the text formats it (cli._util._value:
the digits the number's uncertainty supports; gains: 10 decimals). Piped output keeps its wide layout.
"""

import fcntl
import functools
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from momentcalc.cli._util import _se, _value

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
WIDTHS = (80, 60)

COMMANDS = {
    "estimate": ["estimate", "relu", "--samples", "65536"],
    "tables show": ["tables", "show"],
    "gains": ["gains"],
    "cmap": ["cmap", "relu", "--c", "0.5", "--samples", "65536"],
    "list": ["list"],
}


def _environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    return {**env, "TERM": "xterm-256color", "MOMENTCALC_SERVER": "0", **extra}


@functools.cache  # each command runs once per width: the tests below share the runs
def _in_terminal(args: tuple[str, ...], columns: int) -> str:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "momentcalc", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=_environment(),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the command has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) in (0, 1)
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def in_terminal(args: list[str], columns: int) -> str:
    """stdout of `python -m momentcalc ARGS` in a pseudo-terminal `columns` wide, escape sequences removed."""
    return _in_terminal(tuple(args), columns)


def as_json(args: list[str]):
    done = subprocess.run(
        [sys.executable, "-m", "momentcalc", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_environment(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expected_numbers(command: str, doc) -> list[str]:
    """Every number of the --json output as the text prints it."""
    if command == "cmap":
        found = [str(e["samples"]) for e in doc["estimates"] if e["samples"] is not None]
        found += [text for e in doc["estimates"] for text in (_value(e["kernel"], e["kernel_se"]), _se(e["kernel_se"]))]
        found += [_value(doc["corr"], doc["corr_se"]), _value(doc["dks_corr"], doc["kernel_se"] / doc["second_moment"])]
        return found + [repr(doc[k]) for k in ("c0_uncentred", "slope1", "dks_slope1", "qmap", "mean", "var")]
    if command == "estimate":
        found = []
        for e in doc["estimates"]:
            found += [_value(e["mean"], e["mean_se"]), _se(e["mean_se"])]
            found += [_value(e["std"], e["std_se"]), _se(e["std_se"])] if "std" in e else []
            found += [] if e["samples"] is None else [str(e["samples"])]
        return found
    if command == "tables show":
        return [
            text
            for e in doc["entries"]
            for text in (
                _value(e["mean"], e["mean_se"]),
                _se(e["mean_se"]),
                _value(e["std"], e["std_se"]),
                _se(e["std_se"]),
            )
        ]
    if command == "gains":
        found = []
        for r in doc["rows"]:
            found += [f"{r[k]:.10f}" for k in ("mean", "std", "gain", "gamma", "grad_sq") if r[k] is not None]
            for published in (r["pytorch"], r["nfnets"]):
                if published is not None:
                    found += [f"{published['value']:.6g}", f"({published['rel_diff']:+.2e})"]
        return found
    # list: every word of every op's parameters (defaults and ranges) and description
    return [word for op in doc["ops"] for word in (op["parameters"] + " " + op["description"]).split()]


@pytest.fixture(scope="module")
def json_of():
    cache = {}

    def get(command: str):
        if command not in cache:
            cache[command] = as_json(COMMANDS[command])
        return cache[command]

    return get


def whole(text: str, number: str) -> bool:
    """number appears in text as a whole token: not preceded or followed by more of a number or a word."""
    return re.search(rf"(?<![\w.]){re.escape(number)}(?![\w]|\.\d)", text) is not None


# cmap samples correlated pairs in each of its three processes (about 5 s of CPU together): it runs in
# tests_long/test_long_cli_width.py (the suite's 3-minute budget).
@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "cmap"])
def test_every_number_shows_whole_in_a_narrow_terminal(command, columns, json_of):
    text = in_terminal(COMMANDS[command], columns)
    lines = text.splitlines()
    assert len(lines) > 3 and max(len(line) for line in lines) <= columns, text
    assert "…" not in text, text
    tokens = set(re.split(r"[\s│┃]+", text))
    numbers = expected_numbers(command, json_of(command))
    assert numbers
    if command == "list":  # words of text: whole tokens, wrapped only at spaces
        missing = [w for w in numbers if w not in tokens]
    else:
        missing = [n for n in numbers if not whole(text, n)]
    assert not missing, (missing, text)


def test_the_estimate_table_stacks_its_bounds_at_80_columns_and_lists_records_at_60():
    wide = in_terminal(COMMANDS["estimate"], 80)
    assert re.search(r"^ certified\*\s+0\.39894228040143270\s+0\.58381937010354890\s", wide, re.M), wide
    assert re.search(r"^\s+± 2\.8e-17\s+± 5\.6e-17\s*$", wide, re.M), wide
    narrow = in_terminal(COMMANDS["estimate"], 60)
    assert re.search(r"^certified\*\n  mean +0\.39894228040143270 ± 2\.8e-17 *$", narrow, re.M), narrow


def test_piped_output_keeps_its_wide_layout_unless_columns_is_set():
    def piped(**extra):
        return subprocess.run(
            [sys.executable, "-m", "momentcalc", "tables", "show"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=_environment(**extra),
            timeout=120,
        ).stdout

    wide = piped()
    assert re.search(r"^\s+relu\s+0\.39894228040143270\s+2\.8e-17\s+0\.58381937010354890\s+5\.6e-17\s", wide, re.M)
    narrow = piped(COLUMNS="60")  # the table fits 60 columns; its title, prose, is left to the reader to wrap
    assert max(len(line) for line in narrow.splitlines()[1:]) <= 60 and "0.39894228040143270" in narrow

"""The README's example outputs, from real runs: regenerate them, or check that they are current.

    python tools/readme_examples.py           # rewrite the example blocks of README.md
    python tools/readme_examples.py --check   # exit 1, with a diff, where an example is stale

An example is a fenced block whose lines starting with "$ " are shell commands: each is run
with this Python's environment first on PATH (so `momentcalc` is the one installed beside it),
its stdout and stderr, trailing spaces stripped, replace what follows it up to the next
command. Timings ("0.05s") change from run to run, so the check compares them as masked.
Blocks that elide output ("..."), run commands with side effects (tables build) or whose output
depends on the machine (tables show --dir, gains' excerpt) are left as written: SKIP lists them.
.ci/run runs the check, so the README cannot go stale unnoticed.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = ("tables build", "tables show", "tables check", "momentcalc list", "momentcalc gains")
TIMING = re.compile(r"\b\d+\.\d+ ?s\b")


def fenced_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indices of the contents of each ``` block that starts with a command."""
    found, start = [], None
    for i, line in enumerate(lines):
        if line.startswith("```"):
            if start is None:
                start = i + 1
            else:
                if start < i and lines[start].startswith("$ momentcalc"):
                    found.append((start, i))
                start = None
    return found


def run(command: str) -> list[str]:
    """The command's output lines (stdout then stderr, as a terminal user sees them when piped)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(COLUMNS="150", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the order a user sees
        text=True,
        env=env,
        cwd=README.parent,
        timeout=600,
    )
    return [line.rstrip() for line in done.stdout.rstrip("\n").split("\n")]


def regenerate(block: list[str]) -> list[str] | None:
    """The block with every command's output from a real run; None for blocks left as written."""
    if any(line.strip() == "..." for line in block) or any(skip in line for line in block for skip in SKIP):
        return None
    out = []
    for line in block:
        if line.startswith("$ "):
            out += [line] + run(line[2:])
    return out


def examples() -> tuple[list[str], list[str]]:
    """README's lines as they are, and as the real runs make them."""
    lines = README.read_text().split("\n")
    new = list(lines)
    for first, last in reversed(fenced_blocks(lines)):
        fresh = regenerate(lines[first:last])
        if fresh is not None:
            new[first:last] = fresh
    return lines, new


def _mask(line: str) -> str:
    """The line with timings masked, and with the padding and rules they size collapsed: a run of 12.5 s on a
    busy machine widens the time column, and with it every row and rule of the table."""
    return re.sub(r"─+", "─", re.sub(r" +", " ", TIMING.sub("<t>", line))).rstrip()


def main(argv: list[str]) -> int:
    old, new = examples()
    if "--check" not in argv:
        README.write_text("\n".join(new))
        print(f"wrote {README.name}")
        return 0
    masked = [_mask(line) for line in old], [_mask(line) for line in new]
    diff = list(difflib.unified_diff(*masked, "README.md", "README.md (from real runs)", lineterm="", n=1))
    if diff:
        print("\n".join(diff))
        print(f"README examples are stale; regenerate them with `python {Path(__file__).relative_to(README.parent)}`")
        return 1
    print("ok: the README's examples match real runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

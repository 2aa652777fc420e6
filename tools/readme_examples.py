"""The example outputs of README.md and docs/*.md, from real runs: regenerate them, or check that they are current.

    python tools/readme_examples.py           # rewrite the example blocks of README.md and docs/*.md
    python tools/readme_examples.py --check   # exit 1, with a diff, where an example is stale

Two kinds of example, none skipped:
- a ``` block whose first line starts with "$ " and which runs momentcalc: each line starting with "$ " is a
  shell command, run with this Python's environment first on PATH (so `momentcalc` is the one installed beside
  it) in an 80-column terminal's width; its stdout and stderr replace what follows it up to the next command;
- a ```python block whose first line starts with ">>> ": the statements run in one fresh interpreter, as at
  Python's prompt, and what it echoes replaces what follows each one.
Timings ("0.05s") change from run to run, so the check compares them as masked. A command with side effects
(`tables build`) is shown as a plain indented line, not as an example. .ci/run runs the check, so the
documentation cannot go stale unnoticed.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMING = re.compile(r"\b\d+\.\d+ ?s\b")
WIDTH = "80"  # the terminal the examples are for: every example fits it


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fenced_blocks(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first, last, kind) of the contents of each ``` block that is an example: kind "shell" or "python"."""
    found, start = [], None
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start is None:
            start, info = i + 1, line[3:].strip()
            continue
        if start < i and lines[start].startswith("$ ") and any(c.startswith("$ momentcalc") for c in lines[start:i]):
            found.append((start, i, "shell"))
        elif start < i and info == "python" and lines[start].startswith(">>> "):
            found.append((start, i, "python"))
        start = None
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(COLUMNS=WIDTH, NO_COLOR="1", TERM="dumb", MOMENTCALC_SERVER="0")
    return env


def run(command: str) -> list[str]:
    """The command's output lines (stdout then stderr, as a terminal user sees them when piped)."""
    done = subprocess.run(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the order a user sees
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
    )
    return [_portable(line) for line in done.stdout.rstrip("\n").split("\n")]


def _portable(line: str) -> str:
    """The line as it reads on any machine: this checkout's folder (in a path a message names) as '...'."""
    return line.replace(str(ROOT), "...").rstrip()


# Runs statements as Python's prompt does (an expression's repr is echoed) and prints, per statement, a JSON
# list of the lines it echoed: the parent splits them back. A statement's exception is echoed as its last line.
_PROMPT = r"""
import contextlib, io, json, sys, traceback
for source in json.load(sys.stdin):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(source, "<example>", "single"), globals())
        except Exception as why:
            print(traceback.format_exception_only(why)[-1].rstrip())
    print(json.dumps(out.getvalue().rstrip("\n").split("\n") if out.getvalue() else []))
"""


def run_python(statements: list[str]) -> list[list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROMPT],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def regenerate_shell(block: list[str]) -> list[str]:
    out = []
    for line in block:
        if line.startswith("$ "):
            printed = run(line[2:])
            out += [line] + ([] if printed == [""] else printed)  # a command that prints nothing adds no line
    return out


def regenerate_python(block: list[str]) -> list[str]:
    statements = [line[4:] for line in block if line.startswith(">>> ")]
    out = []
    for source, echoed in zip(statements, run_python(statements)):
        out += [">>> " + source] + [_portable(line) for line in echoed]
    return out


def examples(path: Path) -> tuple[list[str], list[str]]:
    """The document's lines as they are, and as the real runs make them."""
    lines = path.read_text().split("\n")
    blocks = fenced_blocks(lines)
    # Run in document order (a block may use what an earlier one made), then splice from the end.
    fresh = [
        regenerate_shell(lines[a:b]) if kind == "shell" else regenerate_python(lines[a:b]) for a, b, kind in blocks
    ]
    new = list(lines)
    for (first, last, _), block in reversed(list(zip(blocks, fresh))):
        new[first:last] = block
    return lines, new


def _mask(line: str) -> str:
    """The line with timings masked, and with the padding and rules they size collapsed: a run of 12.5 s on a
    busy machine widens the time column, and with it every row and rule of the table."""
    return re.sub(r"─+", "─", re.sub(r" +", " ", TIMING.sub("<t>", line))).rstrip()


def main(argv: list[str]) -> int:
    stale = 0
    for path in documents():
        old, new = examples(path)
        name = str(path.relative_to(ROOT))
        if "--check" not in argv:
            if new != old:
                path.write_text("\n".join(new))
                print(f"wrote {name}")
            continue
        masked = [_mask(line) for line in old], [_mask(line) for line in new]
        diff = list(difflib.unified_diff(*masked, name, f"{name} (from real runs)", lineterm="", n=1))
        if diff:
            print("\n".join(diff))
            stale += 1
    if stale:
        print(f"{stale} documents' examples are stale; regenerate them with `python tools/readme_examples.py`")
        return 1
    if "--check" in argv:
        print(f"ok: the examples of {len(documents())} documents match real runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

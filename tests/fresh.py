"""Python code run in a fresh interpreter, for what a test process cannot show: which modules an import or a run
loads (this process has loaded them all long ago), or a failure that depends on what was imported first."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str, timeout: float = 120) -> str:
    """The standard output of `python -c CODE` run from the repository; it must exit 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout

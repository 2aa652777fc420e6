"""Issue 13, "no single argument may exhaust the machine": each finding, as a parametrized list of inputs.

Peak memory is measured by bench/limits.py, not here: these tests check that the cost path triggers
(a refusal naming the limit and the faster way, or a run that is bounded) and that Ctrl-C stops a run.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

INTERRUPT_WITHIN_S = 5.0  # generous: the CLI leaves within ~0.1 s of SIGINT (bench/limits.py measures it)


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    # A child of a shell's background job inherits SIGINT ignored; restore the default so Python installs its handler.
    return subprocess.Popen(
        [sys.executable, "-m", "momentcalc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", "40000000000"),
        ("backward", "conv(k=3,s=2,p=1)", "--size", "7", "--trials", "1000000000"),
    ],
)
def test_ctrl_c_stops_a_long_run_with_one_line_and_exit_130(args):
    process = _cli(*args)
    time.sleep(4.0)  # past start-up, in the middle of the run (each runs for minutes)
    assert process.poll() is None, process.communicate()
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - sent < INTERRUPT_WITHIN_S
    assert process.returncode == 130
    assert "error: interrupted" in err and "Traceback" not in err
    assert out == ""

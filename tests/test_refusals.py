"""Refusals cost nothing: sizes are checked before reading or allocating.

`tables show --file /dev/zero` read without bound (a MemoryError under a 4 GB cap); refusing
`propagate --depth 100000000` took 13.5 s and 1.4 GB, and `--depth 1000000000` died of a MemoryError at 3.1 GB.
Each refusal here must be one line, exit 2, within a second or two and a few MB of Python allocations
(tracemalloc's peak: what the refusal itself allocated).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from momentcalc import constants, tablefile
from momentcalc.cli import app
from momentcalc.errors import MomentcalcError

runner = CliRunner()


def _refused(args: list[str]) -> tuple[str, float, int]:
    """Run the command; the error line, the seconds and the peak bytes it allocated."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = runner.invoke(app, args)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0], seconds, peak


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_table_file_without_end_is_refused_after_its_cap():
    line, seconds, peak = _refused(["tables", "show", "--file", "/dev/zero"])
    assert "larger than 16 MiB" in line
    assert seconds < 10
    assert peak < 3 * tablefile.MAX_TABLE_BYTES  # the capped read and its decoding, nothing more


def test_a_table_file_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(tablefile.MAX_TABLE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(MomentcalcError, match="larger than 16 MiB"):
        constants.load(big)
    at_cap = tmp_path / "at_cap.json"
    at_cap.write_bytes(b" " * (tablefile.MAX_TABLE_BYTES - 2) + b"{}")
    assert len(tablefile.read_text(at_cap)) == tablefile.MAX_TABLE_BYTES  # read: refused later, for its content


def test_the_cap_is_far_above_a_full_table():
    table = Path(__file__).resolve().parents[1] / "tables" / tablefile.TABLE_NAME
    assert table.stat().st_size * 100 < tablefile.MAX_TABLE_BYTES


@pytest.mark.parametrize("depth", ["100000000", "1000000000", "10001"])
def test_a_depth_past_the_limit_is_refused_before_anything_loads(depth):
    line, seconds, peak = _refused(["propagate", "--depth", depth])
    assert line == f"error: --depth {depth} is more than the 10,000 blocks allowed"
    assert seconds < 2
    assert peak < 4 << 20


def test_a_refusal_runs_in_little_memory():
    # Its own process under a 512 MiB address-space cap: before, --depth 10**9 died of a MemoryError at 3.1 GB,
    # and a refused 10**8 took 1.4 GB; torch alone (which the refusal no longer loads) maps more than the cap.
    cap = 512 << 20
    for args in (["propagate", "--depth", "1000000000"], ["tables", "show", "--file", "/dev/zero"]):
        done = subprocess.run(
            [sys.executable, "-m", "momentcalc", *args],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
        )
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]


def test_the_least_cost_bound_refuses_only_what_the_full_count_would():
    torch = pytest.importorskip("torch")  # noqa: F841
    from momentcalc.settings import PROPAGATE_VALUES_MAX
    from momentcalc.torch import signal

    # 3x3 convs of width 64, batch 2: each block keeps at least 64*64*9 + 2*64*2 values (a side of 1);
    # the smallest depth whose lower bound passes the limit is refused by it, with no plan built.
    per_block = 64 * 64 * 9 + 2 * 64 * 2
    over = PROPAGATE_VALUES_MAX // per_block + 1
    with pytest.raises(MomentcalcError, match="at least"):
        signal.check_size_at_least(over, "conv3x3 | relu", 64, 2)
    signal.check_size_at_least(over - 1, "conv3x3 | relu", 64, 2)  # the bound alone does not refuse it
    with pytest.raises(MomentcalcError, match="hold"):  # the full count, side 8 and no pool, does
        signal.check_cost(signal.plan(over - 1, "conv3x3 | relu"), 64, 8, 2)

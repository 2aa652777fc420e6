"""The committed default table is what this code generates: a fresh build of every entry (40 s of CPU, so it is
here, not in the main suite, whose table tests read the committed file: table_refs.default_doc). And worker
processes build the same entries as one process: two builds, the second starting two processes that load or compile
the entries' kernels (about 7 s of CPU; tests/test_tables.py keeps a failing entry and Ctrl-C in a build with
workers).
"""

import multiprocessing
from pathlib import Path

from table_refs import fresh_doc, untimed
from test_tables import SIDE_BY_SIDE, _build
from typer.testing import CliRunner

from momentcalc import tables
from momentcalc.cli import app

REPO = Path(__file__).resolve().parent.parent


def test_the_committed_tables_match_a_fresh_build():
    outcome = tables.check(REPO / "tables", fresh_doc())
    assert outcome.ok, "\n".join(outcome.differences)


def test_tables_check_in_the_repository(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(tables, "build", lambda progress=None, **kw: fresh_doc())
    result = CliRunner().invoke(app, ["tables", "check"])
    assert result.exit_code == 0, result.stdout


def test_worker_processes_give_the_same_entries_and_the_same_progress():
    # Every kind of entry: plain rows with the squared derivative, antithetic pairs, a batched pair kernel, dropout.
    calls = {1: [], 2: []}
    alone, side_by_side = (_build(jobs, lambda *call, jobs=jobs: calls[jobs].append(call)) for jobs in (1, 2))
    assert untimed(side_by_side) == untimed(alone)
    assert calls[2] == calls[1] == [(i, 4, s) for i, s in enumerate(SIDE_BY_SIDE)] + [(4, 4, "")]
    assert not multiprocessing.active_children()

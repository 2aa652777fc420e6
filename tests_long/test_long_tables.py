"""The committed default table is what this code generates: a fresh build of every entry (40 s of CPU, so it is
here, not in the main suite, whose table tests read the committed file: table_refs.default_doc)."""

from pathlib import Path

from table_refs import fresh_doc
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

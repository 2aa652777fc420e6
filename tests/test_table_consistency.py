"""What a table's digest proves and what load checks beyond it (issue 28, item 10), and CRLF line ends.

A digest can be recomputed by whoever edits the file: the hostile run changed relu's mean to 0.41 in its
value of record and exact rows, wrote a new digest, and constants.load served it. load now compares each
entry's estimates again (crosscheck, the table's z): the Monte Carlo row left at 0.3988 +- 0.0003 is
4.5 SEs from nothing near 0.41, so the edit is refused. An edit made in every row alike is not caught by
load (only `tables check`, which recomputes): that limit is documented in constants' docstring.
"""

import json
import math

import pytest

from momentcalc import MomentcalcError, constants, tablefile, tables

TABLE = tablefile.default_path()


def _edited(tmp_path, change) -> str:
    doc = json.loads(TABLE.read_text(encoding="utf-8"))
    (relu,) = [e for e in doc["entries"] if e["spec"] == "relu" and e["input"] == {"mu": 0.0, "sigma": 1.0}]
    change(relu)
    path = tmp_path / "normprop.json"
    path.write_text(tablefile.dumps(doc), encoding="utf-8")  # a digest recomputed, as an editor can
    return str(path)


def _exact_rows_to(value):
    def change(entry):
        entry["mean"] = value
        entry["mean_interval"] = [value, value]
        for e in entry["estimates"]:
            if e["method"] != "montecarlo":
                e["mean"] = value
                if e["mean_interval"] is not None:
                    e["mean_interval"] = [value, value]

    return change


def test_the_packaged_table_is_consistent():
    assert len(constants.load(TABLE)) > 30


def test_a_value_changed_with_a_recomputed_digest_but_left_in_monte_carlo_is_refused(tmp_path):
    with pytest.raises(MomentcalcError) as caught:
        constants.load(_edited(tmp_path, _exact_rows_to(0.41)))
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "entry" in message and "'relu'" in message and "marked as agreeing" in message


def test_a_value_of_record_that_is_no_estimates_is_refused(tmp_path):
    def change(entry):
        entry["std"] = 0.6  # the record alone (its interval too): no estimate says 0.6
        entry["std_interval"] = [0.6, 0.6]

    with pytest.raises(MomentcalcError, match=r"its std 0\.6 is none of its estimates' stds"):
        constants.load(_edited(tmp_path, change))


def test_an_edit_made_in_every_row_alike_is_the_documented_limit(tmp_path):
    # Every row of relu's mean moved to 0.41, Monte Carlo included: consistent, so load cannot tell; the
    # docstring says so, and says what does (tables check).
    def change(entry):
        _exact_rows_to(0.41)(entry)
        for e in entry["estimates"]:
            e["mean"] = 0.41

    assert constants.load(_edited(tmp_path, change)).get("relu").mean == 0.41
    assert "tables check" in constants.__doc__ and "does not" in constants.__doc__
    assert math.isclose(constants.get("relu").mean, 1 / math.sqrt(2 * math.pi), rel_tol=1e-15)


def test_crlf_line_ends_read_and_check_the_same(tmp_path):
    # As a Windows checkout (git's autocrlf) writes them: the tables read as with \n, and check finds no change.
    for name in (tablefile.TABLE_NAME, tablefile.SCHEMA_NAME):
        text = (TABLE.parent / name).read_bytes()
        (tmp_path / name).write_bytes(text.replace(b"\n", b"\r\n"))
    assert b"\r\n" in (tmp_path / tablefile.TABLE_NAME).read_bytes()
    loaded = constants.load(tmp_path / tablefile.TABLE_NAME)
    assert loaded.get("relu").mean == constants.get("relu").mean
    result = tables.check(tmp_path, regenerated=tablefile.read(TABLE))  # the text checks; numbers vs themselves
    assert result.ok, result.differences

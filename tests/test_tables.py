"""tables: the default table's content, deterministic atomic writes, and check mode."""

import copy
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest
from table_refs import ACTIVATIONS, check_softmax_rule, default_doc, truth

from momentcalc import MomentcalcError, __version__, tablefile, tables
from momentcalc.spec import canonical, parse
from momentcalc.tables import builder

REPO_TABLES = Path(__file__).resolve().parent.parent / "tables"


@pytest.fixture(scope="session")
def doc():
    return default_doc()


@pytest.fixture
def written(tmp_path, doc):
    tables.write(doc, tmp_path)
    return tmp_path


def _entry(document, spec):
    return next(e for e in document["entries"] if e["spec"] == canonical(spec))


def _edit(directory, change, digest=False):
    """Apply change(doc) to the table file in directory, as a person editing it by hand would.

    With digest=True the file is rewritten with a digest that holds (tablefile.dumps), as if the
    edit had been made by a program: the checks other than the digest's must then catch it.
    """
    path = directory / tablefile.TABLE_NAME
    document = json.loads(path.read_text())
    change(document)
    path.write_text(tablefile.dumps(document) if digest else json.dumps(document, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- content


def test_the_default_table_covers_what_the_issue_asks_for(doc):
    wanted = ["relu", "sigmoid", "relu | normalize | maxpool(k=3)"]
    wanted += [f"{pool}(k={k})" for pool in ("maxpool", "avgpool") for k in (2, 3, 4, 5)]
    wanted += [f"dropout(p={p}, scale={s})" for p in (0.5, 0.8, 0.9) for s in ("none", "sqrt", "inverse")]
    wanted += list(ACTIVATIONS)  # every activation of issue 5, at N(0, 1)
    wanted += ["glu", "swiglu", "geglu", "reglu", "lppool(p=2,k=2)", "lppool(p=2,k=3)"]  # issue 31's ops
    wanted += [f"{norm}(d={d})" for norm in ("rmsnorm", "layernorm") for d in (64, 768, 4096)]
    wanted += [f"residual(f=relu | normalize,tau={tau})" for tau in (0.1, 0.5)]
    wanted += [f"softmax(n={n})" for n in (16, 64, 256, 1024, 4096)]
    specs = [e["spec"] for e in doc["entries"]]
    assert sorted(specs) == sorted(canonical(w) for w in wanted)
    assert all((e["input"]["mu"], e["input"]["sigma"]) == (0.0, 1.0) for e in doc["entries"])


@pytest.mark.parametrize("spec", [canonical(s) for s in tables.DEFAULT_SPECS])
def test_every_entry_matches_its_independent_reference(doc, spec):
    entry = _entry(doc, spec)
    mean, std = truth(spec)
    assert entry["agree"] and entry["disagreements"] == []
    # The value of record is within twice its own reported error (plus float noise).
    assert abs(entry["mean"] - mean) <= 2 * entry["mean_se"] + 1e-12
    assert abs(entry["std"] - std) <= 2 * entry["std_se"] + 1e-12
    for e in entry["estimates"]:
        if e["method"] == "montecarlo":  # a fixed seed, so a z bound is a fixed test
            assert abs(e["mean"] - mean) <= 4.5 * e["mean_se"] and abs(e["std"] - std) <= 4.5 * e["std_se"]
            # An op sampled as whole vectors draws fewer outputs by default (estimators.sampled_mc)
            sized = parse(spec).ops[0].info.size is not None
            assert (e["samples"] <= doc["settings"]["samples"]) if sized else e["samples"] == doc["settings"]["samples"]
            assert e["seed"] == 0


def test_the_softmax_reference_reproduces_what_is_known():
    # the trapezoid rule behind softmax's references finds E[p_1] = 1/n and, at n = 2, mpmath's E[sigmoid(sqrt(2) z)^2]
    check_softmax_rule()


def test_each_entry_holds_provenance(doc):
    entry = _entry(doc, "maxpool(k=3)")
    assert entry["method"] in {e["method"] for e in entry["estimates"]}
    assert {"montecarlo", "quadrature"} <= {e["method"] for e in entry["estimates"]}
    for e in entry["estimates"]:
        assert (
            set(e)
            == set(tablefile.ESTIMATE_FIELDS)
            >= {"method", "mean", "std", "mean_se", "std_se", "samples", "seed", "seconds"}
        )
    assert doc["format_version"] == tablefile.FORMAT_VERSION
    assert doc["generator"]["version"] == __version__
    assert "momentcalc tables build" in doc["$comment"] and "do not edit" in doc["$comment"]


def test_the_file_satisfies_its_schema(doc):
    # The schema describes the file: the document as written, with its digest.
    assert tables.validate(json.loads(tablefile.dumps(doc))) == []


# ---------------------------------------------------------------- writing


def test_output_is_byte_deterministic_and_sorted(doc):
    text = tablefile.dumps(doc)
    assert text == tablefile.dumps(copy.deepcopy(doc))
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    # The header's digest is the sha256 of the text with the digest written as 64 zeros.
    digest = json.loads(text)[tablefile.DIGEST_KEY]
    assert hashlib.sha256(text.replace(digest, "0" * 64).encode()).hexdigest() == digest
    assert "NaN" not in text and "Infinity" not in text


def test_a_non_finite_number_is_refused():
    with pytest.raises(MomentcalcError, match="non-finite"):
        builder._clean({"mean": float("nan")})
    with pytest.raises(ValueError):
        tablefile.dumps({"mean": float("inf")})


def test_write_makes_the_table_and_its_schema(written, doc):
    assert json.loads((written / tablefile.TABLE_NAME).read_text()) == json.loads(tablefile.dumps(doc))
    assert (written / tablefile.SCHEMA_NAME).read_text() == tablefile.canonical_json(tablefile.schema())
    assert sorted(p.name for p in written.iterdir()) == [tablefile.TABLE_NAME, tablefile.SCHEMA_NAME]


def test_rebuilding_with_other_timings_leaves_the_files_untouched(written, doc):
    before = (written / tablefile.TABLE_NAME).read_bytes()
    retimed = copy.deepcopy(doc)
    for entry in retimed["entries"]:
        for e in entry["estimates"]:
            e["seconds"] += 1.5
    outcome = tables.write(retimed, written)
    assert outcome.written == () and len(outcome.unchanged) == 2
    assert (written / tablefile.TABLE_NAME).read_bytes() == before


def test_a_changed_value_is_rewritten(written, doc):
    changed = copy.deepcopy(doc)
    _entry(changed, "relu")["mean"] = 0.5
    outcome = tables.write(changed, written)
    assert outcome.written == (written / tablefile.TABLE_NAME,)
    assert _entry(tables.load(written / tablefile.TABLE_NAME), "relu")["mean"] == 0.5


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(written, doc, monkeypatch):
    before = (written / tablefile.TABLE_NAME).read_bytes()
    changed = copy.deepcopy(doc)
    _entry(changed, "relu")["mean"] = 0.5

    def killed(*args):
        raise KeyboardInterrupt  # as if the build were killed between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        tables.write(changed, written)
    assert (written / tablefile.TABLE_NAME).read_bytes() == before
    assert sorted(p.name for p in written.iterdir()) == [tablefile.TABLE_NAME, tablefile.SCHEMA_NAME]


def test_an_unwritable_directory_is_a_clear_error(tmp_path, doc):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(MomentcalcError, match="cannot write tables to"):
        tables.write(doc, blocker / "tables")


# ---------------------------------------------------------------- loading


def test_load_rejects_truncated_json(written):
    path = written / tablefile.TABLE_NAME
    path.write_text(path.read_text()[:500])
    with pytest.raises(MomentcalcError, match="corrupt table .*not valid JSON"):
        tables.load(path)


def test_load_rejects_another_format_version(written):
    _edit(written, lambda d: d.update(format_version=99), digest=True)
    with pytest.raises(MomentcalcError, match="format version 99"):
        tables.load(written / tablefile.TABLE_NAME)


def test_load_rejects_nan(written):
    path = written / tablefile.TABLE_NAME
    path.write_text(path.read_text().replace('"mean": 0.3989422804014327', '"mean": NaN', 1))
    with pytest.raises(MomentcalcError, match="NaN is not a number a table may hold"):
        tables.load(path)


def test_load_rejects_schema_violations(written):
    path = written / tablefile.TABLE_NAME
    _edit(written, lambda d: d["entries"][0].pop("method"), digest=True)
    with pytest.raises(MomentcalcError, match="schema violation.*'method' is a required property"):
        tables.load(path)


def test_load_of_a_missing_file_says_how_to_build_one(tmp_path):
    with pytest.raises(MomentcalcError, match="momentcalc tables build"):
        tables.load(tmp_path / "nothing.json")


# ---------------------------------------------------------------- check mode


def test_check_accepts_its_own_output(written, doc):
    outcome = tables.check(written, doc)
    assert outcome.ok and outcome.differences == ()


def test_check_catches_a_digit_changed_beyond_the_uncertainty(written, doc):
    # maxpool(k=3) is quadrature, SE ~1e-14: a change in the 7th digit is far outside.
    _edit(written, lambda d: _entry(d, "maxpool(k=3)").update(mean=_entry(d, "maxpool(k=3)")["mean"] + 1e-6))
    outcome = tables.check(written, doc)
    assert not outcome.ok
    assert any("'maxpool(k=3)'" in line and ": mean: file has" in line for line in outcome.differences)
    assert outcome.command == f"momentcalc tables build --dir {written}"


def test_check_catches_a_monte_carlo_mean_moved_in_its_7th_digit_even_with_a_valid_digest(written, doc):
    # Issue 13: an SE-based tolerance let relu's Monte Carlo mean change in its 7th digit.
    def nudge(d):
        mc = next(e for e in _entry(d, "relu")["estimates"] if e["method"] == "montecarlo")
        mc["mean"] += 1e-7

    _edit(written, nudge, digest=True)
    outcome = tables.check(written, doc)
    assert [line for line in outcome.differences if "montecarlo estimate: mean: file has" in line]
    assert not any("content_sha256" in line for line in outcome.differences)


def test_check_ignores_timing(written, doc):
    _edit(written, lambda d: _entry(d, "relu")["estimates"][0].update(seconds=123.0), digest=True)
    assert tables.check(written, doc).ok


def test_check_catches_an_entry_removed_or_added(written, doc):
    _edit(written, lambda d: d["entries"].remove(_entry(d, "sigmoid")))
    assert any(
        "'sigmoid'" in line and "missing from the file" in line for line in tables.check(written, doc).differences
    )
    tables.write(doc, written)

    def add(d):
        extra = copy.deepcopy(_entry(d, "relu"))
        extra["spec"] = "maxpool(k=7)"
        d["entries"].append(extra)

    _edit(written, add)
    assert any(
        "'maxpool(k=7)'" in line and "not in the regenerated table" in line
        for line in tables.check(written, doc).differences
    )


def test_check_reports_schema_violations(written, doc):
    _edit(written, lambda d: _entry(d, "relu").update(mean="0.39"))
    outcome = tables.check(written, doc)
    assert not outcome.ok and any("schema violation" in line for line in outcome.differences)


def test_check_catches_an_edited_schema_or_header(written, doc):
    schema = written / tablefile.SCHEMA_NAME
    schema.write_text(schema.read_text().replace('"minimum": 0', '"minimum": 1', 1))
    _edit(written, lambda d: d["generator"].update(version="0.0.1"))
    lines = tables.check(written, doc).differences
    assert any(line.startswith("schema.json") for line in lines)
    assert any("generator: version" in line for line in lines)


def test_check_raises_on_a_file_that_is_not_a_table(written, doc):
    (written / tablefile.TABLE_NAME).write_text("{")
    with pytest.raises(MomentcalcError, match="not valid JSON"):
        tables.check(written, doc)


# ---------------------------------------------------------------- entries in worker processes

SIDE_BY_SIDE = ("relu", "maxpool(k=3)", "tanh | normalize | maxpool(k=2)", "dropout(p=0.5,scale=inverse)")


def _build(jobs, progress=None, specs=SIDE_BY_SIDE):
    return tables.build(progress, specs=specs, samples=1 << 16, jobs=jobs)


# The same entries and progress from worker processes as from one (two builds): tests_long/test_long_tables.py.


def test_an_entry_that_fails_stops_every_worker_and_says_why():
    with pytest.raises(MomentcalcError, match="nosuch"):
        _build(2, specs=("relu", "relu | nosuch"))
    assert not multiprocessing.active_children()


def test_leaving_a_build_early_stops_every_worker():
    # Ctrl-C raises KeyboardInterrupt in the main process wherever it waits: here, in the progress callback.
    def interrupt(done, total, spec):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _build(2, interrupt)
    assert not multiprocessing.active_children()


def test_worker_processes_take_a_family_of_entries_each():
    # Entries of one first op share their kernels: a worker compiles them once (builder._families says why).
    specs = ("relu", "sigmoid", "maxpool(k=2)", "maxpool(k=3)", "relu | normalize | maxpool(k=3)", "dropout(p=0.5)")
    groups = builder._families(specs)
    assert sorted(i for g in groups for i in g) == list(range(len(specs)))
    assert groups[:2] == [[0, 4], [2, 3]] and sorted(groups[2:]) == [[1], [5]]

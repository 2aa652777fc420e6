"""Any changed digit of a table is caught: by `tables check`, and by every load (issue 13).

Each edit is made to the text of the committed table, as a person editing it by hand
would. The regenerated document the check compares with is the committed one parsed
(test_tables.py holds that equal to a fresh build), so these tests need no build.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from momentcalc import MomentcalcError, __version__, constants, tablefile, tables
from momentcalc.cli import app
from momentcalc.tables import differences

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "tables" / tablefile.TABLE_NAME
LOADERS = {"tablefile.read": tablefile.read, "constants.load": constants.load, "tables.load": tables.load}


@pytest.fixture(scope="module")
def original() -> str:
    text = tablefile.read_text(COMMITTED)
    # The edits below rely on this: the committed file is its own canonical spelling.
    assert text == tablefile.dumps(json.loads(text))
    return text


@pytest.fixture(scope="module")
def regenerated(original) -> dict:
    return json.loads(original)


@pytest.fixture
def directory(tmp_path):
    shutil.copy(COMMITTED, tmp_path / tablefile.TABLE_NAME)
    shutil.copy(COMMITTED.parent / tablefile.SCHEMA_NAME, tmp_path / tablefile.SCHEMA_NAME)
    return tmp_path


def _record(doc: dict, spec: str, method: str | None) -> dict:
    entry = next(e for e in doc["entries"] if e["spec"] == spec)
    return entry if method is None else next(e for e in entry["estimates"] if e["method"] == method)


_SENTINEL = 1234.5678901234567


def _with_number(original: str, spec: str, method: str | None, field: str, index: int | None, spelled: str) -> str:
    """original with one number respelled: the file exactly as it was, but for that one number."""
    doc = json.loads(original)
    record = _record(doc, spec, method)
    if index is None:
        record[field] = _SENTINEL
    else:
        record[field][index] = _SENTINEL
    text = tablefile.canonical_json(doc)  # the original digest stays, as a hand edit leaves it
    assert text.count(repr(_SENTINEL)) == 1
    return text.replace(repr(_SENTINEL), spelled)


def _change_digit(number: str, position: int) -> str:
    """number with its position-th significant digit (1 = the first nonzero one) raised by 1, 9 going to 0."""
    mantissa, e, exponent = number.partition("e")
    digits = [i for i, ch in enumerate(mantissa) if ch.isdigit()]
    significant = [i for i in digits if i >= next(j for j in digits if mantissa[j] != "0")]
    at = significant[position - 1]
    changed = mantissa[:at] + str((int(mantissa[at]) + 1) % 10) + mantissa[at + 1 :]
    return changed + e + exponent


def _value(original: str, spec: str, method: str | None, field: str, index: int | None):
    value = _record(json.loads(original), spec, method)[field]
    return value if index is None else value[index]


# (spec, method of the estimate or None for the entry's value of record, field, index in an interval, digit).
# Spread over means, stds, their SEs, intervals and grad_sq; over the value of record and the certified,
# closed, quadrature and Monte Carlo estimates; and over the first to the last significant digit.
DIGIT_EDITS = [
    ("relu", "montecarlo", "mean", None, 7),  # the issue's: 0.3988451926905004 -> 0.3988452926905004
    ("relu", "montecarlo", "std", None, 12),
    ("relu", "montecarlo", "mean_se", None, 3),
    ("relu", "montecarlo", "std_se", None, 16),
    ("relu", "montecarlo", "grad_sq", None, 9),
    ("relu", "montecarlo", "grad_sq_se", None, 1),
    ("relu", "quadrature", "mean_se", None, 1),
    ("relu", "quadrature", "mean", None, 16),
    ("relu", "certified", "mean", None, 15),
    ("relu", "certified", "mean_interval", 0, 16),
    ("relu", "certified", "std_interval", 1, 4),
    ("relu", "closed", "std", None, 11),
    ("relu", None, "mean", None, 16),
    ("relu", None, "std", None, 2),
    ("sigmoid", None, "grad_sq", None, 13),
    ("sigmoid", None, "grad_sq_interval", 1, 16),
    ("sigmoid", "montecarlo", "mean", None, 5),
    ("maxpool(k=3)", None, "mean", None, 6),
    ("maxpool(k=3)", None, "std_se", None, 1),
    ("maxpool(k=3)", "quadrature", "std", None, 14),
    ("maxpool(k=3)", "montecarlo", "std_se", None, 8),
    ("avgpool(k=4)", "closed", "std", None, 1),  # 0.25 exactly
    ("avgpool(k=2)", "quadrature", "mean", None, 2),  # 6e-18, where the truth is 0
    ("dropout(p=0.8)", "montecarlo", "grad_sq_se", None, 10),
    ("dropout(p=0.5,scale=inverse)", None, "std_interval", 1, 9),
    ("relu | normalize | maxpool(k=3)", None, "mean", None, 16),
    ("relu | normalize | maxpool(k=3)", "montecarlo", "mean", None, 14),
    ("tanh", "montecarlo", "mean", None, 3),  # sampling noise around a true 0
    ("selu", None, "mean", None, 1),  # 1.2e-32: a sum of std-sized terms
    ("gelu", "certified", "grad_sq_se", None, 1),
    ("log_sigmoid", "quadrature", "grad_sq", None, 12),
]


def _digit_edit(original: str, case) -> str:
    spec, method, field, index, position = case
    spelled = _change_digit(repr(_value(original, spec, method, field, index)), position)
    return _with_number(original, spec, method, field, index, spelled)


def _format_edits(original: str) -> dict[str, str]:
    """Edits that change how the file is written, not (or not only) what it says."""
    doc = json.loads(original)
    reordered = json.loads(original)
    first = reordered["entries"][0]["estimates"][0]
    reordered["entries"][0]["estimates"][0] = dict(reversed(first.items()))
    head, sep, tail = original.partition('\n          "mean": ')
    mean_line = '\n          "mean": ' + tail.split("\n", 1)[0]
    return {
        "keys reordered": json.dumps(reordered, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        "indent 4": json.dumps(doc, sort_keys=True, indent=4, allow_nan=False, ensure_ascii=False) + "\n",
        "4194304.0": original.replace('"samples": 4194304,', '"samples": 4194304.0,', 1),
        # a value the check compares ("seconds", the first 0.0 in the file now, it leaves out)
        "-0.0 for 0.0": original.replace('"mean_se": 0.0,', '"mean_se": -0.0,', 1),
        "mu -0.0": original.replace('"mu": 0.0', '"mu": -0.0', 1),
        "a key duplicated": head + mean_line + sep + tail,
        "a key duplicated with another value": head + '\n          "mean": 0.5,' + sep + tail,
        "0.5 as 0.50": original.replace(": 0.5,", ": 0.50,", 1),
        "0.5 as 5e-1": original.replace(": 0.5,", ": 5e-1,", 1),
        "exponent as E": original.replace("e-17,", "E-17,", 1),
        "no final newline": original[:-1],
        "a space more": original.replace('"agree": true', '"agree":  true', 1),
        "the digest edited": re.sub(
            r'"content_sha256": "(.)', lambda m: m.group(0)[:-1] + "0f"[m.group(1) == "0"], original
        ),
        "seconds edited by hand": original.replace('"seconds": ', '"seconds": 1', 1),
    }


FORMAT_EDITS = sorted(_format_edits(tablefile.read_text(COMMITTED)))


def _check(directory: Path, text: str, regenerated: dict) -> tables.CheckResult:
    (directory / tablefile.TABLE_NAME).write_text(text, encoding="utf-8")
    return tables.check(directory, regenerated)


@pytest.mark.parametrize("case", DIGIT_EDITS, ids=[f"{c[0]} {c[1] or 'record'} {c[2]} #{c[4]}" for c in DIGIT_EDITS])
def test_check_catches_every_single_digit_edit(directory, original, regenerated, case):
    edited = _digit_edit(original, case)
    assert edited != original
    outcome = _check(directory, edited, regenerated)
    assert not outcome.ok
    assert f"{tablefile.TABLE_NAME}: its content does not match its content_sha256 (edited by hand?)" in (
        outcome.differences
    )
    # Where the number moved by more than the tolerance, the line also names it.
    spec, method, field, index, _ = case
    old, new = _value(original, *case[:4]), _value(edited, *case[:4])
    record = _record(regenerated, spec, method)
    if abs(new - old) > differences.allowed(record, field, old, new):
        assert any(f": {field}" in line and "file has" in line for line in outcome.differences), outcome.differences


@pytest.mark.parametrize("case", DIGIT_EDITS, ids=[f"{c[0]} {c[1] or 'record'} {c[2]} #{c[4]}" for c in DIGIT_EDITS])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_refuses_a_single_digit_edit(tmp_path, original, case, loader):
    path = tmp_path / tablefile.TABLE_NAME
    path.write_text(_digit_edit(original, case), encoding="utf-8")
    with pytest.raises(MomentcalcError) as info:
        LOADERS[loader](path)
    assert str(info.value) == (
        f"corrupt table {str(path)!r}: its content does not match its content_sha256 (edited by hand?); "
        "regenerate it with `momentcalc tables build`"
    )


@pytest.mark.parametrize("name", FORMAT_EDITS)
def test_check_catches_every_format_edit_and_load_refuses_it(directory, original, regenerated, name):
    edited = _format_edits(original)[name]
    assert edited != original
    outcome = _check(directory, edited, regenerated)
    assert not outcome.ok, name
    with pytest.raises(MomentcalcError, match="corrupt table .*content_sha256"):
        constants.load(directory / tablefile.TABLE_NAME)


@pytest.mark.parametrize(
    "name, says",
    [
        ("keys reordered", "not in canonical form"),
        ("indent 4", "not in canonical form"),
        ("4194304.0", "samples: file has 4194304.0, regenerated 4194304"),
        ("-0.0 for 0.0", "file has -0.0, regenerated 0.0"),
        ("mu -0.0", "input: mu: file has -0.0, regenerated 0.0"),
        ("a key duplicated", "the key 'mean' appears twice in one object"),
        ("0.5 as 5e-1", "not in canonical form"),
        ("no final newline", "is '(end of file)' where the canonical text has ''"),
    ],
)
def test_check_says_what_is_wrong_with_the_format(directory, original, regenerated, name, says):
    outcome = _check(directory, _format_edits(original)[name], regenerated)
    assert any(says in line for line in outcome.differences), outcome.differences


@pytest.mark.parametrize("name", FORMAT_EDITS)
def test_build_rewrites_a_file_it_did_not_write(directory, original, regenerated, name):
    path = directory / tablefile.TABLE_NAME
    path.write_text(_format_edits(original)[name], encoding="utf-8")
    outcome = tables.write(regenerated, directory)
    assert path in outcome.written and path not in outcome.unchanged
    assert path.read_text(encoding="utf-8") == original


def test_the_committed_table_passes_and_a_rebuild_keeps_it(directory, original, regenerated):
    assert tables.check(directory, regenerated).ok
    outcome = tables.write(regenerated, directory)
    assert outcome.written == () and len(outcome.unchanged) == 2


# ---------------------------------------------------------------- the tolerance of a regenerated number


def _nudged(regenerated: dict, spec: str, method: str, field: str, ulps: float) -> tuple[dict, float]:
    doc = json.loads(json.dumps(regenerated))
    record = _record(doc, spec, method)
    scale = differences.scale_of(record, field)
    record[field] += ulps * math.ulp(max(abs(record[field]), scale))
    return doc, scale


@pytest.mark.parametrize(
    "spec, method, field",
    [
        ("relu", "montecarlo", "mean"),
        ("relu", "montecarlo", "mean_se"),  # an SE moves by ulps of the mean's scale, not its own
        ("avgpool(k=2)", "quadrature", "mean"),  # 6e-18: ulps of the std, 1, not of itself
        ("sigmoid", "montecarlo", "grad_sq"),
    ],
)
def test_a_regenerated_number_may_move_a_few_ulps_of_its_scale_and_no_more(directory, regenerated, spec, method, field):
    # Here the file stays as committed and the regenerated document moves, as on another platform.
    within, scale = _nudged(regenerated, spec, method, field, differences.ULPS)
    assert tables.check(directory, within).ok
    beyond, _ = _nudged(regenerated, spec, method, field, 2 * differences.ULPS + 1)
    lines = tables.check(directory, beyond).differences
    assert len(lines) == 1 and f"{method} estimate: {field}: file has" in lines[0]
    assert scale > 0


def test_timing_is_the_one_thing_a_rebuild_may_change(directory, regenerated):
    retimed = json.loads(json.dumps(regenerated))
    for entry in retimed["entries"]:
        for e in entry["estimates"]:
            e["seconds"] += 1.5
    assert tables.check(directory, retimed).ok
    assert tables.write(retimed, directory).written == ()


# ---------------------------------------------------------------- schema-invalid tables, digest intact


def _set(path: str, value):
    """An edit of the parsed table at path (keys and list indices joined by '/')."""

    def edit(doc):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        target = doc
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return edit


_DELETE = object()

# Written by tablefile.dumps, so that the digest holds and the schema alone must refuse them.
SCHEMA_INVALID = {
    '"agree": "false"': (_set("entries/0/agree", "false"), "entries/0/agree: 'false' is not of type boolean"),
    "a negative std": (_set("entries/0/std", -0.58), "entries/0/std: -0.58 is less than 0"),
    "a negative std in an estimate": (_set("entries/1/estimates/2/std", -1.0), "estimates/2/std: -1.0 is less than 0"),
    'method "bogus"': (_set("entries/0/method", "bogus"), "entries/0/method: 'bogus' is not one of 'certified'"),
    'an estimate by "bogus"': (_set("entries/3/estimates/1/method", "bogus"), "estimates/1/method: 'bogus'"),
    "a mean as text": (_set("entries/0/mean", "0.39"), "entries/0/mean: '0.39' is not of type number"),
    "a mean missing": (_set("entries/0/mean", _DELETE), "entries/0: 'mean' is a required property"),
    "an unknown field": (_set("entries/0/meen", 0.4), "entries/0: 'meen' is not a property it may have"),
    "a negative mean_se": (_set("entries/2/mean_se", -1e-16), "entries/2/mean_se: -1e-16 is less than 0"),
    "samples as a float": (_set("entries/0/estimates/3/samples", 4194304.5), "samples: 4194304.5 is not of type"),
    "a negative seed": (_set("entries/0/estimates/3/seed", -1), "seed: -1 is less than 0"),
    "sigma 0": (_set("entries/0/input/sigma", 0.0), "input/sigma: 0.0 is not greater than 0"),
    "an interval of three": (_set("entries/0/mean_interval", [0.1, 0.2, 0.3]), "mean_interval: a list of 3 items"),
    "a negative grad_sq": (_set("entries/0/grad_sq", -0.5), "entries/0/grad_sq: -0.5 is less than 0"),
    "a disagreement not text": (_set("entries/0/disagreements", [1]), "disagreements/0: 1 is not of type string"),
    "notes as text": (_set("entries/0/estimates/0/notes", "none"), "notes: 'none' is not of type array"),
    "another generator": (_set("generator/name", "other"), "generator/name: 'other' is not 'momentcalc'"),
    "no samples": (_set("settings/samples", 0), "settings/samples: 0 is less than 1"),
    "entries not a list": (_set("entries", {}), "entries: {} is not of type array"),
    "an empty spec": (_set("entries/0/spec", ""), "entries/0/spec: '' is shorter than 1 characters"),
    "negative seconds": (_set("entries/0/estimates/0/seconds", -1.0), "seconds: -1.0 is less than 0"),
    "agree as 1": (_set("entries/0/agree", 1), "entries/0/agree: 1 is not of type boolean"),
    "an extra top-level key": (_set("note", "x"), "top level: 'note' is not a property it may have"),
}
# What a schema cannot say, which constants.load checks too.
BEYOND_SCHEMA = {
    "an interval that does not hold its value": (
        _set("entries/0/mean_interval", [0.1, 0.2]),
        "entry 0 ('relu'): mean_interval [0.1, 0.2] does not hold its value 0.3989422804014327",
    ),
    "an interval upside down": (_set("entries/0/estimates/0/std_interval", [0.6, 0.5]), "std_interval [0.6, 0.5]"),
    "a spec not spelled canonically": (
        _set("entries/2/spec", "maxpool( k=2 )"),
        "entry 2 spells its spec 'maxpool( k=2 )', not canonically 'maxpool(k=2)'",
    ),
    "an entry twice, by another name": (
        _set("entries/3/spec", "maxpool(n=4)"),
        "entry 3 ('maxpool(n=4)' at N(0, 1^2)) repeats entry 2 ('maxpool(k=2)')",
    ),
    "an unknown op": (_set("entries/0/spec", "relo"), "unknown op 'relo'"),
}


def _written(tmp_path: Path, original: str, edit) -> Path:
    doc = json.loads(original)
    edit(doc)
    path = tmp_path / tablefile.TABLE_NAME
    path.write_text(tablefile.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(SCHEMA_INVALID) + sorted(BEYOND_SCHEMA))
def test_load_refuses_an_invalid_table_in_one_line(tmp_path, original, name):
    edit, says = {**SCHEMA_INVALID, **BEYOND_SCHEMA}[name]
    path = _written(tmp_path, original, edit)
    with pytest.raises(MomentcalcError) as info:
        constants.load(path)
    message = str(info.value)
    assert "\n" not in message and says in message, message
    assert message.startswith(f"corrupt table {str(path)!r}: ")
    assert message.endswith("; regenerate it with `momentcalc tables build`")


@pytest.mark.parametrize("name", sorted(SCHEMA_INVALID))
def test_jsonschema_refuses_what_the_light_checker_refuses(tmp_path, original, name):
    doc = json.loads(original)
    SCHEMA_INVALID[name][0](doc)
    assert tables.validate(doc), name
    assert tablefile.schema_problems(doc), name


def test_both_validators_accept_the_committed_table(regenerated):
    assert tables.validate(regenerated) == [] and tablefile.schema_problems(regenerated) == []


# ---------------------------------------------------------------- format versions


def test_a_table_of_format_2_is_refused_with_how_to_regenerate_it(tmp_path, original):
    doc = json.loads(original)
    doc["format_version"] = 2
    del doc[tablefile.DIGEST_KEY]
    path = tmp_path / "old.json"
    path.write_text(tablefile.canonical_json(doc))
    with pytest.raises(MomentcalcError) as info:
        constants.load(path)
    assert str(info.value) == (
        f"table {str(path)!r} has format version 2; this momentcalc {__version__} reads version 3; "
        "regenerate it with `momentcalc tables build`"
    )


def test_a_table_without_its_digest_is_refused(tmp_path, original):
    doc = json.loads(original)
    del doc[tablefile.DIGEST_KEY]
    path = tmp_path / "t.json"
    path.write_text(tablefile.canonical_json(doc))
    with pytest.raises(MomentcalcError, match="its header holds no content_sha256"):
        constants.load(path)


def test_line_ends_converted_by_git_are_not_an_edit(tmp_path, original):
    path = tmp_path / "crlf.json"
    path.write_bytes(original.replace("\n", "\r\n").encode())
    assert len(constants.load(path)) == len(json.loads(original)["entries"])


# ---------------------------------------------------------------- a killed build's temporary files


def test_build_removes_the_temporary_files_of_a_killed_build(directory, regenerated):
    stale = [directory / ".normprop.json.k1ll3d.tmp", directory / ".schema.json.abc_12.tmp"]
    for path in stale:
        path.write_text('{"half": ')
    keep = directory / "notes.tmp"
    keep.write_text("not ours")
    outcome = tables.write(regenerated, directory)
    assert sorted(outcome.removed) == sorted(stale)
    assert not any(path.exists() for path in stale) and keep.exists()


def test_git_ignores_the_temporary_files(tmp_path):
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = ["tables/.normprop.json.k1ll3d.tmp", "tables/.schema.json.x.tmp"]
    done = subprocess.run([git, "check-ignore", *names], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == names


# ---------------------------------------------------------------- outside a checkout: the packaged table


def test_show_outside_a_checkout_reads_the_packaged_table(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "momentcalc", "tables", "show"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    packaged = tablefile.default_path()
    assert f"no ./tables here: reading the table packaged with momentcalc, {packaged.parent}/" in done.stdout
    assert f"{packaged}: momentcalc" in done.stdout and "maxpool(k=3)" in done.stdout


def test_check_outside_a_checkout_checks_the_packaged_table(tmp_path, monkeypatch, regenerated):
    monkeypatch.chdir(tmp_path)
    # The build itself: test_tables.py.
    monkeypatch.setattr(tables, "build", lambda progress=None, **settings: regenerated)
    result = CliRunner().invoke(app, ["tables", "check"])
    assert result.exit_code == 0, result.output
    assert "reading the table packaged with momentcalc" in result.output
    assert f"ok: the tables in {tablefile.default_path().parent}/ match" in " ".join(result.output.split())


def test_an_explicit_dir_never_falls_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tables.table_directory(None) == (tablefile.default_path().parent, True)
    assert tables.table_directory("tables") == (Path("tables"), False)
    (tmp_path / "tables").mkdir()
    assert tables.table_directory(None) == (Path("tables"), False)


@pytest.mark.parametrize(
    "spec, method, field",
    [("relu", "certified", "mean"), ("maxpool(k=3)", "certified", "std_se"), ("selu", None, "mean")],
)
def test_a_certified_number_must_regenerate_bit_for_bit(directory, regenerated, spec, method, field):
    moved = json.loads(json.dumps(regenerated))
    record = _record(moved, spec, method)
    record[field] = math.nextafter(record[field], math.inf)
    lines = tables.check(directory, moved).differences
    assert len(lines) == 1 and f": {field}: file has" in lines[0] and "tolerance 0" in lines[0]


def test_build_says_which_temporary_files_it_removed(directory, monkeypatch, regenerated):
    stale = directory / ".normprop.json.k1ll3d.tmp"
    stale.write_text("{")
    monkeypatch.setattr(tables, "build", lambda progress=None, **settings: regenerated)
    result = CliRunner().invoke(app, ["tables", "build", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert f"removed {stale} (left by a build that was killed)" in " ".join(result.output.split())
    assert "unchanged" in result.output and not stale.exists()

"""constants: light import, any spelling of a key, frozen records, clear misses."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
from fresh import run_python
from table_refs import truth

from momentcalc import MomentcalcError, constants, tablefile, tables

REPO = Path(__file__).resolve().parent.parent


def test_import_is_light():
    # Its speed is measured in bench/throughput.py, not asserted here: shared machines are noisy.
    code = (
        "import sys\n"
        "import momentcalc.constants\n"
        "print(repr(sorted(m for m in ('numba', 'scipy', 'jsonschema') if m in sys.modules)))\n"
    )
    assert eval(run_python(code)) == []


def test_get_reads_the_table_without_heavy_imports():
    out = run_python(
        "import sys\nfrom momentcalc import constants, tables\nc = constants.get('maxpool(k=3)')\n"
        "print(c.mean, 'numba' in sys.modules, 'scipy' in sys.modules)"
    )
    assert out.split()[1:] == ["False", "False"]


@pytest.mark.parametrize(
    "spec", ["relu", "maxpool(k=3)", "relu | normalize | maxpool(k=3)", "dropout(p=0.8,scale=none)", "sigmoid"]
)
def test_values_agree_with_independent_references(spec):
    c = constants.get(spec)
    mean, std = truth(spec)
    assert abs(c.mean - mean) <= 2 * c.mean_se + 1e-12
    assert abs(c.std - std) <= 2 * c.std_se + 1e-12
    assert c.agree and c.disagreements == ()


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("maxpool( k = 3 )", "maxpool(k=3)"),
        ("maxpool(k=3, dims=2)", "maxpool(k=3)"),
        ("dropout(scale=sqrt, p=0.8)", "dropout(p=0.8)"),
        ("dropout(scale=none,p=0.5)", "dropout(p=0.5,scale=none)"),
        ("relu|normalize|maxpool(k=3)", "relu | normalize | maxpool(k=3)"),
        ("  relu  ", "relu"),
        # A window is n iid values, n = k**dims (DESIGN.md): its size names it as well as its shape.
        ("maxpool(n=9)", "maxpool(k=3)"),
        ("maxpool(k=9,dims=1)", "maxpool(k=3)"),
        ("maxpool(k=3,s=3)", "maxpool(k=3)"),  # the default stride, spelled out
        ("avgpool(n=16)", "avgpool(k=4)"),
        ("avgpool(k=5,dims=2)", "avgpool(k=5)"),
        ("relu | normalize | maxpool(n=9)", "relu | normalize | maxpool(k=3)"),
        ("maxpool(n=8)", None),  # 8 is no k**2: no entry
        ("maxpool(k=2,dims=3)", None),  # 8 values: not maxpool(k=2)'s 4
        ("maxpool(k=3,s=2)", None),  # a stride or padding keeps its own key
        ("minpool(n=9)", None),  # another reduction
    ],
)
def test_any_spelling_of_the_same_spec_finds_it(spelling, canonical):
    if canonical is None:
        with pytest.raises(KeyError):
            constants.get(spelling)
        return
    assert constants.get(spelling) is constants.get(canonical)
    assert constants.get(spelling).spec == canonical


def test_input_keywords_select_the_entry():
    assert constants.get("relu", mu=0, sigma=1) is constants.get("relu")
    with pytest.raises(KeyError, match="at mu=0.5, sigma=2"):
        constants.get("relu", mu=0.5, sigma=2)


def test_a_constant_is_a_frozen_record_with_provenance():
    c = constants.get("maxpool(k=2)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.mean = 1.0
    # E[max of 4 iid N(0,1)] = 6 atan(sqrt 2) / pi^(3/2) (closed form for n = 4).
    assert c.mean == pytest.approx(6 * math.atan(math.sqrt(2)) / math.pi**1.5, abs=1e-14)
    assert c.method == "certified" and c.mean_se < 1e-15
    assert c.mean_interval[0] <= 6 * math.atan(math.sqrt(2)) / math.pi**1.5 <= c.mean_interval[1]
    assert {e.method for e in c.estimates} >= {"certified", "closed", "montecarlo"}
    mc = next(e for e in c.estimates if e.method == "montecarlo")
    assert mc.samples > 0 and mc.seed == 0 and mc.seconds >= 0
    assert c.version and c.source.endswith("normprop.json")


def test_keys_are_the_canonical_specs():
    keys = constants.keys()
    assert "maxpool(k=3)" in keys and "relu | normalize | maxpool(k=3)" in keys
    assert len(keys) == len(set(keys)) == len(tables.DEFAULT_SPECS)


def test_unknown_keys_suggest_the_nearest():
    with pytest.raises(KeyError, match=r"nearest keys: 'maxpool\(k=5\)'"):
        constants.get("maxpool(k=6)")
    with pytest.raises(KeyError, match="maxpool") as info:
        constants.get("maxpol(k=3)")
    assert isinstance(info.value, MomentcalcError)
    assert "did you mean 'maxpool'" in str(info.value)


def test_load_another_table(tmp_path):
    doc = json.loads(constants.default_path().read_text())
    doc["entries"] = [e for e in doc["entries"] if e["spec"].startswith("avgpool")]
    path = tmp_path / "other_table.json"
    path.write_text(tablefile.dumps(doc))
    table = constants.load(path)
    assert table.keys() == [f"avgpool(k={k})" for k in (2, 3, 4, 5)]
    assert table.get("avgpool(k=4)").std == 0.25  # 1/k exactly
    with pytest.raises(KeyError):
        table.get("relu")


def _v3(doc: dict) -> str:
    return tablefile.dumps({"format_version": tablefile.FORMAT_VERSION, **doc})


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format_version": 3, "entries": [', "not valid JSON"),
        ('{"format_version": 1, "generator": {"version": "9"}, "entries": []}', "format version 1"),
        (
            _v3({"generator": {"version": "0"}, "entries": [{"spec": "relu"}]}),
            r"corrupt table.*schema violation at top level: '\$comment' is a required property \(and 17 more\)",
        ),
        (_v3({"entries": []}), "corrupt table.*schema violation"),
        ('{"format_version": 3, "generator": {"version": "0"}, "entries": [], "x": NaN}', "NaN"),
    ],
)
def test_load_rejects_corrupt_tables(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(MomentcalcError, match=message):
        constants.load(path)


@pytest.mark.parametrize("path", [None, 3.5, object()])
def test_load_of_something_that_is_not_a_path_is_a_clear_error(path):
    with pytest.raises(MomentcalcError, match=r"a table is read from a path \(str or os.PathLike\), got "):
        constants.load(path)


def test_the_table_is_found_in_the_source_tree():
    assert constants.default_path() in (
        REPO / "tables" / "normprop.json",
        REPO / "momentcalc" / "_tables" / "normprop.json",
    )

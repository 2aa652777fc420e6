"""tablefile: the one reader of table files, used by both constants and tables."""

import importlib
import json
import pkgutil

import pytest

from momentcalc import MomentcalcError, __version__, constants, tablefile, tables

BUILD = "`momentcalc tables build`"
# Every reader of a table file: each must give the same one-line error.
LOADERS = {"tablefile.read": tablefile.read, "constants.load": constants.load, "tables.load": tables.load}


def _error(loader, path) -> str:
    with pytest.raises(MomentcalcError) as info:
        LOADERS[loader](path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(params=sorted(LOADERS))
def loader(request):
    return request.param


def test_another_format_version_names_both_versions(tmp_path, loader):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"format_version": 1, "generator": {"version": "9"}, "entries": []}))
    assert _error(loader, path) == (
        f"table {str(path)!r} has format version 1; this momentcalc {__version__} reads version "
        f"{tablefile.FORMAT_VERSION}; regenerate it with {BUILD}"
    )


def test_a_missing_format_version_is_reported_as_none(tmp_path, loader):
    path = tmp_path / "t.json"
    path.write_text('{"entries": []}')
    assert "has format version None; " in _error(loader, path)


def test_a_missing_file_says_how_to_build_one(tmp_path, loader):
    path = tmp_path / "nothing.json"
    assert _error(loader, path) == f"no table at {str(path)!r}; build one with {BUILD}"


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"format_version": 2, "entries": [', "not valid JSON (Expecting value at line 1 column 35)"),
        ("", "not valid JSON (Expecting value at line 1 column 1)"),
        ('{"format_version": 2, "entries": [], "x": NaN}', "NaN is not a number a table may hold"),
        ('{"format_version": 2, "entries": [], "x": -Infinity}', "-Infinity is not a number a table may hold"),
        ("[1, 2]", "its top level is a JSON list, not an object"),
    ],
)
def test_corrupt_content_says_what_is_wrong_and_how_to_fix_it(tmp_path, loader, text, problem):
    path = tmp_path / "t.json"
    path.write_text(text)
    assert _error(loader, path) == f"corrupt table {str(path)!r}: {problem}; regenerate it with {BUILD}"


def test_bytes_that_are_not_utf8_are_corrupt(tmp_path, loader):
    path = tmp_path / "t.json"
    path.write_bytes(b'{"format_version": 2, "x": "\xff"}')
    assert _error(loader, path).startswith(f"corrupt table {str(path)!r}: not UTF-8 text (invalid start byte")


def test_a_directory_cannot_be_read_as_a_table(tmp_path, loader):
    assert _error(loader, tmp_path).startswith(f"cannot read table {str(tmp_path)!r}: ")


def test_read_returns_the_document_without_schema_validation(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(tablefile.dumps({"format_version": 3, "anything": [1.5]}))
    doc = tablefile.read(path)
    assert doc == {"format_version": 3, "anything": [1.5], tablefile.DIGEST_KEY: doc[tablefile.DIGEST_KEY]}
    assert tablefile.read(str(path)) == doc


@pytest.mark.parametrize("path", [None, 123, b"tables/normprop.json", ["t.json"]])
def test_a_path_that_is_not_one_is_a_clear_error(loader, path):
    message = _error(loader, path)
    assert message == f"a table is read from a path (str or os.PathLike), got {path!r}"


def test_the_names_live_in_tablefile_alone():
    shared = ("FORMAT_VERSION", "TABLE_NAME", "SCHEMA_NAME", "DEFAULT_DIR", "BUILD_COMMAND", "read", "dumps", "schema")
    # tables is a package: each of its modules that uses a name imports it from tablefile, none defines its own.
    modules = [
        tables,
        *(importlib.import_module(f"{tables.__name__}.{m.name}") for m in pkgutil.iter_modules(tables.__path__)),
    ]
    for name in (*shared, "ENTRY_FIELDS", "ESTIMATE_FIELDS", "INTERVAL_FIELDS", "HEADER", "DIGEST_KEY"):
        holders = [m for m in modules if hasattr(m, name)]
        assert holders and all(getattr(m, name) is getattr(tablefile, name) for m in holders), name
    assert constants.default_path is tablefile.default_path
    assert not hasattr(constants, "FORMAT_VERSION") and not hasattr(constants, "TABLE_NAME")


def test_the_default_table_is_readable_and_current():
    path = tablefile.default_path()
    assert path.name == tablefile.TABLE_NAME
    assert tablefile.read(path)["format_version"] == tablefile.FORMAT_VERSION

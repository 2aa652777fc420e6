"""Read a table and validate it against its schema (jsonschema, loaded on first use); find the directory to read.

Reading a file (format version, digest, missing or corrupt file) is tablefile's; this module adds the schema and
the rule that an entry appears once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._lazy import lazy_module
from ..tablefile import DEFAULT_DIR, corrupt, default_path, read, schema

jsonschema = lazy_module("jsonschema")  # about 0.1 s: only when a table is checked


def validate(doc: dict) -> list[str]:
    """Every way the document breaks the schema (by jsonschema), or a key is repeated; [] when valid."""

    validator = jsonschema.Draft202012Validator(schema())
    problems = [
        f"schema violation at {'/'.join(map(str, error.absolute_path)) or 'top level'}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if not problems:
        seen = set()
        for entry in doc["entries"]:
            key = entry_key(entry)
            if key in seen:
                problems.append(f"entry {describe(key)} appears more than once")
            seen.add(key)
    return problems


def load(path: str | os.PathLike) -> dict:
    """Read and validate a table; raise MomentcalcError saying what is wrong with it."""
    doc = read(path)
    problems = validate(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise corrupt(path, f"{problems[0]}{more}")
    return doc


def entry_key(entry: dict) -> tuple[str, float, float]:
    return entry["spec"], float(entry["input"]["mu"]), float(entry["input"]["sigma"])


def describe(key: tuple[str, float, float]) -> str:
    spec, mu, sigma = key
    return f"'{spec}' at N({mu:g}, {sigma:g}^2)"


def table_directory(directory: str | os.PathLike | None) -> tuple[Path, bool]:
    """The directory to read: the one given; else ./tables; else the table packaged with momentcalc.

    Returns (directory, packaged): packaged is True when ./tables does not exist and the
    packaged table (tablefile.default_path: momentcalc/_tables in a wheel, tables/ of a
    source checkout) is read instead, so `tables show` and `check` work from any folder.
    """
    if directory is not None:
        return Path(directory), False
    if DEFAULT_DIR.is_dir():
        return DEFAULT_DIR, False
    return default_path().parent, True

"""Check table files against a regenerated table: the file's own canonical text and digest, its schema, its
numbers (differences.py), and schema.json; every difference is one line, with the command that regenerates the files."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import MomentcalcError
from ..tablefile import (
    BUILD_COMMAND,
    DEFAULT_DIR,
    DIGEST_KEY,
    SCHEMA_NAME,
    TABLE_NAME,
    canonical_json,
    digest_problem,
    dumps,
    parse,
    read_text,
    schema,
)
from .differences import compare, diff
from .reading import describe, entry_key, validate


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    differences: tuple[str, ...]
    command: str  # the exact command that regenerates the files


@dataclass(frozen=True)
class Recorded:
    """The table file as read: its text, the document, and every key that it repeats in one object."""

    text: str
    doc: dict
    duplicates: list[str]


def read_recorded(path: Path) -> Recorded | None:
    """The table file, parsed (None if there is none); raises MomentcalcError when it cannot be read as a table at
    all (unreadable, not JSON, another format version)."""
    if not path.exists():
        return None
    text = read_text(path)
    duplicates: list[str] = []
    doc = parse(path, text, object_pairs_hook=lambda pairs: _no_duplicates(pairs, duplicates))
    return Recorded(text, doc, duplicates)


def against(directory: Path, recorded: Recorded | None, fresh: dict) -> CheckResult:
    """Every difference of the files in directory (the table as read_recorded read it, and schema.json) from the
    regenerated table fresh."""
    if recorded is None:
        differences = [f"{TABLE_NAME}: missing"]
    else:
        differences = _check_text(recorded.text, recorded.doc, recorded.duplicates)
        differences += _check_table(directory / TABLE_NAME, recorded.doc, fresh)
    differences += _check_schema(directory / SCHEMA_NAME)
    return CheckResult(not differences, tuple(differences), regenerate_command(directory))


def regenerate_command(directory: Path) -> str:
    if Path(directory) == DEFAULT_DIR:
        return BUILD_COMMAND
    return f"{BUILD_COMMAND} --dir {shlex.quote(str(directory))}"


def _no_duplicates(pairs: list[tuple[str, object]], duplicates: list[str]) -> dict:
    """object_pairs_hook: json keeps the last of a repeated key silently; note each one."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        duplicates += sorted({k for k, _ in pairs if sum(1 for j, _ in pairs if j == k) > 1})
    return obj


def _check_text(text: str, recorded: dict, duplicates: list[str]) -> list[str]:
    """The file against its own canonical serialization: digest, key order, indent, number spelling."""
    lines = [f"{TABLE_NAME}: the key {key!r} appears twice in one object" for key in duplicates]
    problem = digest_problem(text)
    if problem:
        lines.append(f"{TABLE_NAME}: {problem}")
    # Line by line, the digest line aside (reported above): where the spelling differs.
    digest_line = f'  "{DIGEST_KEY}": '
    ours = [(number, line) for number, line in enumerate(text.split("\n"), 1) if not line.startswith(digest_line)]
    canonical = [line for line in dumps(recorded).split("\n") if not line.startswith(digest_line)]
    if [line for _, line in ours] != canonical:
        at = next((i for i, ((_, a), b) in enumerate(zip(ours, canonical)) if a != b), min(len(ours), len(canonical)))
        number, mine = ours[at] if at < len(ours) else ((ours[-1][0] + 1) if ours else 1, "(end of file)")
        expected = canonical[at] if at < len(canonical) else "(end of file)"
        lines.append(
            f"{TABLE_NAME}: not in canonical form (sorted keys, two-space indent, repr numbers): line {number} "
            f"is {mine.strip()[:80]!r} where the canonical text has {expected.strip()[:80]!r}"
        )
    return lines


def _check_table(path: Path, doc: dict, fresh: dict) -> list[str]:
    problems = validate(doc)
    if problems:
        return [f"{path.name}: {p}" for p in problems]
    lines = compare(doc, fresh, path.name)
    lines += [
        f"{path.name}: entry {describe(entry_key(e))}: its estimates disagree ({', '.join(e['disagreements'])})"
        for e in doc["entries"]
        if not e["agree"]
    ]
    return lines


def _check_schema(path: Path) -> list[str]:
    if not path.exists():
        return [f"{path.name}: missing"]
    try:
        text = read_text(path)  # with read_text's size cap
    except MomentcalcError as why:
        return [f"{path.name}: unreadable ({why})"]
    if text == canonical_json(schema()):
        return []
    try:
        lines = diff(json.loads(text), schema(), path.name, {})
    except json.JSONDecodeError as why:
        return [f"{path.name}: not JSON ({why})"]
    return lines or [f"{path.name}: not in canonical form (sorted keys, two-space indent)"]

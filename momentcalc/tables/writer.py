"""Write a table and its schema atomically, leaving alone a file that already matches (a rebuild makes no diff)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MomentcalcError, WriteError
from ..tablefile import DEFAULT_DIR, SCHEMA_NAME, TABLE_NAME, canonical_json, dumps, read, read_text, schema
from .differences import compare
from .reading import validate


@dataclass(frozen=True)
class WriteResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    removed: tuple[Path, ...] = ()  # temporary files a killed build left behind


def write(doc: dict, directory: str | os.PathLike = DEFAULT_DIR, name: str = TABLE_NAME) -> WriteResult:
    """Write the table and schema.json atomically; leave alone a file that already matches.

    "Matches" means what check() means: the file is byte for byte its own canonical
    serialization (digest included), valid, and equal to doc to a few ulps ignoring
    timing, so a rebuild makes no diff. Temporary files of a killed build are removed.
    """
    directory = ensure_writable(directory)
    removed = _remove_stale_temporaries(directory, (name, SCHEMA_NAME))
    table_text, schema_text = dumps(doc), canonical_json(schema())
    written, unchanged = [], []
    for path, text, same in (
        (directory / name, table_text, lambda p: _table_matches(p, doc)),
        (directory / SCHEMA_NAME, schema_text, lambda p: read_text(p) == schema_text),
    ):
        if path.exists() and _safe(same, path):
            unchanged.append(path)
        else:
            _atomic_write(path, text)
            written.append(path)
    return WriteResult(tuple(written), tuple(unchanged), removed)


def ensure_writable(directory: str | os.PathLike) -> Path:
    """Create the directory if needed and prove a file can be written there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as why:
        raise MomentcalcError(f"cannot write tables to {str(directory)!r}: {why.strerror or why}") from None
    return directory


def _table_matches(path: Path, doc: dict) -> bool:
    text = read_text(path)
    old = read(path)
    return text == dumps(old) and not validate(old) and not compare(old, doc, path.name)


def _safe(predicate, path: Path) -> bool:
    """A file we cannot read or parse simply does not match: it gets replaced."""
    try:
        return predicate(path)
    except (OSError, MomentcalcError, UnicodeDecodeError):
        return False


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temporaries(directory: Path, names: tuple[str, ...]) -> tuple[Path, ...]:
    # A write lasts milliseconds and builds do not share a directory, so a temporary file found
    # before writing was left by a build killed between mkstemp and os.replace.
    stale = sorted(p for name in names for p in directory.glob(f"{_temporary_prefix(Path(name))}*.tmp"))
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as why:
            raise MomentcalcError(
                f"cannot remove the stale temporary file {str(path)!r}: {why.strerror or why}"
            ) from None
    return tuple(stale)


def _atomic_write(path: Path, text: str) -> None:
    # A temp file in the same directory, then os.replace: a reader (or a killed
    # build) sees either the old file or the new one, never half of one.
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    except OSError as why:
        raise MomentcalcError(f"cannot write {str(path)!r}: {why.strerror or why}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checked-in table is world-readable
        os.replace(tmp, path)
    except BaseException as why:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(why, OSError):  # a full disk, a file size limit: the old file stays as it was
            raise WriteError(f"cannot write {str(path)!r}: {why.strerror or why}") from None
        raise

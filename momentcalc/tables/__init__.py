"""Build, write, load and check the generated tables of constants.

A table is a JSON document: a header (with the sha256 of its own canonical
text), a format version, the generator's version, the settings of the build,
and one entry per (spec, input) that is ``Result.to_dict()`` of
``engine.estimate``. Writing is byte-deterministic (tablefile.dumps: sorted
keys, ``repr`` floats) and atomic. The one thing that cannot be deterministic
is timing (the ``seconds`` fields), so comparison with a fresh build ignores
it, and ``write`` leaves alone a canonical file whose content matches under
those rules.

builder.py builds the document, writer.py writes it, reading.py reads and
validates it (schema by jsonschema; reading a file's format version and
digest is tablefile's), differences.py compares two documents to a few ulps,
and checker.py checks the files against a fresh build; check() below runs
that build between reading the file and comparing. Nothing here imports numba
or jsonschema at import time: the CLI imports the package to build its help,
and must stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..tablefile import DEFAULT_DIR, TABLE_NAME
from .builder import DEFAULT_SPECS, EntryProgress, build
from .checker import CheckResult, against, read_recorded, regenerate_command
from .reading import load, table_directory, validate
from .writer import WriteResult, ensure_writable, write

__all__ = [
    "DEFAULT_SPECS",
    "CheckResult",
    "WriteResult",
    "build",
    "check",
    "ensure_writable",
    "load",
    "regenerate_command",
    "table_directory",
    "validate",
    "write",
]


def check(
    directory: str | os.PathLike = DEFAULT_DIR,
    regenerated: dict | None = None,
    progress: EntryProgress | None = None,
    jobs: int | None = None,
) -> CheckResult:
    """Compare the files in directory with a fresh build (or the given one).

    Raises MomentcalcError when a file cannot be read as a table at all
    (unreadable, not JSON, another format version); everything else is a
    difference in the result: any edit of the file (its digest, its canonical
    bytes) and any number that moved by more than a few ulps.
    """
    directory = Path(directory)
    recorded = read_recorded(directory / TABLE_NAME)  # fail fast, before the build
    fresh = regenerated if regenerated is not None else build(progress, jobs=jobs)
    return against(directory, recorded, fresh)

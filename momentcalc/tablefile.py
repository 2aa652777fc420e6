"""The table file itself: its names, format version, default place, and one reader.

Both ``constants`` (the light reader of the packaged table) and ``tables``
(build, write, check) read table files through ``read``, so the format version
and the error messages for a missing, corrupt or other-version file exist once.
Standard library only (plus momentcalc.errors): ``constants`` must import fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import __version__
from .errors import MomentcalcError

FORMAT_VERSION = 2  # 2: the certified method and its intervals
TABLE_NAME = "normprop.json"
SCHEMA_NAME = "schema.json"
DEFAULT_DIR = Path("tables")  # relative to the working directory, as the CLI's --dir default
BUILD_COMMAND = "momentcalc tables build"

__all__ = [
    "BUILD_COMMAND",
    "DEFAULT_DIR",
    "FORMAT_VERSION",
    "SCHEMA_NAME",
    "TABLE_NAME",
    "corrupt",
    "default_path",
    "read",
]


def default_path() -> Path:
    """The packaged table when installed; tables/ at the repository root in a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_tables" / TABLE_NAME
    if packaged.exists():
        return packaged
    root = here.parent
    if (root / "pyproject.toml").exists():  # a source checkout, not site-packages
        return root / DEFAULT_DIR / TABLE_NAME
    return packaged  # missing: read() will say so


def read(path: str | os.PathLike) -> dict:
    """Parse a table file and check that it is a JSON object of this format version; no schema validation."""
    path = Path(path)
    doc = _parse(path, _text(path))
    if not isinstance(doc, dict):
        raise corrupt(path, f"its top level is a JSON {type(doc).__name__}, not an object")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise MomentcalcError(
            f"table {str(path)!r} has format version {version!r}; this momentcalc {__version__} reads version "
            f"{FORMAT_VERSION}; regenerate it with `{BUILD_COMMAND}`"
        )
    return doc


def corrupt(path: str | os.PathLike, problem: object) -> MomentcalcError:
    """The one error for a table file whose content is wrong: what is wrong, and how to get a good one."""
    return MomentcalcError(f"corrupt table {str(path)!r}: {problem}; regenerate it with `{BUILD_COMMAND}`")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MomentcalcError(f"no table at {str(path)!r}; build one with `{BUILD_COMMAND}`") from None
    except UnicodeDecodeError as why:
        raise corrupt(path, f"not UTF-8 text ({why.reason} at byte {why.start})") from None
    except OSError as why:
        raise MomentcalcError(f"cannot read table {str(path)!r}: {why.strerror or why}") from None


def _parse(path: Path, text: str):
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as why:
        raise corrupt(path, f"not valid JSON ({why.msg} at line {why.lineno} column {why.colno})") from None
    except ValueError as why:  # from _reject_constant
        raise corrupt(path, why) from None


def _reject_constant(name: str):
    """json accepts NaN and Infinity by default; a table never holds them."""
    raise ValueError(f"{name} is not a number a table may hold")

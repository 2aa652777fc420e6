"""The tabulated constants, importable without numba, scipy or jsonschema.

    from momentcalc import constants
    c = constants.get("maxpool(k=3)")   # c.mean, c.std, c.mean_se, c.std_se, c.method ...
    constants.keys()
    other = constants.load("path/to/other_table.json")

Keys are canonical specs, so any spelling that parses to the same spec finds
the same constant. The default table is packaged with the wheel
(momentcalc/_tables) and, in a source checkout, read from tables/ at the
repository root (tablefile.default_path). The file is read by tablefile.read;
its entries are checked by hand here, because jsonschema costs more to import
than this whole module may take.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from . import tablefile
from .errors import MomentcalcError
from .result import Estimate
from .spec import canonical
from .tablefile import default_path

__all__ = ["Constant", "Table", "UnknownConstantError", "get", "keys", "load", "default_path"]


class UnknownConstantError(KeyError, MomentcalcError):
    """No constant under this key; the message names the nearest keys."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Constant:
    """One tabulated result: the value of record, its uncertainty, and where it came from."""

    spec: str
    mu: float
    sigma: float
    mean: float
    std: float | None
    mean_se: float
    std_se: float | None
    grad_sq: float | None  # E[f'(X)^2], the backward constant; None where not tabulated
    grad_sq_se: float | None
    method: str  # the method of record of the std (the most exact informative one; certified where it applies)
    agree: bool  # did every applicable method agree within its uncertainty?
    disagreements: tuple[str, ...]
    estimates: tuple[Estimate, ...]
    version: str  # momentcalc version that generated the table
    source: str  # the table file
    # The certified enclosures [lo, hi] of the values of record; None where no certified value exists.
    mean_interval: tuple[float, float] | None = None
    std_interval: tuple[float, float] | None = None
    grad_sq_interval: tuple[float, float] | None = None


class Table:
    """A loaded table: constants by (canonical spec, mu, sigma)."""

    def __init__(self, doc: dict, source: str):
        self.source = source
        self.version = doc["generator"]["version"]
        self._by_key = {}
        for number, entry in enumerate(doc["entries"]):
            constant = _constant(entry, self.version, source, number)
            self._by_key[(constant.spec, constant.mu, constant.sigma)] = constant

    def get(self, spec: str, mu: float = 0.0, sigma: float = 1.0) -> Constant:
        try:
            key = (canonical(spec), float(mu), float(sigma))
        except (MomentcalcError, TypeError, ValueError) as why:
            raise UnknownConstantError(
                f"no constant {spec!r} in {self.source}: {why}; {self._nearest(str(spec))}"
            ) from None
        found = self._by_key.get(key)
        if found is None:
            where = f" at mu={mu:g}, sigma={sigma:g}" if (key[1], key[2]) != (0.0, 1.0) else ""
            raise UnknownConstantError(f"no constant {key[0]!r}{where} in {self.source}; {self._nearest(key[0])}")
        return found

    def keys(self) -> list[str]:
        """The canonical specs in the table, in table order."""
        return list(dict.fromkeys(spec for spec, _, _ in self._by_key))

    def constants(self) -> list[Constant]:
        return list(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def _nearest(self, text: str) -> str:
        names = self.keys()
        close = difflib.get_close_matches(" ".join(text.split()), names, n=3, cutoff=0.4)
        return ("nearest keys: " + ", ".join(map(repr, close))) if close else f"keys: {', '.join(map(repr, names))}"


def load(path: str | Path) -> Table:
    """Read a table file; raise MomentcalcError if it is unreadable, corrupt or of another format."""
    if not isinstance(path, (str, os.PathLike)):
        raise MomentcalcError(
            f"load takes the path of a table file (str or Path), got {type(path).__name__} {path!r:.60}"
        )
    path = Path(path)
    doc = tablefile.read(path)
    try:
        return Table(doc, str(path))
    except KeyError as why:
        raise tablefile.corrupt(path, f"a field is missing: {why}") from None
    except (TypeError, AttributeError, ValueError) as why:
        raise tablefile.corrupt(path, why) from None


def _constant(entry: dict, version: str, source: str, number: int) -> Constant:
    estimates = tuple(_estimate(e) for e in entry["estimates"])
    constant = Constant(
        spec=canonical(entry["spec"]),
        mu=float(entry["input"]["mu"]),
        sigma=float(entry["input"]["sigma"]),
        mean=_finite(entry["mean"]),
        std=_maybe(entry["std"]),
        mean_se=_finite(entry["mean_se"]),
        std_se=_maybe(entry["std_se"]),
        grad_sq=_maybe(entry.get("grad_sq")),
        grad_sq_se=_maybe(entry.get("grad_sq_se")),
        method=str(entry["method"]),
        agree=bool(entry["agree"]),
        disagreements=tuple(entry["disagreements"]),
        estimates=estimates,
        version=version,
        source=source,
        mean_interval=_interval(entry.get("mean_interval")),
        std_interval=_interval(entry.get("std_interval")),
        grad_sq_interval=_interval(entry.get("grad_sq_interval")),
    )
    if constant.spec != entry["spec"]:
        raise ValueError(f"entry {number} spells its spec {entry['spec']!r}, not canonically {constant.spec!r}")
    return constant


def _estimate(record: dict) -> Estimate:
    # Fields this Estimate does not know (a newer table) are skipped, missing optional ones defaulted.
    known = {f.name for f in fields(Estimate)} & record.keys()
    values = {name: record[name] for name in known}
    if "notes" in values:
        values["notes"] = tuple(values["notes"])
    for name in ("mean_interval", "std_interval", "grad_sq_interval"):
        if name in values:
            values[name] = _interval(values[name])
    return Estimate(**values)


def _interval(x) -> tuple[float, float] | None:
    if x is None:
        return None
    lo, hi = (_finite(v) for v in x)
    if not lo <= hi:
        raise ValueError(f"interval [{lo!r}, {hi!r}] has lo > hi")
    return lo, hi


def _finite(x) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise TypeError(f"expected a finite number, got {x!r}")
    return float(x)


def _maybe(x) -> float | None:
    return None if x is None else _finite(x)


@lru_cache(maxsize=1)
def default_table() -> Table:
    return load(default_path())


def get(spec: str, mu: float = 0.0, sigma: float = 1.0) -> Constant:
    """The tabulated constant for a spec (any spelling) and input N(mu, sigma^2)."""
    return default_table().get(spec, mu, sigma)


def keys() -> list[str]:
    return default_table().keys()

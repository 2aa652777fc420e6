"""The tabulated constants, importable without numba, scipy or jsonschema.

    from momentcalc import constants
    c = constants.get("maxpool(k=3)")   # c.mean, c.std, c.mean_se, c.std_se, c.method ...
    constants.keys()
    other = constants.load("path/to/other_table.json")

Keys are canonical specs, so any spelling that parses to the same spec finds
the same constant, and a window given by its size finds the same window given
by its shape (maxpool(n=9) is maxpool(k=3): a max of 9 iid values). The default
table is packaged with the wheel (momentcalc/_tables) and, in a source checkout,
read from tables/ at the repository root (tablefile.default_path). The file is
read by tablefile.read, which refuses any byte changed since it was written (a
sha256 in its header), and checked against the schema by tablefile.schema_problems,
because jsonschema costs more to import than this whole module may take.

What the digest proves, and what it does not: it catches any edit that did not
also recompute it (a digit changed by hand, a file cut short, a bad merge). It is
no signature: anyone who edits the file can write a new digest, so it does not
prove who wrote the numbers. What load checks beyond it, cheaply, is that each
entry is consistent with itself: each certified interval holds its value, the
values of record are among the entry's estimates, and an entry marked as agreeing
does agree, every pair of its estimates compared again (crosscheck, the table's
z). A value changed in one estimate (relu's mean 0.41 in the certified row and
the record, its Monte Carlo row left) is caught so; a change made consistently
in every estimate of an entry is not, and only `momentcalc tables check`, which
recomputes every number, catches that.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import lru_cache

from . import catalog, crosscheck, tablefile
from .errors import MomentcalcError
from .result import Estimate
from .spec import Op, Spec, parse
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
    """A loaded table: constants by (lookup key of the spec, mu, sigma)."""

    def __init__(self, doc: dict, source: str):
        self.source = source
        self.version = doc["generator"]["version"]
        self._by_key = {}
        z = float(doc["settings"]["z"])
        for number, entry in enumerate(doc["entries"]):
            constant = _constant(entry, self.version, source, number)
            _consistent(constant, z, f"entry {number} ({constant.spec!r})")
            key = (lookup_key(parse(constant.spec)), constant.mu, constant.sigma)
            if key in self._by_key:
                raise ValueError(
                    f"entry {number} ({constant.spec!r} at N({constant.mu:g}, {constant.sigma:g}^2)) "
                    f"repeats entry {list(self._by_key).index(key)} ({self._by_key[key].spec!r})"
                )
            self._by_key[key] = constant

    def get(self, spec: str, mu: float = 0.0, sigma: float = 1.0) -> Constant:
        try:
            parsed = parse(spec)
            key = (lookup_key(parsed), float(mu), float(sigma))
        except (MomentcalcError, TypeError, ValueError) as why:
            raise UnknownConstantError(
                f"no constant {spec!r} in {self.source}: {why}; {self._nearest(str(spec))}"
            ) from None
        found = self._by_key.get(key)
        if found is None:
            where = f" at mu={mu:g}, sigma={sigma:g}" if (key[1], key[2]) != (0.0, 1.0) else ""
            text = str(parsed)
            raise UnknownConstantError(f"no constant {text!r}{where} in {self.source}; {self._nearest(text)}")
        return found

    def keys(self) -> list[str]:
        """The canonical specs in the table, in table order."""
        return list(dict.fromkeys(c.spec for c in self._by_key.values()))

    def constants(self) -> list[Constant]:
        return list(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def _nearest(self, text: str) -> str:
        names = self.keys()
        close = difflib.get_close_matches(" ".join(text.split()), names, n=3, cutoff=0.4)
        return ("nearest keys: " + ", ".join(map(repr, close))) if close else f"keys: {', '.join(map(repr, names))}"


def lookup_key(spec: Spec) -> str:
    """The canonical spec with each plain window written by its size, so maxpool(k=3) and maxpool(n=9) share a key.

    A window op's moments depend on its window only through n = k**dims (DESIGN: n iid copies);
    a window with a stride or padding keeps its own spelling.
    """
    return str(Spec(tuple(Op(op.name, (("n", op.window_size),)) if _plain_window(op) else op for op in spec.ops)))


def _plain_window(op: Op) -> bool:
    return op.kind == catalog.WINDOW and all(name in ("k", "dims", "n") for name, _ in op.params)


def load(path: str | os.PathLike) -> Table:
    """Read a table file; raise MomentcalcError (one line) if it is unreadable, edited, invalid or of another format."""
    doc = tablefile.read(path)  # refuses a non-path, a missing file, bad JSON, another version, a broken digest
    problems = tablefile.schema_problems(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise tablefile.corrupt(path, f"schema violation at {problems[0]}{more}")
    try:
        return Table(doc, str(path))
    except (MomentcalcError, TypeError, ValueError) as why:
        raise tablefile.corrupt(path, why) from None


def _constant(entry: dict, version: str, source: str, number: int) -> Constant:
    # The schema has been checked, so the types are right; what remains is what a schema cannot say.
    where = f"entry {number} ({entry['spec']!r})"
    constant = Constant(
        spec=str(parse(entry["spec"])),
        mu=float(entry["input"]["mu"]),
        sigma=float(entry["input"]["sigma"]),
        mean=float(entry["mean"]),
        std=_maybe(entry["std"]),
        mean_se=float(entry["mean_se"]),
        std_se=_maybe(entry["std_se"]),
        grad_sq=_maybe(entry["grad_sq"]),
        grad_sq_se=_maybe(entry["grad_sq_se"]),
        method=entry["method"],
        agree=entry["agree"],
        disagreements=tuple(entry["disagreements"]),
        estimates=tuple(_estimate(e, f"{where}, {e['method']} estimate") for e in entry["estimates"]),
        version=version,
        source=source,
        **{name: _interval(entry, name, where) for name in tablefile.INTERVAL_FIELDS},
    )
    if constant.spec != entry["spec"]:
        raise ValueError(f"entry {number} spells its spec {entry['spec']!r}, not canonically {constant.spec!r}")
    return constant


def _consistent(c: Constant, z: float, where: str) -> None:
    """The entry's values of record are among its estimates, and its verdict is that of its estimates."""
    for quantity in ("mean", "std"):
        value = getattr(c, quantity)
        if value is not None and value not in {getattr(e, quantity) for e in c.estimates}:
            raise ValueError(f"{where}: its {quantity} {value!r} is none of its estimates' {quantity}s")
    failed = [k for k in crosscheck.compare(c.estimates, z) if not k.ok]
    if c.agree and failed:
        k = failed[0]
        raise ValueError(
            f"{where} is marked as agreeing, but its {k.a} and {k.b} {k.quantity} differ by {abs(k.diff):.3g}, more "
            f"than the {k.tolerance:.3g} allowed: its numbers were changed after the build"
        )


def _estimate(record: dict, where: str) -> Estimate:
    values = {name: record[name] for name in tablefile.ESTIMATE_FIELDS}
    values["notes"] = tuple(values["notes"])
    values.update({name: _interval(record, name, where) for name in tablefile.INTERVAL_FIELDS})
    return Estimate(**values)


def _interval(record: dict, name: str, where: str) -> tuple[float, float] | None:
    """The enclosure [lo, hi], which must hold the value it encloses (mean_interval the mean, ...)."""
    if record[name] is None:
        return None
    lo, hi = map(float, record[name])
    value = record[name.removesuffix("_interval")]
    if not lo <= hi or (value is not None and not lo <= value <= hi):
        raise ValueError(f"{where}: {name} [{lo!r}, {hi!r}] does not hold its value {value!r}")
    return lo, hi


def _maybe(x) -> float | None:
    return None if x is None else float(x)


@lru_cache(maxsize=1)
def default_table() -> Table:
    return load(default_path())


def get(spec: str, mu: float = 0.0, sigma: float = 1.0) -> Constant:
    """The tabulated constant for a spec (any spelling) and input N(mu, sigma^2)."""
    return default_table().get(spec, mu, sigma)


def keys() -> list[str]:
    return default_table().keys()

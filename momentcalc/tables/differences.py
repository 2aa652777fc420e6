"""How a recorded table differs from a regenerated one: entries matched by key and estimates by method, numbers
compared to a few ulps of their scale (exactly, for a certified record), timing ignored."""

from __future__ import annotations

import math

from ..tablefile import DIGEST_KEY, TABLE_NAME
from .reading import describe, entry_key

IGNORED = frozenset({"seconds"})  # timing: never reproducible

# How far a regenerated number may be from the recorded one: ULPS units in the last place of
# its scale, the size of the values that were summed or cancelled to get it (see scale_of).
#
# What varies between platforms, for one set of versions of numba, scipy and python-flint:
# - certified: nothing. Arb computes with rigorously rounded arithmetic of its own, not the
#   platform's libm, and the doubles are rounded from its balls: a certified record (the
#   estimate, and an entry whose value of record it is) must regenerate bit for bit.
# - closed, quadrature: scipy's and libm's special functions may differ in their last bits; a
#   mean that cancels to ~1e-17 (an odd function's, truly 0) moves by ulps of the scale, not of
#   its own size.
# - montecarlo, qmc: the draws are integer arithmetic and chunks merge in a fixed order (the
#   same bits on any thread count, tests/test_driver.py), but FMA contraction (block_ops'
#   "contract") and LLVM's split of a block's sums into vector lanes ("reassoc": as many lanes
#   as the CPU's vectors hold) change how the sums round. Means, stds and grad_sq move by ulps
#   of their scale; SEs, functions of the same sums, by less (a 3e-4 SE moved by 4e-19).
# Measured against the committed table (built on an AVX2+FMA CPU) by a build for a generic
# x86-64 CPU (NUMBA_CPU_NAME=generic: SSE2, 2 lanes, no FMA): 111 of 1432 numbers differ, all
# Monte Carlo, the worst by 9.2 ulps of its scale (dropout(p=0.5,scale=none)'s mean); closed,
# quadrature and certified bit for bit. 32 leaves a factor 3.5 for wider vectors and other libms,
# and still catches a Monte Carlo mean of order 1 changed in its 14th digit.
ULPS = 32


def compare(recorded: dict, fresh: dict, label: str = TABLE_NAME) -> list[str]:
    """Lines describing how the recorded document differs from a fresh one; [] when they match.

    Entries are matched by (spec, mu, sigma) and estimates by method, so an
    added, removed or reordered item is reported by name, not by position.
    The digest is not compared (timing is in it): check() verifies it against the file.
    """
    lines = diff(_without(recorded, "entries", DIGEST_KEY), _without(fresh, "entries", DIGEST_KEY), label, {})
    old = {entry_key(e): e for e in recorded["entries"]}
    new = {entry_key(e): e for e in fresh["entries"]}
    for key in (k for k in old if k not in new):
        lines.append(f"{label}: entry {describe(key)} is in the file but not in the regenerated table")
    for key in (k for k in new if k not in old):
        lines.append(f"{label}: entry {describe(key)} is missing from the file")
    if list(k for k in old if k in new) != list(k for k in new if k in old):
        lines.append(f"{label}: entries are not in the order the build writes them")
    for key in (k for k in new if k in old):
        lines += _diff_entry(old[key], new[key], f"{label}: entry {describe(key)}")
    return lines


def _diff_entry(old: dict, new: dict, where: str) -> list[str]:
    lines = diff(_without(old, "estimates"), _without(new, "estimates"), where, new)
    by_method_old = {e["method"]: e for e in old["estimates"]}
    by_method_new = {e["method"]: e for e in new["estimates"]}
    if list(by_method_old) != list(by_method_new):
        lines.append(
            f"{where}: estimates by {', '.join(by_method_old)} in the file, by {', '.join(by_method_new)} regenerated"
        )
    for method in (m for m in by_method_new if m in by_method_old):
        lines += diff(
            by_method_old[method], by_method_new[method], f"{where}: {method} estimate", by_method_new[method]
        )
    return lines


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def diff(old, new, where: str, record: dict) -> list[str]:
    """Recursive comparison; numbers to ULPS ulps of their scale in record (the regenerated one), 'seconds' ignored."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(old.keys() | new.keys()):
            if key in IGNORED:
                continue
            if key not in new:
                lines.append(f"{where}: {key} is in the file but not regenerated")
            elif key not in old:
                lines.append(f"{where}: {key} is missing from the file")
            else:
                lines += _diff_value(old[key], new[key], f"{where}: {key}", record, key)
        return lines
    return _diff_value(old, new, where, record, None)


def _diff_value(old, new, where: str, record: dict, key: str | None) -> list[str]:
    if isinstance(old, dict) or isinstance(new, dict):
        return (
            diff(old, new, where, record)
            if isinstance(old, dict) and isinstance(new, dict)
            else [f"{where}: file has {old!r}, regenerated {new!r}"]
        )
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: file has {old!r}, regenerated {new!r}"]
        return [
            line for i, (a, b) in enumerate(zip(old, new)) for line in _diff_value(a, b, f"{where}[{i}]", record, key)
        ]
    # The type too: 4194304.0 is not the integer 4194304, and -0.0 is not 0.0.
    if type(old) is not type(new) or (old == 0 == new and math.copysign(1, old) != math.copysign(1, new)):
        return [f"{where}: file has {old!r}, regenerated {new!r}"]
    if isinstance(old, float):
        limit = allowed(record, key, old, new)
        if abs(old - new) <= limit:
            return []
        return [
            f"{where}: file has {old!r}, regenerated {new!r} (differs by {abs(old - new):.3g}, tolerance {limit:.3g})"
        ]
    if old != new:
        return [f"{where}: file has {old!r}, regenerated {new!r}"]
    return []


def allowed(record: dict, key: str | None, recorded: float, regenerated: float) -> float:
    """How far record[key] may move when regenerated on another platform (see ULPS)."""
    # A certified record (the certified estimate, or an entry whose value of record it is,
    # as it is wherever it applies) is the same bits on every platform.
    if record.get("method") == "certified":
        return 0.0
    return tolerance(recorded, regenerated, scale_of(record, key))


def tolerance(recorded: float, regenerated: float, scale: float = 0.0) -> float:
    """How far a regenerated number may move: ULPS ulps of the larger of the two numbers and their scale."""
    return ULPS * math.ulp(max(abs(recorded), abs(regenerated), scale))


def scale_of(record: dict, key: str | None) -> float:
    """The size of the values summed or cancelled to get record[key]: for the mean and std, their
    uncertainties and intervals, the output's root mean square sqrt(mean^2 + std^2); for grad_sq's
    family, grad_sq (a mean of squares, nothing cancels); for anything else, the number itself."""
    family = "grad_sq" if key and key.startswith("grad_sq") else "moments" if key and key.startswith(_MOMENTS) else ""
    if family == "grad_sq":
        return abs(record.get("grad_sq") or 0.0)
    if family == "moments":
        return math.hypot(record.get("mean") or 0.0, record.get("std") or 0.0)
    return 0.0


_MOMENTS = ("mean", "std")

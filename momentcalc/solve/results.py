"""What solve() returns: the solutions found, each with its bound and, where the Krawczyk test proved one, its box."""

from __future__ import annotations

from dataclasses import dataclass

from ..result import record_dict


@dataclass(frozen=True)
class Solution:
    spec: str  # the spec with the solution filled in (canonical)
    values: dict[str, float]
    errors: dict[str, float]  # bound on |value - the true root| (see momentcalc.solve's docstring)
    last_double: dict[str, bool]  # the bound puts the true root within this double's rounding interval
    residual: dict[str, float]  # moment - target at the solution
    method: str  # 'certified (Krawczyk)', 'certified residual' or the moment method of record ('closed', ...)
    # The Krawczyk test's box {name: [lo, hi]} (outward doubles) that holds exactly one root, or None.
    box: dict[str, list[float]] | None = None
    proof: str = ""  # what the Krawczyk test proved, or why it did not run or did not prove it
    mirror_of: int | None = None  # 1-based index of the solution this one mirrors (a symmetry of the equations)
    mirror: str = ""  # which symmetry

    def to_dict(self) -> dict:
        return record_dict(self)


@dataclass(frozen=True)
class SolveResult:
    spec: str  # as given, with its `?`
    unknowns: tuple[str, ...]
    targets: dict[str, float]
    mu: float
    sigma: float
    starts: int
    solutions: tuple[Solution, ...]
    affine: dict[str, float]  # the wrap a * f(b x + c) + d's fixed values (unknowns: in each solution)

    def to_dict(self) -> dict:
        return record_dict(self)

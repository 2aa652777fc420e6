"""The search for roots: scipy's root from a grid of starts, first on the fast moments, then on the exact ones.

Several roots are found where there are several; the mirrors of each root under the wrap's symmetries
(unknowns.MIRRORS) are added, and listed as such.
"""

from __future__ import annotations

import itertools
import math

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..settings import Progress
from . import fast

engine = lazy_module("momentcalc.engine")
optimize = lazy_module("scipy.optimize")
np = lazy_module("numpy")

_START_FACTORS = (0.3, 1.0, 3.0)  # starts around a positive default, in each coordinate
_START_OFFSETS = (-1.0, 0.0, 1.0)  # ... around a default that may be 0 or negative
_SAME_ROOT = 1e-7  # relative distance under which two roots found from different starts are one
_FAST_ROOT = 1e-8  # |residual| (relative to the targets' scale) at which the fast search has found a root


def roots(problem, tell: Progress) -> list[list[float]]:
    """Every root found, sorted; sets problem.starts and problem.mirrors."""
    found: list[list[float]] = []
    grid = [(signs, u0) for signs in _sign_patterns(problem) for u0 in _start_grid(problem)]
    problem.starts = len(grid)
    refined: list[tuple] = []  # (signs, the fast search's root) of each start refined so far
    for number, (signs, u0) in enumerate(grid):
        tell(number, len(grid))
        problem.signs = signs
        start = _fast_search(problem, np.array(u0, dtype=float))
        if start is None or any(s == signs and _same_root(start, q) for s, q in refined):
            continue  # no root near this start, or one an earlier start has led to
        refined.append((signs, start))
        sol = optimize.root(problem.residual_u, start, method="hybr", options={"xtol": 1e-14})
        # Not sol.success alone: hybr reports "xtol too small" at a root it cannot improve in doubles; the
        # residual check below decides.
        if not np.all(np.isfinite(sol.x)) or problem.out_of_range(sol.x):
            continue
        p = problem.to_params(sol.x)
        if _is_root(problem, p) and _is_new(p, found):
            found.append(p)
    for name in ("b", "a"):  # the mirrors of every root found (and of the b-mirrors under a)
        if not _mirror_holds(problem, name):
            continue
        for p in list(found):
            q = _mirror(problem, p, name)
            if _is_root(problem, q) and _is_new(q, found):
                found.append(q)
                problem.mirrors[tuple(q)] = (tuple(p), name)
    return sorted(found)


def _start_grid(problem):
    axes = []
    for k in problem.unknowns:
        if k.positive:
            axes.append([math.log(k.default * f) for f in _START_FACTORS])
        else:
            axes.append([k.default + d for d in _START_OFFSETS])
    return list(itertools.product(*axes))


def _sign_patterns(problem) -> list[tuple[int, ...]]:
    """The signs to search: -1 too for the wrap's a and b, unless a symmetry maps each root with that sign onto
    one with +1 (then the mirrors are added after the search)."""
    choices = [
        (1, -1) if u.stage < 0 and u.name in "ab" and not _mirror_holds(problem, u.name) else (1,)
        for u in problem.unknowns
    ]
    return list(itertools.product(*choices))


def _mirror_holds(problem, name: str) -> bool:
    wrap = {u.name for u in problem.unknowns if u.stage < 0}
    if name not in wrap:
        return False
    if name == "b":  # the law of b X + c, N(b mu + c, b^2 sigma^2), is kept by b -> -b, c -> c + 2 b mu
        return problem.mu == 0.0 or "c" in wrap
    # a -> -a, d -> d + 2 a E[f]: mean, variance, E[y'^2] kept; the Q-map slope (a d E[f' z] term) is not
    return "d" in wrap and "q_slope" not in problem.targets


def _mirror(problem, p, name: str) -> list[float]:
    idx = {u.name: i for i, u in enumerate(problem.unknowns) if u.stage < 0}
    w = problem.wrap_values(p)
    q = list(p)
    if name == "b":
        q[idx["b"]] = -w["b"]
        if "c" in idx:
            q[idx["c"]] = w["c"] + 2.0 * w["b"] * problem.mu
        return q
    a, _, d, mu, sigma = problem.wrap_at(p)
    found = engine.estimate(problem.spec_at(p), mu, sigma, methods=("closed", "quadrature"))
    q[idx["a"]], q[idx["d"]] = -a, d + 2.0 * a * found.mean
    return q


def _is_root(problem, p) -> bool:
    try:
        r = problem.residual(p)
    except MomentcalcError:
        return False
    return max(abs(x) for x in r) <= 1e-9 * max(1.0, *(abs(t) for t in problem.targets.values()))


def _is_new(p, found) -> bool:
    return not any(_same_root(p, q) for q in found)


def _same_root(p, q) -> bool:
    return all(abs(a - b) <= _SAME_ROOT * max(abs(a), abs(b), 1e-300) for a, b in zip(p, q))


def _fast_search(problem, u0):
    """The root (in u) that scipy's root finds from u0 on the fast moments; u0 where they do not apply (not one
    elementwise op with f and f'); None where it finds none."""
    try:
        applies = fast.moments(problem, problem.to_params(u0)) is not None
    except (MomentcalcError, OverflowError, ValueError, ZeroDivisionError):  # u0 outside the op's domain
        applies = False
    if not applies:
        return u0
    residual = _fast_residual(problem)
    sol = optimize.root(residual, u0, method="hybr", options={"xtol": 1e-12})
    if not np.all(np.isfinite(sol.x)) or problem.out_of_range(sol.x):
        return None
    scale = max(1.0, *(abs(t) for t in problem.targets.values()))
    return sol.x if max(abs(r) for r in residual(sol.x)) <= _FAST_ROOT * scale else None


def _fast_residual(problem):
    """The fast residual in u, as scipy's root takes it: pushed back (1e6) outside the op's domain."""

    def residual(u):
        try:
            if problem.out_of_range(u):
                raise MomentcalcError("out of range")
            found = fast.moments(problem, problem.to_params(u))
        except (MomentcalcError, OverflowError, ValueError, ZeroDivisionError):
            found = None
        if found is None or not all(math.isfinite(found[k]) for k in problem.targets):
            return [1e6] * len(problem.targets)
        return [found[k] - t for k, t in problem.targets.items()]

    return residual

"""What QMC's points cannot see: an activation's feature rarer than the points, and a bound on what it can move.

QMC (qmc.py) states a standard error from the spread of its replicas. Where the output turns on a region of the
input whose mass p is far below 1 / points (tanh at sigma = 1e6: |x| < 4.2, mass 3.4e-6; at 2^12 points each
replica has 256), every replica misses it alike and their spread says nothing about it (tanh's std was off by
14.7 of its stated SEs). So, from the ops' declarations:

- The feature interval of an activation is the hull of its kinks and of where f' departs from its limits at
  +-infinity by more than DEPARTURE of its largest |f'| (tanh: |x| < 4.2, softsign: |x| < 32, hardsigmoid:
  [-3, 3], relu: the point 0, identity: none). Beyond it f is affine but for that small a fraction of its
  slope, and a piecewise-linear op (relu, abs) has nothing to miss.
- Its mass p under the activation's input: the first activation's input is N(mu, sigma^2) after the affine
  and dropout stages before it (dropout's zeros are an atom the points see).
- Scrambled Sobol points are stratified: in each coordinate a replica of N points has one point in each cell
  of mass 1 / N. If p N < RESOLVED (16: below it, 400 seeds of tanh at 2^12 points showed |z| up to 7 at
  p N = 4 and 18 at p N = 1, against 2.9 at p N = 16), the SEs take a floor, the most the feature can move
  each quantity in a replica that misses it. For E[g(f(X))] (g(y) = y for the mean, (y - m)^2 for the
  variance) that is p times the range of g(f) over the interval, or, where the interval spans cells, a cell's
  mass times g(f)'s variation over it; plus a cell's mass times the step of g(f) across the interval seen from
  afar (tanh at sigma = 1e6 steps from -1 to 1 within one cell: that cell's point lands on one side). The
  variance's floor adds the mean's squared; the std moves by at most min(dvar / std, sqrt(dvar)).
- A window of n inputs after the activation: the event E that some input meets the interval or its step's
  cell has P(E) <= n (p + 1 / N) (union bound); max, min and mean are 1-Lipschitz in the sup norm, so the
  output moves by at most Osc = max(range, step) of f on E: the mean by P(E) Osc, the variance by
  2 Osc E[|y - m| 1_E] + P(E) Osc^2 (var(y + D) - var(y) = 2 cov(y, D) + var(D), |D| <= Osc 1_E), where
  E[|y - m| 1_E] <= P(E) (c0 + |m|) for a bounded op (|f| <= c0, its declared growth), else sqrt(P(E)) std
  (Cauchy-Schwarz).
- Each floor is combined with the replicas' SE in quadrature, and a note says so.
- Other stages after the first activation (an activation, normalize, dropout), or windows before it, are not
  analysed: a run whose first activation has a feature that rare declines there (NotApplicable). A feature of
  a later activation (relu | tanh) is not seen by this rule: its input is not N(mu, sigma^2).

Nothing changes where the feature is resolved (p N >= RESOLVED), as at N(0, 1) for the default table, or
where it has no mass or range (relu, abs, maxpool alone): the SEs are then the replicas' to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from scipy import special

from .. import catalog
from . import NotApplicable, mc_kernels
from .dispatch import CODES
from .moments import Summary
from .program import Program

DEPARTURE = 1e-3  # f' within this fraction of max |f'| of its limits: affine enough to be outside the feature
RESOLVED = 16  # points per replica in the feature from which the replicas' spread is trusted with it
_FAR = 1e9  # beyond the domain's reach (|mu| + 40 sigma < 5e7): f' has its limits there
_GRID = np.logspace(-6.0, 8.0, 14 * 16 + 1)  # |x| where f' is compared with its limits, 16 points a decade
_MEET = 1e-9  # far-field lines closer than this fraction of f's range over the feature meet
_NAMES = {code: name for name, code in CODES.items()}


def _same(y: float) -> float:
    return y


@dataclass(frozen=True)
class Feature:
    lo: float
    hi: float
    values: tuple[float, ...]  # f at points across [lo, hi], in order of x (ends and kinks included)
    # The far-field lines A-(x) = f(lo) + f'(-inf) (x - lo) and A+(x) = f(hi) + f'(+inf) (x - hi) at the x in
    # [lo, hi] where they are closest: across a replica's cell far wider than the feature, f steps from one to the
    # other (tanh at sigma = 1e6: from -1 to 1). Where they meet (gelu, softplus, elu: max(x, -alpha) from afar)
    # there is no step: what is left is a kink, continuous, which the replicas' spread sees.
    sides: tuple[float, float]  # (A-(x), A+(x))

    def osc(self, g=_same) -> float:
        """max - min of g(f) over [lo, hi]."""
        return max(map(g, self.values)) - min(map(g, self.values))

    def variation(self, g=_same) -> float:
        """The total variation of g(f) over [lo, hi]."""
        return float(np.abs(np.diff([g(v) for v in self.values])).sum())

    def step(self, g=_same) -> float:
        """The step of g(f) across the feature, seen from a cell far wider than it."""
        return abs(g(self.sides[1]) - g(self.sides[0]))


@cache
def feature(code: int, a: float, b: float) -> Feature | None:
    """The activation's feature interval, from its declaration (module docstring); None where f is affine."""
    info = catalog.lookup(_NAMES[code])
    f, df = (lambda x: float(info.f(x, a, b))), (lambda x: float(info.df(x, a, b)))
    kinks = [float(k) for k in info.kinks(a, b)]
    grid = np.concatenate([-_GRID[::-1], [0.0], _GRID])
    slopes = np.array([df(x) for x in grid])
    low, high = df(-_FAR), df(_FAR)
    scale = max(np.abs(slopes).max(), abs(low), abs(high))
    limit = np.where(grid > 0.0, high, low)
    away = np.nonzero(np.abs(slopes - limit) > DEPARTURE * scale)[0]
    marks = list(kinks)
    if away.size:  # a departing grid point's outer neighbour bounds where the departure ends
        marks += [float(grid[max(away[0] - 1, 0)]), float(grid[min(away[-1] + 1, grid.size - 1)])]
    if not marks:
        return None
    lo, hi = min(marks), max(marks)
    inside = np.unique(np.concatenate([grid[(grid >= lo) & (grid <= hi)], np.linspace(lo, hi, 257), kinks]))
    values = tuple(f(x) for x in inside)
    left, right = (lambda x: f(lo) + low * (x - lo)), (lambda x: f(hi) + high * (x - hi))
    gap = [right(x) - left(x) for x in (lo, hi)]
    closest = (
        lo + (hi - lo) * gap[0] / (gap[0] - gap[1]) if gap[0] * gap[1] < 0.0 else (lo, hi)[abs(gap[1]) < abs(gap[0])]
    )
    sides = (left(closest), right(closest))
    if abs(sides[1] - sides[0]) <= _MEET * (max(values) - min(values)):
        sides = (sides[0], sides[0])  # lines that meet, but for rounding (softplus: 1e-16): no step
    return Feature(lo, hi, values, sides)


def _mass(lo: float, hi: float, mu: float, sigma: float) -> float:
    """P(lo <= X <= hi) for X ~ N(mu, sigma^2), from the nearer tail (no cancellation of two near-1 values)."""
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    if a > 0.0:
        return float(special.ndtr(-a) - special.ndtr(-b))
    return float(special.ndtr(b) - special.ndtr(a))


def floored(summary: Summary, program: Program, per_replica: int) -> Summary:
    """The summary, its SEs floored by what a feature rarer than the replicas' points can move (module docstring)."""
    codes, params = program.codes, program.params
    first = next((i for i, c in enumerate(codes) if c > 0), None)
    if first is None:
        return summary  # no activation: affine, dropout and window reductions have no feature to miss
    mu, sigma = program.mu, program.sigma
    for code, (a, b) in zip(codes[:first], params[:first]):  # the activation's input: still a normal
        mu, sigma = (a + b * mu, abs(b) * sigma) if code == mc_kernels.AFFINE else (b * mu, abs(b) * sigma)
    name, (a, b) = _NAMES[int(codes[first])], params[first]
    found = feature(int(codes[first]), float(a), float(b))
    # Windows before the activation: its input is one of their reductions; by the union bound it meets the
    # interval with at most their size times one input's chance (the gate only: such a run then declines).
    before = math.prod(int(n) for n in program.win_n[: int(np.searchsorted(program.seg, first, "right")) - 1])
    p = 0.0 if found is None or sigma == 0.0 else min(1.0, before * _mass(found.lo, found.hi, mu, sigma))
    if p * per_replica >= RESOLVED or p == 0.0 or found.osc() == found.step() == 0.0:
        return summary
    if before > 1 or first + 1 < len(codes):  # windows after it are max, min or mean (compile_program)
        raise NotApplicable(
            f"qmc: {name}'s feature in [{found.lo:.3g}, {found.hi:.3g}] has mass {p:.2g}, too rare for its "
            f"{per_replica} points per replica, and this pipeline's other stages give no bound on it: use montecarlo"
        )
    growth = catalog.lookup(name).growth
    bound = growth(float(a), float(b))[0] if growth and growth(float(a), float(b))[1] == 0.0 else None
    mean_floor, std_floor = _floors(summary, program.normals_per_output, found, p, 1.0 / per_replica, bound)
    note = (
        f"{name}'s feature in [{found.lo:.3g}, {found.hi:.3g}] has mass {p:.2g}: fewer than {RESOLVED} of the "
        f"{per_replica} points per replica meet it, so the SEs include a bound on what it can move "
        f"(mean {mean_floor:.2g}, std {std_floor:.2g})"
    )
    mean_se, std_se = math.hypot(summary.mean_se, mean_floor), math.hypot(summary.std_se, std_floor)
    if (mean_se, std_se) == (summary.mean_se, summary.std_se):
        return summary  # a floor below the SEs' last bit (celu at mu = 30: mass 5e-198)
    return replace(summary, mean_se=mean_se, std_se=std_se, notes=summary.notes + (note,))


def _floors(
    summary: Summary, n: int, found: Feature, p: float, cell: float, bound: float | None
) -> tuple[float, float]:
    """(most the mean can move, most the std can) by the feature: of mass p, and met by the replica's cells of
    mass `cell`. n: inputs per output; bound: c0 with |f| <= c0 everywhere (None for an unbounded op)."""
    m, std = summary.mean, summary.std
    if n == 1:
        mean_floor = _unseen(found, p, cell)
        dvar = _unseen(found, p, cell, lambda y: (y - m) ** 2) + mean_floor**2
    else:
        event = min(1.0, n * (p + (cell if found.step() > 0.0 else 0.0)))  # some input meets it
        osc = max(found.osc(), found.step())
        spread = event * (bound + abs(m)) if bound is not None else math.sqrt(event) * std  # E[|y - m| 1_E]
        mean_floor = event * osc
        dvar = 2.0 * osc * spread + event * osc**2
    return mean_floor, min(dvar / std, math.sqrt(dvar)) if std > 0.0 else math.sqrt(dvar)


def _unseen(found: Feature, p: float, cell: float, g=_same) -> float:
    """The most the feature can move E[g(f(X))] in a replica that misses it: its mass times the range of g over it,
    or, where it spans cells (each holds one point of the replica), a cell's mass times g's variation over it;
    plus the step of g across the cell that holds it, which the point in that cell meets on one side only."""
    return min(p * found.osc(g), cell * found.variation(g)) + cell * found.step(g)

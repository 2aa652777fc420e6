"""The Krawczyk test: a box around a polished root that provably holds exactly one root, in ball arithmetic.

K(X) = x - Y r(x) + (I - Y J(X)) (X - x) inside X proves it (Krawczyk 1969; Moore, Kearfott, Cloud,
"Introduction to Interval Analysis", 8.2), with r(x) and J(X) enclosed by estimators.certified_box and the
test run on python-flint's arb_mat. The Jacobian is enclosed over a search box p +- 2^-45 |p| around the polished
double root (it holds the true root: the polish leaves it within a few ulps), the root refined in it by
simplified Newton steps on 192-bit residuals, and the test run on a box of relative radius 2^-80 around the
refined root. The points and the boxes' ends are exact arbs: at WORK_PREC bits every sum and product of
them is exact.
"""

from __future__ import annotations

import math

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..spec import parse

certified_box = lazy_module("momentcalc.estimators.certified_box")
flint = lazy_module("flint")
np = lazy_module("numpy")

PREC = 192  # bits of the certified residual's balls: their width (~1e-50) is far below a double's half-ulp
WORK_PREC = 1024  # the points' arithmetic: doubles, 192-bit residuals and their products stay exact
_JACOBIAN_PREC = 128
_SEARCH_BITS = 45  # the search box's relative radius 2^-45
_BOX_BITS = 80  # the proven box's relative radius 2^-80
_REFINE_STEPS = 4


class Box:
    """The proven box: per unknown, its ends (lo, hi) as exact arbs; what solve reports of it, in doubles."""

    def __init__(self, ends):
        self.ends = ends

    def midpoints(self) -> list[float]:
        with flint.ctx.workprec(WORK_PREC):
            return [float((lo + hi) / 2) for lo, hi in self.ends]

    def distances(self, p) -> list[float]:
        """Per unknown, a double >= the distance from p to the box's far end."""
        with flint.ctx.workprec(WORK_PREC):
            return [_up(max(flint.arb(x) - lo, hi - flint.arb(x))) for x, (lo, hi) in zip(p, self.ends)]

    def rounds_to(self, p) -> list[bool]:
        """Per unknown: does every number of the box round to the double p?"""
        with flint.ctx.workprec(WORK_PREC):
            return [float(lo) == x == float(hi) for x, (lo, hi) in zip(p, self.ends)]

    def outward(self) -> list[tuple[float, float]]:
        """The ends as doubles rounded outward."""
        out = []
        with flint.ctx.workprec(WORK_PREC):
            for lo, hi in self.ends:
                lo, hi = lo.lower(), hi.upper()
                a, b = float(lo), float(hi)
                out.append(
                    (
                        a if flint.arb(a) <= lo else math.nextafter(a, -math.inf),
                        b if flint.arb(b) >= hi else math.nextafter(b, math.inf),
                    )
                )
        return out


def prove(problem, p) -> Box | None:
    """The box around the polished root p (doubles) that holds exactly one root, proven by the Krawczyk test;
    None if the test fails. NotApplicable where the enclosures do not treat the problem."""
    op, slots, wrap = _box_problem(problem, p)
    n = len(p)
    with flint.ctx.workprec(WORK_PREC):
        x = [flint.arb(v) for v in p]
        search = _around(x, _SEARCH_BITS)
        _, jac = _enclose(problem, op, slots, wrap, search, _JACOBIAN_PREC, True)
        mid = [[float(v) for v in row] for row in jac]  # each ball's midpoint, rounded to the nearest double
        y = flint.arb_mat(np.linalg.inv(np.array(mid)).tolist())
        for _ in range(_REFINE_STEPS):  # simplified Newton: x <- x - Y r(x), contraction |I - Y J| ~ 2^-45 a step
            r, _ = _enclose(problem, op, slots, wrap, [(v, v) for v in x], PREC, False)
            step = y * flint.arb_mat([[v.mid()] for v in r])
            x = [v - step[i, 0] for i, v in enumerate(x)]
            if all(abs(step[i, 0]) <= _scale(v) * flint.arb(2) ** (-_BOX_BITS - 10) for i, v in enumerate(x)):
                break
        r, _ = _enclose(problem, op, slots, wrap, [(v, v) for v in x], PREC, False)
        rad = [_scale(v) * flint.arb(2) ** -_BOX_BITS for v in x]
        box = [(v - e, v + e) for v, e in zip(x, rad)]
        if not all(lo >= s_lo and hi <= s_hi for (lo, hi), (s_lo, s_hi) in zip(box, search)):
            return None  # J(search) does not cover the box
        eye = flint.arb_mat([[int(i == j) for j in range(n)] for i in range(n)])
        offsets = flint.arb_mat([[flint.arb(0, e)] for e in rad])  # X - x
        k = flint.arb_mat([[v] for v in x]) - y * flint.arb_mat([[v] for v in r])
        k += (eye - y * flint.arb_mat(jac)) * offsets
        if not all(lo < k[i, 0] < hi for i, (lo, hi) in enumerate(box)):
            return None
    return Box(box)


def _around(x, bits: int):
    """The box x +- 2^-bits |x| (|x| at least 1e-6)."""
    return [(v - _scale(v) * flint.arb(2) ** -bits, v + _scale(v) * flint.arb(2) ** -bits) for v in x]


def _scale(v):
    return max(abs(v), flint.arb(1) / 10**6)


def _box_problem(problem, p):
    """(op, unknowns as certified_box takes them, the wrap's values) at the parameters p."""
    spec = parse(problem.spec_at(p))
    if len(spec.ops) != 1:
        raise MomentcalcError("interval Newton treats one activation (with the affine wrap), not a pipeline")
    op = spec.ops[0]
    slots = [certified_box.param_slot(op, u.name) if u.stage >= 0 else u.name for u in problem.unknowns]
    return op, slots, dict(problem.fixed)


def _enclose(problem, op, slots, wrap, box, prec, jacobian):
    """The residuals' balls (quantity - target) over the box and, with jacobian, the Jacobian's."""
    targets = list(problem.targets)
    # The Jacobian only needs ~2^-40 (it sets the contraction |I - Y J|); the residuals need every bit.
    tol_bits = 40 if jacobian else prec
    values, jac = certified_box.enclose_balls(
        op, slots, wrap, problem.mu, problem.sigma, box, targets, prec, jacobian, tol_bits, var=problem.input_var
    )
    return [v - problem.targets[k] for v, k in zip(values, targets)], jac


def _up(q) -> float:
    """A double >= q (an exact arb)."""
    v = float(q)
    return v if flint.arb(v) >= q else math.nextafter(v, math.inf)

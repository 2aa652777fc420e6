"""Certified enclosures of an activation's output moments and of their derivatives in its parameters, over a box.

momentcalc.solve's interval Newton (the Krawczyk test) needs the residual enclosed at a point and the Jacobian
enclosed over a whole box of parameters. Both are integrals over the base variable z ~ N(0, 1), as in
momentcalc.estimators.certified, with the integrand evaluated on dual numbers whose parts are complex balls
(forward-mode derivatives: a parameter is the ball of its box carrying d/dp = 1). acb.integral encloses the
integral of every selection of the integrand's balls, so each derivative is enclosed for every parameter in the box.

The Gaussian tails |z| > L are bounded by polynomials in |z|: the op's declared growth for the values, its declared
param_growth for the derivatives in its own parameters, and |f'| <= d for the affine wrap's b and c.

Scope: one elementwise op with ball functions, wrapped as y = a f(b x + c) + d with X ~ N(mu, sigma^2); unknowns
among the op's float parameters (the op must declare param_growth, and its kinks must not move with them) and
a, b, c, d. E[y'^2] with b or c unknown needs f'' and is not treated. Anything else raises NotApplicable.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from .. import catalog
from .._lazy import lazy_module
from . import NotApplicable, certified_rounding
from .certified_balls import Lib, Stage
from .certified_integral import EVAL_LIMIT, L_MAX
from .tails import padd, pmul, pscale, tail_bound

flint = lazy_module("flint")

AFFINE = ("a", "b", "c", "d")
QUANTITIES = ("mean", "var", "grad_sq", "q_slope")  # q_slope: d E[y^2] / d sigma^2 = E[y y' (X - mu)] / sigma^2
EVALS = 400_000  # integrand evaluations for one call (all quantities and components together)


# --- dual numbers over complex balls ------------------------------------------------


class Dual:
    """v + sum_j d[j] e_j: a value ball and its derivatives in the unknowns (forward mode)."""

    __slots__ = ("v", "d")

    def __init__(self, v, d):
        self.v, self.d = v, tuple(d)

    def _lift(self, o):
        return o if isinstance(o, Dual) else Dual(o, (0,) * len(self.d))

    def __add__(self, o):
        o = self._lift(o)
        return Dual(self.v + o.v, (a + b for a, b in zip(self.d, o.d)))

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.v, (-a for a in self.d))

    def __sub__(self, o):
        return self + (-self._lift(o))

    def __rsub__(self, o):
        return self._lift(o) + (-self)

    def __mul__(self, o):
        o = self._lift(o)
        return Dual(self.v * o.v, (self.v * b + a * o.v for a, b in zip(self.d, o.d)))

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = self._lift(o)
        q = self.v / o.v
        return Dual(q, ((a - q * b) / o.v for a, b in zip(self.d, o.d)))

    def __rtruediv__(self, o):
        return self._lift(o) / self

    def __pow__(self, n):
        if not isinstance(n, int) or n < 0:
            return NotImplemented
        if n == 0:
            return Dual(1 + 0 * self.v, (0,) * len(self.d))
        p = self.v ** (n - 1)
        return Dual(p * self.v, (n * p * a for a in self.d))

    @property
    def real(self):
        return self.v.real

    def is_exact(self) -> bool:
        return self.v.is_exact()

    def union(self, o):
        o = self._lift(o)
        return Dual(flint.acb(self.v).union(o.v), (flint.acb(a).union(b) for a, b in zip(self.d, o.d)))

    def part(self, k: int):
        """k = 0: the value; k = j + 1: d/d(unknown j)."""
        return self.v if k == 0 else flint.acb(self.d[k - 1])


class DualLib(Lib):
    """certified_balls.Lib's functions on dual numbers (the chain rule), and on plain balls as before."""

    def _chain(self, x, value, slope):
        if not isinstance(x, Dual):
            return value(x)
        v = value(x.v)
        g = slope(x.v, v)
        return Dual(v, (g * a for a in x.d))

    @staticmethod
    def num(value):
        # A parameter that is an unknown arrives as a ball (a dual, or a plain ball where only values are enclosed).
        return value if isinstance(value, (Dual, flint.acb, flint.arb)) else Lib.num(value)

    def sqrt(self, x):
        return self._chain(x, super().sqrt, lambda u, v: 1 / (2 * v))

    def log(self, x):
        return self._chain(x, super().log, lambda u, v: 1 / u)

    def log1p(self, x):
        return self._chain(x, super().log1p, lambda u, v: 1 / (1 + u))

    def exp(self, x):
        return self._chain(x, Lib.exp, lambda u, v: v)

    def expm1(self, x):
        return self._chain(x, Lib.expm1, lambda u, v: u.exp())

    def erf(self, x):
        return self._chain(x, Lib.erf, lambda u, v: 2 / self.pi().sqrt() * (-u * u).exp())

    def erfc(self, x):
        return self._chain(x, Lib.erfc, lambda u, v: -2 / self.pi().sqrt() * (-u * u).exp())

    def tanh(self, x):
        return self._chain(x, Lib.tanh, lambda u, v: 1 - v * v)

    def sech(self, x):
        return self._chain(x, Lib.sech, lambda u, v: -v * u.tanh())


_LIBS = (DualLib(False), DualLib(True))


# --- which argument of the op's functions a parameter is -----------------------------


def param_slot(op, name: str) -> int:
    """0 or 1: the argument (a, b) = op.info.args(op) that carries parameter `name` unchanged, else NotApplicable
    (a parameter transformed on its way to the functions would need that transform's derivative)."""
    info = op.info
    found = []
    for trial in (1.25, 2.5):
        params = tuple((k, v) for k, v in op.params if k != name) + ((name, trial),)
        args = info.args(replace(op, params=params))
        found.append({i for i, v in enumerate(args) if v == trial})
    both = found[0] & found[1]
    if len(both) != 1:
        raise NotApplicable(f"{op.name}'s parameter {name!r} does not reach its functions as it is")
    return both.pop()


# --- the enclosures --------------------------------------------------------------------


def _ball(lo, hi):
    """An arb holding [lo, hi], at the working precision: the ends are Fractions or arbs (rounded as a Fraction's
    numerator / denominator would be: both give the same ball)."""
    a, b = (+end if isinstance(end, flint.arb) else flint.arb(end.numerator) / end.denominator for end in (lo, hi))
    return a.union(b)


def _ends(ball) -> tuple[Fraction, Fraction]:
    ends = certified_rounding.ends(ball)
    if ends is None:
        raise NotApplicable("no finite enclosure")
    return ends


def _finite(ball):
    if not ball.is_finite():
        raise NotApplicable("no finite enclosure")
    return ball


class _Setup:
    """The op, the wrap and the unknowns as balls at one working precision: plain balls for the values
    (direction None), or duals carrying the one derivative d/d(unknown `direction`).

    Why one derivative a setup: each integral encloses one part (the value or one derivative), and a dual costs
    about 9 times a plain ball's arithmetic (its parts are Python tuples); carrying only what the integral
    returns made the interval Newton of `momentcalc solve` several times faster."""

    def __init__(self, op, unknowns, wrap, mu, sigma, box, direction: int | None = None, var=None):
        info = op.info
        if info.kind != catalog.ELEMENTWISE or info.ball is None or info.growth is None:
            raise NotApplicable(f"{op} declares no ball arithmetic")
        self.n, self.direction = len(unknowns), direction
        duals = [self._lift(flint.acb(_ball(lo, hi)), i == direction) for i, (lo, hi) in enumerate(box)]
        a_op, b_op = info.args(op)
        args = [a_op, b_op]
        self.kinds = []
        corners = [(a_op, a_op), (b_op, b_op)]  # each argument's range over the box, for the declared bounds
        for u, dual, (lo, hi) in zip(unknowns, duals, box):
            if u in AFFINE:
                self.kinds.append(u)
                continue
            if info.param_growth is None:
                raise NotApplicable(f"{op.name} declares no bound on the derivatives in its parameters")
            args[u] = dual
            corners[u] = (float(lo), float(hi))
            self.kinds.append(u)
        self.corners = [(x, y) for x in corners[0] for y in corners[1]]
        kinks = {tuple(info.kinks(x, y)) for x, y in self.corners}
        if len(kinks) != 1:
            raise NotApplicable(f"{op.name}'s kinks move with its parameters")
        self.info = info
        self.stage = Stage(info.ball, kinks.pop(), args[0], args[1], info.growth(a_op, b_op))
        w = {k: self._lift(flint.acb(flint.arb(v)), False) for k, v in wrap.items()}
        for u, dual in zip(unknowns, duals):
            if u in AFFINE:
                w[u] = dual
        self.w = w
        # var: the input's variance, exactly as given: sigma is then its square root as a ball, not a rounded double.
        self.mu, self.sigma = flint.arb(mu), flint.arb(sigma) if var is None else flint.arb(var).sqrt()
        self.m_in = w["b"] * flint.acb(self.mu) + w["c"]  # f's input: m_in + s_in z
        self.s_in = w["b"] * flint.acb(self.sigma)

    def _lift(self, ball, varies: bool):
        """ball as this setup carries it: itself, or a dual with d/d(direction) = 1 where it is that unknown, else 0."""
        return ball if self.direction is None else Dual(ball, (int(varies),))

    def upper(self, x) -> object:
        x = x.v if isinstance(x, Dual) else x
        return flint.arb(abs(x.real).upper()) if isinstance(x, flint.acb) else flint.arb(abs(x).upper())

    def growth(self):
        """(c0, c1, d) over the box: the declared bounds at the box's corners (each is monotone in the parameters)."""
        rows = [self.info.growth(x, y) for x, y in self.corners]
        return [flint.arb(max(r[i] for r in rows)) for i in range(3)]

    def param_growth(self, slot: int):
        rows = [self.info.param_growth(x, y)[slot] for x, y in self.corners]
        return [flint.arb(max(r[i] for r in rows)) for i in range(3)]


def enclose(
    op,
    unknowns,
    wrap,
    mu,
    sigma,
    box,
    quantities,
    prec: int,
    jacobian: bool = True,
    tol_bits=None,
    evals=EVALS,
    var=None,
):
    """Enclosures ([lo, hi] as Fractions) of each quantity of y = a f(b x + c) + d, X ~ N(mu, sigma^2), over the box
    of the unknowns, and (jacobian=True) of each quantity's derivative in each unknown over the box.

    unknowns: per unknown, 0 or 1 (an argument of the op's functions, from param_slot) or one of 'a', 'b', 'c', 'd';
    wrap: the affine wrap's values {a, b, c, d} (unknowns' entries ignored); box: per unknown, (lo, hi) Fractions
    (or arbs). Returns (values, jac): values[i] = (lo, hi); jac[i][j] = (lo, hi) for d quantity_i / d unknown_j, or
    None. The rest as enclose_balls."""
    values, jac = enclose_balls(op, unknowns, wrap, mu, sigma, box, quantities, prec, jacobian, tol_bits, evals, var)
    ends = [_ends(v) for v in values]
    return ends, ([[_ends(x) for x in row] for row in jac] if jacobian else None)


def enclose_balls(
    op,
    unknowns,
    wrap,
    mu,
    sigma,
    box,
    quantities,
    prec: int,
    jacobian: bool = True,
    tol_bits=None,
    evals=EVALS,
    var=None,
):
    """As enclose, with each enclosure a finite arb ball (at prec bits): values[i], jac[i][j] (or jac None).

    tol_bits (default prec): each integral's absolute tolerance 2^-tol_bits. Over a wide box the integrand's balls
    are wide where a kink's position in z is uncertain (b or c unknown), and a tolerance below that width would
    only spend evaluations. var: the input's variance exactly (then sigma, its rounded square root, is not used
    for the integrals: sqrt(var) is taken in ball arithmetic).
    """
    if jacobian and {"grad_sq", "q_slope"} & set(quantities) and {"b", "c"} & set(unknowns):
        # f' jumps at kinks that move with b and c (a boundary term), and elsewhere d/db E[y'^2] needs f''.
        raise NotApplicable("derivatives of E[y'^2] or the Q-map slope in b or c are not enclosed (f' jumps; f'')")
    budget = [evals]
    with flint.ctx.workprec(prec):
        directions = [None, *range(len(unknowns))] if jacobian else [None]
        # setups[k]: what part k of each quantity needs (k = 0 the value, k = j + 1 d/d(unknown j)).
        exact_var = None if var is None else float(var)
        setups = [
            _Setup(op, tuple(unknowns), dict(wrap), float(mu), float(sigma), box, d, exact_var) for d in directions
        ]
        lim = min(L_MAX, math.sqrt(2.0 * math.log(2.0) * (prec + 40)))
        values, jac = [], []
        for q in quantities:
            if q not in QUANTITIES:
                raise NotApplicable(f"unknown quantity {q!r}")
            v, d = _quantity(setups, q, lim, prec if tol_bits is None else tol_bits, budget)
            values.append(_finite(v))
            jac.append([_finite(x) for x in d] if jacobian else None)
    return values, (jac if jacobian else None)


def _quantity(setups: list[_Setup], q: str, lim: float, tol_bits: int, budget):
    """(value ball, [derivative balls]) of one quantity: part k from setups[k]."""
    if q == "mean":
        found = [_expect(s, "mean", k, None, lim, tol_bits, budget) for k, s in enumerate(setups)]
        return found[0], found[1:]
    if q in ("grad_sq", "q_slope"):
        what = "grad" if q == "grad_sq" else "qslope"
        found = [_expect(s, what, k, None, lim, tol_bits, budget) for k, s in enumerate(setups)]
        return found[0], found[1:]
    mean = [_expect(s, "mean", k, None, lim, tol_bits, budget) for k, s in enumerate(setups)]
    m0 = flint.arb(mean[0].mid())
    second = [_expect(s, "second", k, m0, lim, tol_bits, budget) for k, s in enumerate(setups)]
    # Var = E[(y - m0)^2] - (E y - m0)^2; d Var = d E[(y - m0)^2] - 2 (E y - m0) d E y.
    shift = mean[0] - m0
    var = second[0] - shift * shift
    return var, [ds - 2 * shift * dm for ds, dm in zip(second[1:], mean[1:])]


def _expect(s: _Setup, what: str, part: int, m0, lim: float, tol_bits: int, budget):
    """Part `part` of E[h] (h: y, (y - m0)^2, y'^2, or y y' z / sigma) as an arb: the integral over |z| <= lim plus the
    tail bound. s carries that part: plain balls for the value (part 0), else duals of the one derivative."""
    component = 0 if part == 0 else 1
    inv_sqrt_2pi = 1 / (2 * flint.arb.pi()).sqrt()
    w, stage, m_in, s_in = s.w, s.stage, s.m_in, s.s_in
    m0c = None if m0 is None else flint.acb(m0)
    inv_sigma = flint.acb(1 / s.sigma)
    unknown = flint.acb(flint.arb("nan"))

    def integrand(z, analytic):
        if budget[0] <= 0:
            return unknown
        budget[0] -= 1
        lib = _LIBS[1 if analytic else 0]
        x = m_in + s_in * z
        if what == "grad":
            g = w["a"] * w["b"] * stage.value(x, 1, lib)
            h = g * g
        elif what == "qslope":  # y y' (X - mu) / sigma^2 with X - mu = sigma z
            h = (w["a"] * stage.value(x, 0, lib) + w["d"]) * w["a"] * w["b"] * stage.value(x, 1, lib) * z * inv_sigma
        else:
            y = w["a"] * stage.value(x, 0, lib) + w["d"]
            h = y if what == "mean" else (y - m0c) ** 2
        p = (-z * z / 2).exp() * inv_sqrt_2pi
        h = h * p
        # A plain ball where s carries duals: nan (a piece boundary on an analytic ball).
        return h.part(component) if isinstance(h, Dual) else h

    cuts = {-lim, lim}
    m, sl = float(m_in.real.mid()), float(s_in.real.mid())
    for kink in stage.kinks:
        z = (kink - m) / sl if sl != 0 else math.inf
        if -lim < z < lim:
            cuts.add(z)
    cuts = sorted(cuts)
    tol = flint.arb(2) ** (-tol_bits)
    total = flint.arb(0)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += flint.acb.integral(integrand, lo, hi, abs_tol=tol, eval_limit=EVAL_LIMIT).real
        if budget[0] <= 0:
            raise NotApplicable("out of integrand evaluations")
    return total + tail_bound(_tail_poly(s, what, part, m0), lim)


def _tail_poly(s: _Setup, what: str, part: int, m0):
    """A polynomial in t = |z| bounding |part of h| for every real z and every parameter in the box."""
    c0, c1, dd = s.growth()
    mx, sx = s.upper(s.m_in), s.upper(s.s_in)
    x_poly = [mx, sx]  # |x| <= mx + sx t
    f_poly = padd([c0], pscale(c1, x_poly))  # |f(x)|
    w = {k: s.upper(v) for k, v in s.w.items()}
    y_poly = padd(pscale(w["a"], f_poly), [w["d"]])
    g_abs = w["a"] * w["b"] * dd  # |y'| = |a b f'|
    kind = None if part == 0 else s.kinds[part - 1]
    z_over_sigma = [flint.arb(0), 1 / s.sigma]  # |z| / sigma
    if what in ("grad", "qslope"):
        if part == 0:
            return [g_abs * g_abs] if what == "grad" else pmul(y_poly, pscale(g_abs, z_over_sigma))
        dg = {"a": [w["b"] * dd], "d": [flint.arb(0)]}.get(kind)
        if dg is None:
            dg = pscale(w["a"] * w["b"], _param_poly(s, kind, x_poly))
        if what == "grad":
            return pscale(2 * g_abs, dg)
        # d(y g) = dy g + y dg
        return pmul(padd(pscale(g_abs, _dy_poly(s, kind, f_poly, w, dd)), pmul(y_poly, dg)), z_over_sigma)
    if part == 0:
        return y_poly if what == "mean" else pmul(padd(y_poly, [abs(m0)]), padd(y_poly, [abs(m0)]))
    dy = _dy_poly(s, kind, f_poly, w, dd)
    if what == "mean":
        return dy
    return pscale(flint.arb(2), pmul(padd(y_poly, [abs(m0)]), dy))  # d (y - m0)^2 = 2 (y - m0) dy


def _dy_poly(s: _Setup, kind, f_poly, w, dd):
    """|dy / d unknown| as a polynomial in |z|."""
    if kind == "a":
        return f_poly
    if kind == "b":
        return pscale(w["a"] * dd, [abs(s.mu), s.sigma])  # a f'(x) (mu + sigma z)
    if kind == "c":
        return [w["a"] * dd]
    if kind == "d":
        return [flint.arb(1)]
    return pscale(w["a"], _param_poly(s, kind, [s.upper(s.m_in), s.upper(s.s_in)]))


def _param_poly(s: _Setup, slot: int, x_poly):
    e0, e1, e2 = s.param_growth(slot)
    return padd(padd([e0], pscale(e1, x_poly)), pscale(e2, pmul(x_poly, x_poly)))

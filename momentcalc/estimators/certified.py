"""Certified enclosures by ball arithmetic (python-flint / Arb): the correctly rounded double and [lo, hi].

For X ~ N(mu, sigma^2) the output of a spec is tracked, as in quadrature, as
Y = g(mu + s B): g a chain of elementwise stages (activations, and the affine
map of a normalize), B the max of n iid standard normals (n = 1: B ~ N(0, 1);
s < 0 for a min), or, after dropout or an average of non-Gaussian values,
only as balls of its mean and variance. Each quantity is an integral over B:

    E[h(g(mu + s b))] = int_{-L}^{L} h(g(mu + s b)) p_n(b) db + (the tails |b| > L),

computed by ``acb.integral`` (a rigorous error bound: the integrand is
evaluated on complex balls, each piece of a piecewise op only where it is
analytic, split at the kinks) plus a PROVEN bound on the tails: every op
declares |f(x)| <= c0 + c1 |x| and |f'(x)| <= d (catalog.OpInfo.growth), so
|h| <= A + B |b| beyond L, and p_n(b) <= n phi(b). L grows until the tail is
below the precision relative to the value (up to L_MAX, where it is below
every double).

Each quantity (mean, std from the central second moment, E[f'(X)^2]) is
certified by raising the working precision until both ends of its enclosure
round to the same double (or, with digits, the same N significant digits).
What this module cannot certify raises NotApplicable, so that another method
is the value of record.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

from .. import catalog
from .._lazy import lazy_module
from ..ops import pooling
from ..spec import Spec
from . import NotApplicable, support

flint = lazy_module("flint")

PRECS = (64, 128, 256, 512, 1024, 2048)  # working precisions tried, in bits
DIGITS_MAX = 600  # the most significant digits one may ask for
L_MAX = 48.0  # exp(-L_MAX^2 / 2) < 1e-500: beyond every double
MAX_N = 10**6  # the largest window (max or min of n) certified
QUANTITIES = ("mean", "std", "grad_sq")
EVAL_LIMIT = 20_000  # integrand evaluations per piece: beyond it the enclosure comes back wide
EVALS = 200_000  # integrand evaluations one quantity may use, all precisions together: then NotApplicable

# The budget is counted in evaluations, not seconds, so that what is certified (and so the value of record, the
# tables and the README's examples) does not depend on how busy the machine is. 200,000 evaluations take about
# 3 s here (15-70 us each); a quantity at an ordinary input needs 1,000 to 6,000. The integrand checks the budget
# on every call, so one slow integral cannot overrun it (acb.integral cannot be interrupted from Python: an
# exception raised in the integrand is only reported after the integration ends, as a SystemError).
_BUDGET: ContextVar[list[int]] = ContextVar("certified_budget")


class _OutOfBudget(Exception):
    """The budget ran out during an integral: its ball is meaningless and must not be cached."""


# --- the ball functions the ops' declarations call ---------------------------------


_NUMBERS: dict = {}


class Lib:
    """What an op's `ball` functions may call (catalog.Ball): flint acb functions, analytic-checked.

    With analytic=True (acb.integral asks whether the integrand is holomorphic on a ball) a function
    with a branch cut returns a non-finite ball where the ball touches the cut.
    """

    def __init__(self, analytic: bool):
        self.analytic = analytic

    @staticmethod
    def num(value):
        """A ball for a number: floats and ints exact, decimal text such as '0.044715' enclosed (cached per
        precision: integrands ask for their constants at every evaluation)."""
        key = (value, flint.ctx.prec)
        found = _NUMBERS.get(key)
        if found is None:
            found = _NUMBERS[key] = flint.acb(flint.arb(value))
        return found

    @staticmethod
    def pi():
        key = ("pi", flint.ctx.prec)
        found = _NUMBERS.get(key)
        if found is None:
            found = _NUMBERS[key] = flint.acb.pi()
        return found

    def sqrt(self, x):
        return flint.acb(x).sqrt(analytic=self.analytic)

    def log(self, x):
        return x.log(analytic=self.analytic)

    def log1p(self, x):
        if self.analytic and not (x.real > -1 or not x.imag.contains(0)):
            return flint.acb(flint.arb.nan())  # the ball may touch the cut of log(1 + x) on x <= -1
        return x.log1p()

    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def expm1(x):
        return x.expm1()

    @staticmethod
    def erf(x):
        return x.erf()

    @staticmethod
    def erfc(x):
        return x.erfc()

    @staticmethod
    def tanh(x):
        return x.tanh()

    @staticmethod
    def sech(x):
        return x.sech()


_LIBS = (Lib(False), Lib(True))


# --- what a spec's output is, in balls ----------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One elementwise stage: the op's analytic pieces between its kinks, or an affine map (y - shift) * scale."""

    pieces: tuple = ()  # ((f, df), ...) as catalog.Ball, len(kinks) + 1
    kinks: tuple[float, ...] = ()
    a: float = 0.0
    b: float = 0.0
    growth: tuple[float, float, float] = (0.0, 1.0, 1.0)  # (c0, c1, d): |f| <= c0 + c1 |x|, |f'| <= d
    monotone: bool = True
    odd_center: float | None = None
    shift: object = None  # affine stage: arb balls
    scale: object = None

    def value(self, x, which: int, lib: Lib):
        """f (which=0) or f' (which=1) at the ball x."""
        if self.scale is not None:
            return (x - self.shift) * self.scale if which == 0 else self.scale + 0 * x
        if not self.kinks:
            return self.pieces[0][which](x, self.a, self.b, lib)
        re = x.real
        touched = [
            i
            for i in range(len(self.pieces))
            if not (i > 0 and re < self.kinks[i - 1]) and not (i < len(self.kinks) and re > self.kinks[i])
        ]
        if len(touched) > 1 and lib.analytic and not x.is_exact():
            return flint.acb(flint.arb.nan())  # not one analytic piece on this ball
        found = self.pieces[touched[0]][which](x, self.a, self.b, lib)
        for i in touched[1:]:
            found = found.union(self.pieces[i][which](x, self.a, self.b, lib))
        return found


@dataclass(frozen=True)
class Chain:
    """Y = chain(mu + s B), B the max of n iid standard normals (s < 0: a min)."""

    mu: float
    s: object  # arb
    n: int = 1
    stages: tuple[Stage, ...] = ()
    windows: bool = False  # a window op was applied: no E[f'^2]
    standardized: bool = False  # the last stage is a normalize: mean 0 and variance 1 exactly
    center: object = None  # a ball c with Y - c odd in B (mu = 0, n = 1, odd stages), else None


@dataclass(frozen=True)
class MomentsOnly:
    """Only the balls of E[Y] and Var[Y] are known; E[f'^2] is grad_factor times that of grad_chain (or None)."""

    mean: object
    var: object
    grad_chain: Chain | None
    grad_factor: object


def _upper(x) -> float:
    """A double >= |x| for an arb x."""
    return math.nextafter(float(abs(x).upper()), math.inf)


def _elementwise(state, op) -> Chain:
    info = op.info
    if isinstance(state, MomentsOnly):
        raise NotApplicable(f"{op} after dropout or an average of non-Gaussian values is not certified")
    if info.ball is None or info.growth is None:
        raise NotApplicable(f"{op} declares no ball arithmetic; the certified method does not treat it")
    a, b = info.args(op)
    stage = Stage(
        info.ball, tuple(info.kinks(a, b)), a, b, tuple(info.growth(a, b)), info.monotone, info.odd_center(a, b)
    )
    center = flint.arb(stage.odd_center) if state.center is not None and state.center == 0 else None
    if stage.odd_center is None:
        center = None
    return replace(state, stages=state.stages + (stage,), standardized=False, center=center)


def _normalize(state, prec: int):
    mean, var = _state_moments(state, prec)
    if not var > 0:
        raise NotApplicable("normalize of a value whose variance is not certified positive")
    std = var.sqrt()
    if isinstance(state, MomentsOnly):
        factor = None if state.grad_chain is None else state.grad_factor / var
        return MomentsOnly(flint.arb(0), flint.arb(1), state.grad_chain, factor)
    scale = 1 / std
    c0, c1 = _up(_upper(mean) * _upper(scale)), _upper(scale)
    stage = Stage(growth=(c0, c1, c1), shift=mean, scale=scale)
    center = None if state.center is None else (state.center - mean) * scale
    return replace(state, stages=state.stages + (stage,), standardized=True, center=center)


def _dropout(state, op, prec: int) -> MomentsOnly:
    if op.info.ball_moments is None:
        raise NotApplicable(f"{op} declares no ball arithmetic")
    mean, var = _state_moments(state, prec)
    lib = _LIBS[0]
    new_mean, new_var, factor = op.info.ball_moments(op, mean, var, lib)
    if isinstance(state, MomentsOnly):
        grad_chain = state.grad_chain
        factor = None if grad_chain is None else state.grad_factor * factor
    else:
        grad_chain = None if state.windows else state
    return MomentsOnly(_real(new_mean), _real(new_var), grad_chain, None if factor is None else _real(factor))


_REDUCTIONS = support.CERTIFIED_REDUCTIONS  # this method's own list (support.py says why)


def _window(state, op, prec: int):
    n, reduction = op.window_size, op.info.reduction
    if reduction not in _REDUCTIONS:  # before n == 1: a reduction of one value need not be that value (|x|)
        raise NotApplicable(f"the certified method does not know the reduction {reduction!r} of {op}")
    if n == 1:
        return state
    if reduction == pooling.MEAN:
        if isinstance(state, Chain) and not state.stages and state.n == 1:
            return replace(state, s=state.s / flint.arb(n).sqrt(), windows=True, center=None)  # normal again
        mean, var = _state_moments(state, prec)
        return MomentsOnly(mean, var / n, None, None)
    if isinstance(state, MomentsOnly):
        raise NotApplicable(f"{op} after dropout or an average of non-Gaussian values is not certified")
    if op.info.ball_density is None:
        raise NotApplicable(f"{op} declares no density in balls")
    if not all(stage.monotone for stage in state.stages):
        raise NotApplicable(f"{op} after a chain that is not non-decreasing (it does not commute) is not certified")
    total = state.n * n
    if total > MAX_N:
        raise NotApplicable(f"windows of more than {MAX_N} values are not certified ({total})")
    if reduction == pooling.MAX and state.s > 0:
        return replace(state, n=total, windows=True, standardized=False, center=None)  # max_i g(X_i) = g(max_i X_i)
    if reduction == pooling.MIN and state.s > 0 and state.n == 1:
        return replace(
            state, s=-state.s, n=n, windows=True, standardized=False, center=None
        )  # min_i X_i = mu - sigma max_i(-Z_i)
    raise NotApplicable(f"{op} after a max or min of the other kind is not certified")


def _real(x):
    return x.real if isinstance(x, flint.acb) else x


declines = support.certified  # read from the declaration alone (`momentcalc list`); _propagate refuses by it


def _propagate(spec: Spec, mu: float, sigma: float, prec: int):
    state = Chain(mu, flint.arb(sigma), center=flint.arb(0) if mu == 0.0 else None)
    for op in spec.ops:
        why = declines(op.info)
        if why is not None:
            raise NotApplicable(f"{op} is not certified: {why}")
        kind = op.kind
        if kind == catalog.ELEMENTWISE:
            state = _elementwise(state, op)
        elif kind == catalog.NORMALIZE:
            state = _normalize(state, prec)
        elif kind == catalog.DROPOUT:
            state = _dropout(state, op, prec)
        elif kind == catalog.WINDOW:
            state = _window(state, op, prec)
        else:
            raise NotApplicable(f"the certified method does not know ops of kind {kind!r} ({op})")
    return state


# --- integrals over the base variable -------------------------------------------------


def _growth(chain: Chain) -> tuple[float, float, float]:
    """(A, B, D): |g(mu + s b)| <= A + B |b| and |g'| <= D for every real b."""
    c0, c1, d = 0.0, 1.0, 1.0
    for stage in chain.stages:  # every double operation rounded up: the bounds stay bounds
        s0, s1, sd = stage.growth
        c0, c1, d = _up(s0 + _up(s1 * c0)), _up(s1 * c1), _up(sd * d)
    return _up(c0 + _up(c1 * abs(chain.mu))), _up(c1 * _upper(chain.s)), d


def _up(v: float) -> float:
    """A double >= v, for v the rounded-to-nearest result of one double operation."""
    return math.nextafter(v, math.inf)


def _cuts(chain: Chain, lim: float) -> list[float]:
    """-lim, lim and where a stage meets a kink (hints only: each piece is checked on every ball anyway)."""
    points = {-lim, lim}
    s = float(chain.s.mid())
    shift, scale = 0.0, 1.0  # the affine prefix so far, as doubles
    for stage in chain.stages:
        if stage.scale is not None:
            shift, scale = shift + float(stage.shift.mid()) / scale, scale * float(stage.scale.mid())
            continue
        for kink in stage.kinks:
            b = ((kink / scale + shift) - chain.mu) / s
            if -lim < b < lim:
                points.add(b)
        break  # kinks after a non-affine stage: no hint
    return sorted(points)


def _integral(chain: Chain, what: str, m0, lim: float, prec: int):
    """The integral over |b| <= lim of what ('mean': g, 'var': (g - m0)^2, 'grad': g'^2) against p_n."""
    inv_sqrt_2pi = 1 / (2 * flint.arb.pi()).sqrt()
    mu, s, n, stages = flint.acb(chain.mu), flint.acb(chain.s), chain.n, chain.stages
    density = None if n == 1 else pooling.max_density_ball
    m0 = None if m0 is None else flint.acb(m0)

    budget = _BUDGET.get([EVALS])  # [evaluations left]: shared by every integral of this quantity
    unknown = flint.acb(flint.arb("nan"))

    def integrand(b, analytic):
        if budget[0] <= 0:
            return unknown  # an indeterminate ball: acb.integral bisects to eval_limit cheaply and returns
        budget[0] -= 1
        lib = _LIBS[1 if analytic else 0]
        x = mu + s * b
        d = 1
        for stage in stages:
            if what == "grad":
                d = d * stage.value(x, 1, lib)
            x = stage.value(x, 0, lib)
        h = x if what == "mean" else (x - m0) ** 2 if what == "var" else d * d
        p = (-b * b / 2).exp() * inv_sqrt_2pi if density is None else density(b, n, lib)
        return h * p

    tol = _tail_scale(lim, n) / 16
    total = flint.arb(0)
    cuts = _cuts(chain, lim)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += flint.acb.integral(integrand, lo, hi, abs_tol=tol, eval_limit=EVAL_LIMIT).real
        if budget[0] <= 0:
            raise _OutOfBudget  # raised, so that the lru_caches above never keep a ball cut short
    return total


def _tail_scale(lim: float, n: int):
    return n * (-(flint.arb(lim) ** 2) / 2).exp()


def _tail(chain: Chain, what: str, m0, lim: float):
    """A ball holding the integral over |b| > lim, from the growth bounds and p_n <= n phi."""
    big_a, big_b, big_d = (flint.arb(v) for v in _growth(chain))
    L = flint.arb(lim)
    phi = (-L * L / 2).exp() / (2 * flint.arb.pi()).sqrt()
    mass = chain.n * (L / flint.arb(2).sqrt()).erfc()  # n P(|Z| > L)
    first = chain.n * 2 * phi  # n E[|Z|; |Z| > L]
    second = chain.n * (2 * L * phi + (L / flint.arb(2).sqrt()).erfc())  # n E[Z^2; |Z| > L]
    if what == "mean":
        r = big_a * mass + big_b * first
        return flint.arb(0, r.upper())
    if what == "var":
        a = big_a + abs(flint.arb(m0))
        r = 2 * a * a * mass + 2 * big_b * big_b * second
    else:
        r = big_d * big_d * mass
    r = r.upper()
    return flint.arb(r / 2, r / 2)  # [0, r]: the integrand is >= 0


def _expect(chain: Chain, what: str, prec: int, m0=None):
    """The ball of E[...] over all b: the range |b| <= L grows until its tail is small next to the value."""
    lim = min(L_MAX, math.sqrt(2.0 * math.log(2.0) * (prec + 10 + math.log2(chain.n))))
    while True:
        inner = _integral(chain, what, m0, lim, prec)
        tail = _tail(chain, what, m0, lim)
        value = inner + tail
        size = abs(inner.mid())
        if lim >= L_MAX or tail.rad() <= size * flint.arb(2) ** (-prec - 4):
            return value
        if inner.rad() < size:  # resolved: the L that makes the tail small enough
            big = sum(_growth(chain)) + 1.0
            need = 2.0 * (math.log(big * chain.n) - float(size.log()) + (prec + 8) * math.log(2.0))
            lim = min(L_MAX, max(lim * 1.1, math.sqrt(max(need, 1.0))))
        else:
            lim = min(L_MAX, lim * 1.5)


def _state_moments(state, prec: int):
    """(mean, var) balls of the state's output at this precision."""
    if isinstance(state, MomentsOnly):
        return state.mean, state.var
    if state.standardized:
        return flint.arb(0), flint.arb(1)
    if not state.stages and state.n == 1:
        return flint.arb(state.mu), state.s * state.s
    if state.center is not None and state.n == 1:
        mean = state.center
    else:
        mean = _expect(state, "mean", prec)
    m0 = mean.mid()
    r = mean.rad()
    second = _expect(state, "var", prec, m0)  # E[(Y - m0)^2] = Var + (mean - m0)^2
    var = second - flint.arb(r * r / 2, r * r / 2)
    return mean, flint.arb(0).union(var) if not var > 0 else var


def _state_grad(state, prec: int):
    if isinstance(state, MomentsOnly):
        if state.grad_chain is None:
            raise NotApplicable("E[f'(X)^2] is certified for chains of elementwise ops, normalize and dropout")
        return _state_grad(state.grad_chain, prec) * state.grad_factor
    if state.windows:
        raise NotApplicable("E[f'(X)^2] is not defined here for specs with window ops")
    if not state.stages:
        return flint.arb(1)
    return _expect(state, "grad", prec)


# --- the quantities, per precision, and certifying them --------------------------------------


@lru_cache(maxsize=512)
def _moments(spec: Spec, mu: float, sigma: float, prec: int):
    with flint.ctx.workprec(prec):
        state = _propagate(spec, mu, sigma, prec)
        mean, var = _state_moments(state, prec)
        return state, mean, var


@lru_cache(maxsize=512)
def _quantity(spec: Spec, mu: float, sigma: float, prec: int, quantity: str):
    """The ball of one quantity of the spec's output at this working precision."""
    state, mean, var = _moments(spec, mu, sigma, prec)
    with flint.ctx.workprec(prec):
        if quantity == "mean":
            return mean
        if quantity == "std":
            return var.sqrt() if var >= 0 else flint.arb(0).union(var.upper().sqrt())
        return _state_grad(state, prec)


@dataclass(frozen=True)
class Certified:
    value: float  # the correctly rounded double
    lo: float  # [lo, hi] (doubles, rounded outward) holds the true value
    hi: float
    digits: str | None = None  # the requested significant digits, correctly rounded
    prec: int = 0  # the working precision that certified it


def _exact(x) -> Fraction:
    man, exp = x.man_exp()
    man, exp = int(man), int(exp)
    return Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2**-exp)


def _ends(ball) -> tuple[Fraction, Fraction] | None:
    if not ball.is_finite():
        return None
    with flint.ctx.workprec(ball.bits() + 128):  # lower() and upper() round outward at the working precision
        return _exact(ball.lower()), _exact(ball.upper())


def _nearest(q: Fraction) -> float | None:
    try:
        return float(q)  # int / int: correctly rounded, ties to even
    except OverflowError:
        return None


def round_ball(ball) -> Certified | None:
    """The correctly rounded double of every number in the ball, with the ball as outward doubles; None if the
    ends round apart."""
    ends = _ends(ball)
    if ends is None:
        return None
    lo, hi = ends
    a, b = _nearest(lo), _nearest(hi)
    if a is None or b is None or a != b:
        return None
    lo_d = a if Fraction(a) <= lo else math.nextafter(a, -math.inf)
    hi_d = b if Fraction(b) >= hi else math.nextafter(b, math.inf)
    return Certified(0.0 if a == 0.0 else a, lo_d, hi_d)


def decimal_digits(q: Fraction, digits: int) -> str:
    """q to `digits` significant digits, correctly rounded (ties to even)."""
    if q == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits
        ctx.rounding = ROUND_HALF_EVEN
        ctx.Emax, ctx.Emin = 10**9, -(10**9)
        found = Decimal(q.numerator) / Decimal(q.denominator)
        return f"{found:.{digits - 1}e}"


def certify(spec: Spec, mu: float, sigma: float, quantity: str, digits: int | None = None) -> Certified:
    """The quantity ('mean', 'std' or 'grad_sq') certified: raise the precision until the enclosure's ends round
    to the same double (and to the same `digits` significant digits, if given)."""
    if digits is not None and not (1 <= digits <= DIGITS_MAX):
        raise NotApplicable(f"digits must be between 1 and {DIGITS_MAX}, got {digits}")
    need = 0 if digits is None else int(digits * 3.33) + 16
    token = _BUDGET.set([EVALS])
    try:
        return _certify(spec, mu, sigma, quantity, digits, need)
    finally:
        _BUDGET.reset(token)


def enclosure(spec: Spec, mu: float, sigma: float, quantity: str, prec: int, evals: int = EVALS):
    """[lo, hi] (exact Fractions) that holds the quantity, from the ball at one working precision: for callers that
    need an absolute accuracy (momentcalc.solve's residuals near 0) rather than correctly rounded digits."""
    token = _BUDGET.set([evals])
    try:
        ends = _ends(_quantity(spec, mu, sigma, prec, quantity))
    except _OutOfBudget:
        raise NotApplicable(
            f"the {quantity} of '{spec}' could not be enclosed in {evals} integrand evaluations"
        ) from None
    finally:
        _BUDGET.reset(token)
    if ends is None:
        raise NotApplicable(f"the {quantity} of '{spec}' has no finite enclosure at {prec} bits")
    return ends


def _certify(spec: Spec, mu: float, sigma: float, quantity: str, digits: int | None, need: int) -> Certified:
    for prec in (p for p in _precs(need) if p >= min(need, PRECS[-1])):
        try:
            ball = _quantity(spec, mu, sigma, prec, quantity)
        except _OutOfBudget:
            raise NotApplicable(
                f"the {quantity} of '{spec}' could not be certified in {EVALS} integrand evaluations (< {prec} bits)"
            ) from None
        found = round_ball(ball)
        if found is None:
            continue
        if digits is None:
            return replace(found, prec=prec)
        lo, hi = _ends(ball)
        text = decimal_digits(lo, digits)
        if text == decimal_digits(hi, digits):
            return replace(found, digits=text, prec=prec)
    raise NotApplicable(f"the {quantity} of '{spec}' could not be certified up to {_precs(need)[-1]} bits")


def _precs(need: int) -> tuple[int, ...]:
    precs = PRECS
    while precs[-1] < need + 64:
        precs += (precs[-1] * 2,)
    return precs


def estimate(spec: Spec, mu: float, sigma: float, digits: int | None = None) -> dict:
    """Each quantity certified, as {quantity: Certified}; grad_sq absent where it is not defined (window ops).

    Raises NotApplicable if the mean or the std cannot be certified."""
    found = {q: certify(spec, mu, sigma, q, digits) for q in ("mean", "std")}
    try:
        found["grad_sq"] = certify(spec, mu, sigma, "grad_sq", digits)
    except NotApplicable:
        pass
    return found

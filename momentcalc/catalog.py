"""The registry of ops: what each op a spec may name is, declared once by its family in ``momentcalc.ops``.

An op's declaration (``OpInfo``) holds everything every method needs: its
parameters and their checks, and, as far as they exist, its scalar function
and derivative, kinks, monotonicity, closed forms, and for window ops the
reduction. Methods read declarations; none keeps a list of ops of its own,
and each refuses what it cannot treat (``NotApplicable``) instead of guessing.

This module is part of the light core: it imports nothing heavy, so that
``momentcalc.constants`` and ``momentcalc --help`` load neither numba nor scipy.
The registry is filled when ``momentcalc`` is imported (its ``__init__`` imports
``momentcalc.ops``, whose family modules call ``register``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

ELEMENTWISE = "elementwise"
WINDOW = "window"
DROPOUT = "dropout"
NORMALIZE = "normalize"
LAYER = "layer"  # a layer for `momentcalc backward` only (conv): spec.parse_layer accepts it, spec.parse does not
# An op of several named independent inputs, each N(mu, sigma^2), whose output is a product of one-input functions
# of them, y = u(x) h(g) (a gated unit: value x, gate g); OpInfo.factors names u and h (momentcalc.products).
PRODUCT = "product"
# An op of n iid Gaussian inputs with one output coordinate whose law the op declares (softmax over n logits, a
# norm over d values): `sample`, `ball_law`, `quad_law`, `closed` and `grad_closed` say what each method does.
JOINT = "joint"
# A residual mix y = sqrt(1 - tau) x + sqrt(tau) F(x) of its input and an elementwise branch F, a spec of elementwise
# ops and normalize given as the op's `f` (momentcalc.products); it needs E[x F(x)], not F's moments alone.
RESIDUAL = "residual"
KINDS = (ELEMENTWISE, WINDOW, DROPOUT, NORMALIZE, LAYER, PRODUCT, JOINT, RESIDUAL)

Scalar = Callable[[float, float, float], float]  # f(x, a, b): a and b carry the op's parameters
# f(x, a, b, lib) on a complex ball x (flint acb) for the certified method; lib holds the ball functions
# (exp, log1p, erf, tanh, constants ...) that momentcalc.estimators.certified_balls.Lib supplies, so ops never
# import flint.
Ball = Callable[[object, float, float, object], object]


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int, float, bool or str
    default: object  # None: required unless the op says otherwise
    check: Callable[[object], bool] = lambda v: True
    accepted: str = ""  # says what `check` accepts, for error messages
    choices: tuple[str, ...] = ()
    raw: bool = False  # the whole text inside the parentheses, e.g. expr(x * tanh(x)); validated by exprlang
    # The documented range (least, most), both included, for numbers: the spec parser refuses the rest and
    # `momentcalc list` shows it. The values come from momentcalc.settings (the input domain).
    bounds: tuple[float, float] | None = None

    def describe(self) -> str:
        """What the parameter accepts, its range included, for error messages and `momentcalc list`."""
        if self.bounds is None:
            return self.accepted or self.kind.__name__
        what = "an integer" if self.kind is int else "a finite number"
        return f"{what} in {self.range_text()}" + (f" ({self.accepted})" if self.accepted else "")

    def accepts(self, value) -> bool:
        """Whether the parser takes this (already converted) value: its check and its declared range."""
        return self.check(value) and (self.bounds is None or self.bounds[0] <= value <= self.bounds[1])

    def range_text(self) -> str:
        lo, hi = self.bounds
        return f"[{_number(lo)}, {_number(hi)}]"


def _number(x: float) -> str:
    """1000, 0.001, 1000000 as people write them (10**6, not 1e+06)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


@dataclass(frozen=True)
class VectorLoop:
    """An activation's vectorized Monte Carlo loops, named, not imported (the ops never import numba): in
    estimators/block_ops (dispatch_gen.LOOP_MODULES), add_<name>_block (f, f'^2 and their sums over a block of
    normals, in one pass) and, where `values`, <name>_values (f alone over a buffer, in place). dispatch_gen writes
    each call into the generated dispatch.py (block_N, vector_values_N) from these fields:

    params: the block loop's parameters after (z, m, mu, sigma), as Python expressions in the op's (a, b) = args(op);
    values_params: the values loop's after (x, m), None: the same as params; scratch: the buffers each loop takes
    last, of "e", "e2" (float) and "scale" (int64); when: a condition on (a, b) under which this loop serves, ""
    always (gelu: its tanh form where a != 0, its erf form else)."""

    name: str
    params: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()
    values: bool = True
    values_params: tuple[str, ...] | None = None
    when: str = ""


# An activation's declared vector_loops when it has none of its own: Monte Carlo runs its scalar f and f' value by
# value (dispatch.py's generated block_N and values_N).
SCALAR_LOOPS: tuple[VectorLoop, ...] = ()


@dataclass(frozen=True)
class OpInfo:
    """One op, declared once: the spec language reads its parameters, the methods its math."""

    name: str
    kind: str
    description: str
    params: tuple[Param, ...] = ()
    # A rule across parameters (values with defaults filled in) and what it accepts, e.g. min_val < max_val.
    constraint: Callable[[dict], bool] | None = None
    constraint_text: str = ""
    # Elementwise ops: scalar f(x, a, b) and f'(x, a, b) in plain `math` (numba compiles them for Monte
    # Carlo; quadrature calls them as they are), with (a, b) = args(op).
    f: Scalar | None = None
    df: Scalar | None = None
    args: Callable[[object], tuple[float, float]] = lambda op: (0.0, 0.0)  # op: a parsed spec.Op
    monotone: bool = False  # non-decreasing: a max over a window commutes with it
    # Non-increasing, then non-decreasing (quasi-convex, e.g. gelu): a max over a window is f at its least or
    # its greatest input.
    valley: bool = False
    # For a valley: a point s with f(x) <= f(y) whenever x <= s <= y (0 for gelu: f <= 0 left of it, >= 0 right),
    # so a max over inputs whose greatest is >= s is f there; inf where no such point is declared.
    valley_split: float = math.inf
    kinks: Callable[[float, float], tuple[float, ...]] = lambda a, b: ()  # where f or f' jumps, from (a, b)
    # Ops that only numpy can evaluate (expr): op -> a vectorized function of an array.
    vectorized: Callable[[object], Callable] | None = None
    # Closed forms for X ~ N(mu, sigma^2), None where unknown (for these parameters or this input).
    closed: Callable[[object, float, float], object] | None = None  # (op, mu, sigma) -> result.Moments | None
    # E[f'(X)^2]: (value, bound on its rounding), or a bare value (then estimators/closed.py states a generic bound)
    grad_closed: Callable[[object, float, float], object] | None = None
    # E[f(X) f(Y)] for (X, Y) standard bivariate normal with correlation c, (op, c) -> (value, bound on its
    # rounding): the dual kernel (correlation map) of an elementwise op, where a closed form is known (momentcalc.cmap).
    kernel: Callable[[object, float], tuple[float, float]] | None = None
    # The op as a torch function, (torch, x, a, b) -> tensor with (a, b) = args(op) and torch the module: what
    # momentcalc.torch runs (the ops layer never imports torch), None where torch has none (expr).
    torch_fn: Callable[[object, object, float, float], object] | None = None
    reduction: str | None = None  # window ops: how the n inputs combine (ops.pooling.REDUCTIONS)
    # The certified method (ball arithmetic). Elementwise ops: `ball` gives (f, f') as Ball functions for each
    # analytic piece, in order between the declared kinks (len(kinks) + 1 pieces); each must be the analytic
    # continuation of f (f') on its piece. growth(a, b) -> (c0, c1, d) with |f(x)| <= c0 + c1 |x| and
    # |f'(x)| <= d for every real x: the proven bound on the Gaussian tails outside the integration range.
    # odd_center(a, b) -> c where f(x) - c is odd, else None: the exact mean under a centred normal.
    ball: tuple[tuple[Ball, Ball], ...] | None = None
    growth: Callable[[float, float], tuple[float, float, float]] | None = None
    odd_center: Callable[[float, float], float | None] = lambda a, b: None
    # param_growth(a, b) -> ((e0, e1, e2) for a, (e0, e1, e2) for b): |df/dp(x)| and |df'/dp(x)| <= e0 + e1 |x| + e2 x^2
    # for every real x, p the argument a or b, each bound monotone in a and in b (its largest value over a box is at a
    # corner); only for ops
    # whose kinks do not move with (a, b). It bounds the Gaussian tails of the derivatives in the parameters that
    # momentcalc.solve's interval Newton encloses (estimators.certified_box).
    param_growth: Callable[[float, float], tuple[tuple[float, float, float], ...]] | None = None
    # Piecewise-polynomial ops: each `ball` piece is a polynomial of at most this degree (<= 2), so a Gaussian
    # integral of f has a closed form in erfc and exp on balls (the certified kernel K(c) of momentcalc.cmap).
    piece_degree: int | None = None
    # Window ops: the density of the reduction of n iid standard normals at a ball b, density(b, n, lib).
    ball_density: Callable[[object, int, object], object] | None = None
    # Dropout: (mean, var, grad factor) after the op from the mean and variance balls before it, (op, mean, var, lib).
    ball_moments: Callable[[object, object, object, object], tuple] | None = None
    # Products (kind PRODUCT): the names of the independent inputs, and op -> one spec text per input, the
    # elementwise op that input passes through; the output is the product of those (for a gated unit
    # ("value", "gate") and ("identity", "sigmoid")). Every method derives the op's moments and its backward
    # rule, the mean squared gradient reaching each input from unit-variance output gradients, from the
    # factors' one-input moments by that method; the op's `wrt` parameter names the input whose backward
    # constant grad_sq reports.
    inputs: tuple[str, ...] = ()
    factors: Callable[[object], tuple[str, ...]] | None = None
    # Ops whose output law they declare (kind JOINT, and window ops of a reduction the kernels do not know), as a
    # lone op on iid N(mu, sigma^2) inputs. The op's inputs per output: size(op). Monte Carlo: sample(op, x) with x
    # an (m, size) numpy array of inputs gives (y, g): the m outputs and the squared gradients reaching the first
    # input from unit-variance output gradients given x (E over the output gradients, sum_j J_j1^2), g None
    # where not declared. certified: ball_law(op, mu, sigma, lib) -> (mean, var, grad) balls (grad may be None),
    # None where no law is known at these arguments. quadrature: quad_law(op, mu, sigma) -> (mean, std,
    # mean_err, std_err, grad, grad_err) or None. Either may return a str instead: the one-line reason it declines
    # at these arguments (shown as the method's refusal).
    size: Callable[[object], int] | None = None
    sample: Callable[[object, object], tuple] | None = None
    ball_law: Callable[[object, float, float, object], tuple | None] | None = None
    quad_law: Callable[[object, float, float], tuple | None] | None = None
    # Monte Carlo's compiled form of `sample`: rows(x, count, n, a, b, y, g, exp) in plain `math` and loops, which
    # numba compiles (with reassociation: its sums run in vector lanes) for the joint kernel (estimators.joint_kernel),
    # as it does an elementwise op's f: y[r] and g[r] <- the output and squared gradient of the inputs
    # x[r n : (r + 1) n], for r < count, with n = size(op) and (a, b) = rows_args(op); exp(t) is the kernels' exp
    # for t <= 709, which vectorizes. It may overwrite x. The generated dispatch.py compiles it (ROWS). None: `sample`
    # (numpy) runs.
    rows: Callable | None = None
    rows_args: Callable[[object], tuple[float, float]] = lambda op: (0.0, 0.0)
    # Elementwise ops with f and f': the Monte Carlo loops over a block of normals (VectorLoop), tried in order, the
    # last without a `when`; SCALAR_LOOPS where the op has none of its own. None: not declared (a test names it).
    vector_loops: tuple[VectorLoop, ...] | None = None
    # Monte Carlo of a heavy-tailed output: trusted_samples(op, mu, sigma) -> (least, why), the fewest samples at which
    # the sampled standard errors are trusted and why (sampled_mc declines fewer, with the reason), or None.
    trusted_samples: Callable[[object, float, float], tuple[int, str] | None] | None = None
    # Methods that decline every use of the op, each with its one-line reason, ((method, reason), ...): `list` and
    # `estimate --method METHOD` show the reason instead of a generic refusal.
    declined: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def declined_by(self, method: str) -> str | None:
        """The op's declared reason why `method` declines it, or None."""
        return dict(self.declined).get(method)


_OPS: dict[str, OpInfo] = {}


def register(info: OpInfo) -> OpInfo:
    """Add an op to the language; the family modules of momentcalc.ops call this for what they declare."""
    # Kinds and reductions are not checked here: every method refuses what it does not know.
    if info.name in _OPS:
        raise ValueError(f"op {info.name!r} is declared twice")
    _OPS[info.name] = info
    return info


def lookup(name: str) -> OpInfo | None:
    return _OPS.get(name)


def all_ops() -> list[OpInfo]:
    """Every op, elementwise first, each group by name."""
    return sorted(_OPS.values(), key=lambda o: (o.kind != ELEMENTWISE, o.name))


def joint_rows_ops() -> list[OpInfo]:
    """Ops that declare a compiled form of their sampler (OpInfo.rows), in declaration order: the joint kernel's."""
    return [o for o in _OPS.values() if o.rows is not None]


def jitted_activations() -> list[OpInfo]:
    """Elementwise ops with scalar f and f', in declaration order: the Monte Carlo kernels' dispatch."""
    return [o for o in _OPS.values() if o.kind == ELEMENTWISE and o.f is not None and o.df is not None]

"""solve(): the op parameters marked `?` in a spec that bring its output's moments to targets.

``solve('selu(alpha=?,scale=?)', mean=0, var=1)`` finds SELU's alpha and lambda (Klambauer et al. 2017). The
moments come from the engine's exact methods (closed form, else quadrature); scipy's root runs from a grid of
starts around the parameters' defaults, so that several roots are found where there are several: first on fast
moments (a fixed Gauss-Legendre rule, for one activation), then, once per root found, on the exact ones. Each root is
then polished by Newton steps on the certified residual (ball arithmetic at 192 bits) where the
certified method applies, and given an error bound: |p - p*| <= |J^-1| (|r(p)| + the residual's enclosure)
with J the Jacobian by central differences of the exact method. That bound is a linearization (J is not
enclosed over a box, the quadratic term, ~|p - p*|^2, is left out), so a solution is "certified residual", not
a proof of the root; without the certified method the residual's bound is the moment method's stated error.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings
from dataclasses import asdict, dataclass, replace
from fractions import Fraction

from . import catalog
from ._lazy import lazy_module
from .errors import MomentcalcError
from .estimators import NotApplicable
from .settings import Progress
from .spec import parse

engine = lazy_module("momentcalc.engine")
certified = lazy_module("momentcalc.estimators.certified")
certified_box = lazy_module("momentcalc.estimators.certified_box")
optimize = lazy_module("scipy.optimize")
integrate = lazy_module("scipy.integrate")
np = lazy_module("numpy")
mpmath = lazy_module("mpmath")

TARGETS = ("mean", "var", "grad_sq", "q_slope")
PREC = 192  # bits of the certified residual's balls: their width (~1e-50) is far below a double's half-ulp
CERTIFY_EVALS = 2_000_000  # integrand evaluations per quantity and solution: ten times an ordinary budget, for 192 bits
_UNKNOWN = re.compile(r"([A-Za-z_]\w*)\s*=\s*\?")
_START_FACTORS = (0.3, 1.0, 3.0)  # starts around a positive default, in each coordinate
_START_OFFSETS = (-1.0, 0.0, 1.0)  # ... around a default that may be 0 or negative
_SAME_ROOT = 1e-7  # relative distance under which two roots found from different starts are one
_FAST_ROOT = 1e-8  # |residual| (relative to the targets' scale) at which the fast search has found a root
_FAST_NODES = 8  # Gauss-Legendre nodes per panel of the fast moments
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Interval Newton: the Jacobian is enclosed over a search box p +- 2^-45 |p| around the polished double root (it
# holds the true root: the polish leaves it within a few ulps), the root refined in it by simplified Newton steps
# on 192-bit residuals, and the Krawczyk test run on a box of relative radius 2^-80 around the refined root.
_SEARCH = Fraction(1, 2**45)
_BOX = Fraction(1, 2**80)
_REFINE_STEPS = 4


@dataclass(frozen=True)
class Unknown:
    stage: int  # index of the op in the pipeline
    op: str
    name: str
    default: float
    positive: bool  # the parameter accepts only x > 0: solved for log(x)

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class Solution:
    spec: str  # the spec with the solution filled in (canonical)
    values: dict[str, float]
    errors: dict[str, float]  # bound on |value - the true root| (see the module docstring)
    last_double: dict[str, bool]  # the bound puts the true root within this double's rounding interval
    residual: dict[str, float]  # moment - target at the solution
    method: str  # 'certified (Krawczyk)', 'certified residual' or the moment method of record ('closed', ...)
    # The Krawczyk test's box {name: [lo, hi]} (outward doubles) that holds exactly one root, or None.
    box: dict[str, list[float]] | None = None
    proof: str = ""  # what the Krawczyk test proved, or why it did not run or did not prove it
    mirror_of: int | None = None  # 1-based index of the solution this one mirrors (a symmetry of the equations)
    mirror: str = ""  # which symmetry

    def to_dict(self) -> dict:
        return asdict(self)


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
        return {
            "spec": self.spec,
            "unknowns": list(self.unknowns),
            "targets": self.targets,
            "input": {"mu": self.mu, "sigma": self.sigma},
            "starts": self.starts,
            "solutions": [s.to_dict() for s in self.solutions],
            "affine": self.affine,
        }


def solve(
    spec: str,
    mean: float | None = None,
    var: float | None = None,
    grad_sq: float | None = None,
    mu: float = 0.0,
    sigma: float = 1.0,
    certify: bool = True,
    affine: str | None = None,
    q_slope: float | None = None,
    progress: Progress | None = None,
    input_var: float | None = None,
) -> SolveResult:
    """Every root found of moments(spec with the `?` filled in) = targets, for X ~ N(mu, sigma^2).

    As many targets (mean, var = std^2, grad_sq = E[f'(X)^2], q_slope = d E[f(X)^2] / d sigma^2, the local Q-map slope
    of DKS) as unknowns. affine, e.g. 'a=?,b=?,c=1,d=?',
    wraps the spec as a * f(b * x + c) + d (defaults a = b = 1, c = d = 0), with `?` for unknowns too. No root
    found: an empty tuple of solutions (the CLI says so). progress(done, total) is told after each start of the
    search and each root polished (the total grows by the roots found once the search ends). input_var: the input's
    variance exactly as posed (a fixed point at variance 2); sigma must then be its rounded square root, which the
    float methods use, while the interval Newton takes sqrt(input_var) in ball arithmetic and the solution is the
    double nearest the root of the problem as posed."""
    given = (("mean", mean), ("var", var), ("grad_sq", grad_sq), ("q_slope", q_slope))
    targets = {k: float(v) for k, v in given if v is not None}
    for key, value in targets.items():
        if not math.isfinite(value):
            raise MomentcalcError(f"--{key.replace('_', '-')} must be a finite number, got {value!r}")
    if "var" in targets and targets["var"] < 0 or "grad_sq" in targets and targets["grad_sq"] < 0:
        raise MomentcalcError("--var and --grad-sq are squares: give numbers >= 0")
    fixed, wrap_unknowns = parse_affine(affine)
    unknowns = find_unknowns(spec, required=not wrap_unknowns) + wrap_unknowns
    if len(targets) != len(unknowns):
        names = ", ".join(u.label for u in unknowns)
        raise MomentcalcError(
            f"{len(unknowns)} unknown(s) ({names}) need as many targets; got {len(targets)}"
            f"{' (' + ', '.join(targets) + ')' if targets else ''}: give that many of --mean, --var, --grad-sq, "
            "--q-slope"
        )
    engine._check_input(mu, sigma)
    if "q_slope" in targets:
        ops = parse(_UNKNOWN.sub(lambda m: f"{m.group(1)}=1", spec)).ops
        if len(ops) != 1 or ops[0].kind != catalog.ELEMENTWISE or ops[0].info.df is None:
            raise MomentcalcError("--q-slope takes one elementwise activation (with the affine wrap), not a pipeline")
    if input_var is not None and not (math.isfinite(input_var) and input_var > 0 and math.sqrt(input_var) == sigma):
        raise MomentcalcError(f"input_var must be > 0 with sigma = sqrt(input_var); got {input_var!r}, sigma {sigma!r}")
    problem = _Problem(spec, unknowns, targets, float(mu), float(sigma), fixed, input_var)
    tell = progress or (lambda done, total: None)
    roots = problem.roots(tell)
    index = {tuple(p): i for i, p in enumerate(roots, 1)}
    solutions = []
    for number, p in enumerate(roots, 1):
        tell(problem.starts + number - 1, problem.starts + len(roots))
        found = problem.polish(p, certify)
        source = problem.mirrors.get(tuple(p))
        if source is not None:
            found = replace(found, mirror_of=index[source[0]], mirror=MIRRORS[source[1]])
        solutions.append(found)
    tell(problem.starts + len(roots), problem.starts + len(roots))
    solutions = tuple(solutions)
    return SolveResult(
        spec, tuple(u.label for u in unknowns), targets, float(mu), float(sigma), problem.starts, solutions, fixed
    )


AFFINE_DEFAULTS = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
# Symmetries of the equations in the wrap a f(b x + c) + d, X ~ N(mu, sigma^2): each maps a root onto a root.
MIRRORS = {
    "b": "b -> -b, c -> c + 2 b mu: f's input b X + c keeps its law, so every target is kept",
    "a": "a -> -a, d -> d + 2 a E[f]: the same mean, variance and E[y'^2]",
}


def parse_affine(text: str | None) -> tuple[dict[str, float], tuple[Unknown, ...]]:
    """'a=?,b=2,d=?' -> ({fixed a, b, c, d}, the unknowns among them). a and b may be negative (never 0): each sign
    is searched (as +-exp(u)), and roots that a symmetry maps onto each other are listed as mirrors (MIRRORS)."""
    fixed, unknowns = dict(AFFINE_DEFAULTS), []
    if text is None:
        return fixed, ()
    for item in text.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if key not in AFFINE_DEFAULTS or not eq or not value:
            raise MomentcalcError(f"bad --affine item {item.strip()!r}: write a, b, c, d as name=number or name=?")
        if value == "?":
            unknowns.append(Unknown(-1, "affine", key, AFFINE_DEFAULTS[key] or 0.0, key in ("a", "b")))
            continue
        try:
            fixed[key] = float(value)
        except ValueError:
            raise MomentcalcError(f"bad --affine value {item.strip()!r}: expected a number or ?") from None
        if not math.isfinite(fixed[key]):
            raise MomentcalcError(f"bad --affine value {item.strip()!r}: expected a finite number")
    return fixed, tuple(unknowns)


def find_unknowns(spec: str, required: bool = True) -> tuple[Unknown, ...]:
    """The parameters written `name=?` in spec text, in order; a MomentcalcError unless each is a float
    parameter of its op."""
    matches = list(_UNKNOWN.finditer(spec))
    if not matches and not required:
        parse(spec)
        return ()
    if not matches:
        raise MomentcalcError(
            f"no unknowns in {spec!r}: mark the parameters to solve for with '?', e.g. 'selu(alpha=?,scale=?)'"
        )
    if spec.count("?") != len(matches):
        raise MomentcalcError(f"malformed unknown in {spec!r}: write name=? inside an op's parentheses")
    parsed = parse(_UNKNOWN.sub(lambda m: f"{m.group(1)}=1", spec))
    unknowns = []
    for m in matches:
        stage = _stage_at(spec, m.start())
        op = parsed.ops[stage]
        param = op.info.param(m.group(1))
        if param is None or param.kind is not float:
            raise MomentcalcError(f"{op.name}'s parameter {m.group(1)!r} is not a number that can be solved for")
        default = float(param.default) if param.default is not None else 1.0
        positive = not param.accepts(0.0) and not param.accepts(-1.0)
        unknowns.append(Unknown(stage, op.name, param.name, default, positive))
    labels = [u.label for u in unknowns]
    if len(set(labels)) != len(labels):
        raise MomentcalcError(f"solve takes each parameter name once; {spec!r} repeats one")
    return tuple(unknowns)


def _stage_at(text: str, position: int) -> int:
    depth, stage = 0, 0
    for ch in text[:position]:
        depth += ch == "("
        depth -= ch == ")"
        stage += ch == "|" and depth == 0
    return stage


class _Problem:
    def __init__(self, spec, unknowns, targets, mu, sigma, fixed=None, input_var=None):
        self.text, self.unknowns, self.targets, self.mu, self.sigma = spec, unknowns, targets, mu, sigma
        self.input_var = input_var  # the input's variance as posed, where sigma is only its rounded square root
        self.fixed = dict(AFFINE_DEFAULTS if fixed is None else fixed)
        self.starts = 0
        self.signs = (1,) * len(unknowns)  # of the parameters solved as +-exp(u): the wrap's a and b
        self.mirrors: dict[tuple, tuple] = {}  # root -> (the root it mirrors, the symmetry's key in MIRRORS)

    def spec_at(self, values) -> str:
        found = iter(v for u, v in zip(self.unknowns, values) if u.stage >= 0)
        return _UNKNOWN.sub(lambda m: f"{m.group(1)}={float(next(found))!r}", self.text)

    def wrap_at(self, values) -> tuple[float, float, float, float, float, float]:
        """(a, b, d, and f's input mean and std b mu + c, |b| sigma): the affine wrap a * f(b x + c) + d."""
        w = dict(self.fixed)
        w.update({u.name: float(v) for u, v in zip(self.unknowns, values) if u.stage < 0})
        b = w["b"]
        if b == 0.0:
            raise MomentcalcError("b = 0 makes f's input constant")
        return w["a"], b, w["d"], b * self.mu + w["c"], abs(b) * self.sigma

    def moments(self, values) -> tuple[dict, dict, str]:
        """The targets' quantities at these parameters by the most exact float method, their bounds, the method."""
        spec = self.spec_at(values)
        a, b, d, mu, sigma = self.wrap_at(values)
        for methods in (("closed",), ("quadrature",)):
            try:
                r = engine.estimate(spec, mu, sigma, methods=methods)
            except MomentcalcError:
                continue
            e = r.estimates[0]
            if e.std is None or ("grad_sq" in self.targets and e.grad_sq is None):
                continue
            # y = a f(b x + c) + d: mean a m + d, variance a^2 v, E[y'^2] = a^2 b^2 E[f'^2]
            g = None if e.grad_sq is None else a * a * b * b * e.grad_sq
            value = {"mean": a * e.mean + d, "var": a * a * e.std * e.std, "grad_sq": g}
            bound = {
                "mean": abs(a) * e.mean_se,
                "var": a * a * 2 * e.std * (e.std_se or 0.0),
                "grad_sq": a * a * b * b * (e.grad_sq_se or 0.0),
            }
            if "q_slope" in self.targets:
                value["q_slope"], bound["q_slope"] = self.q_slope(values)
            return {k: value[k] for k in self.targets}, {k: bound[k] for k in self.targets}, e.method
        raise MomentcalcError(f"no exact method (closed form or quadrature) gives the targets of '{spec}'")

    def q_slope(self, values) -> tuple[float, float]:
        """d E[y(X)^2] / d sigma^2 = E[y(X) y'(X) (X - mu)] / sigma^2 (Stein), DKS's local Q-map slope Q'(1) at the
        default input: scipy quad over the base z (X = mu + sigma z) split at the kinks, and its error estimate."""
        spec = parse(self.spec_at(values))
        op = spec.ops[0]
        if len(spec.ops) != 1 or op.kind != catalog.ELEMENTWISE or op.info.f is None or op.info.df is None:
            raise MomentcalcError("--q-slope takes one elementwise activation (with the affine wrap), not a pipeline")
        info, args = op.info, op.info.args(op)
        w = dict(self.fixed)
        w.update({u.name: float(v) for u, v in zip(self.unknowns, values) if u.stage < 0})
        a, b, d = w["a"], w["b"], w["d"]
        m, s = b * self.mu + w["c"], b * self.sigma  # f's input: m + s z

        def h(z):
            x = m + s * z
            return (a * info.f(x, *args) + d) * a * b * info.df(x, *args) * z * math.exp(-0.5 * z * z)

        lim = 12.0  # phi(12) ~ 5e-32
        points = sorted(z for z in ((k - m) / s for k in info.kinks(*args)) if -lim < z < lim) or None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", integrate.IntegrationWarning)
            value, err = integrate.quad(h, -lim, lim, points=points, epsabs=1e-15, epsrel=1e-13, limit=200)
        # quad warns where roundoff stops it short of the tolerance: its estimate may then be low; the bound takes
        # at least 64 ulps of the integrand's scale (the roundoff of ~100 evaluations summed).
        if caught:
            err = max(err, 64 * math.ulp(max(abs(value), 1.0)))
        scale = 1.0 / (math.sqrt(2.0 * math.pi) * self.sigma)
        return value * scale, err * scale

    def residual(self, values):
        found, _, _ = self.moments(values)
        return [found[k] - t for k, t in self.targets.items()]

    # scipy works on u: log(p) for parameters that must be > 0, p otherwise.
    def to_params(self, u):
        return [s * math.exp(x) if k.positive else float(x) for k, x, s in zip(self.unknowns, u, self.signs)]

    def _residual_u(self, u):
        try:
            if any(k.positive and abs(x) > 30 for k, x in zip(self.unknowns, u)):
                raise MomentcalcError("out of range")
            return self.residual(self.to_params(u))
        except MomentcalcError:  # outside the op's domain: push the root finder back
            return [1e6] * len(self.targets)

    def _start_grid(self):
        axes = []
        for k in self.unknowns:
            if k.positive:
                axes.append([math.log(k.default * f) for f in _START_FACTORS])
            else:
                axes.append([k.default + d for d in _START_OFFSETS])
        return list(itertools.product(*axes))

    def _sign_patterns(self) -> list[tuple[int, ...]]:
        """The signs to search: -1 too for the wrap's a and b, unless a symmetry maps each root with that sign onto
        one with +1 (then the mirrors are added after the search)."""
        choices = [
            (1, -1) if u.stage < 0 and u.name in "ab" and not self._mirror_holds(u.name) else (1,)
            for u in self.unknowns
        ]
        return list(itertools.product(*choices))

    def _mirror_holds(self, name: str) -> bool:
        wrap = {u.name for u in self.unknowns if u.stage < 0}
        if name not in wrap:
            return False
        if name == "b":  # the law of b X + c, N(b mu + c, b^2 sigma^2), is kept by b -> -b, c -> c + 2 b mu
            return self.mu == 0.0 or "c" in wrap
        # a -> -a, d -> d + 2 a E[f]: mean, variance, E[y'^2] kept; the Q-map slope (a d E[f' z] term) is not
        return "d" in wrap and "q_slope" not in self.targets

    def _mirror(self, p, name: str) -> list[float]:
        idx = {u.name: i for i, u in enumerate(self.unknowns) if u.stage < 0}
        w = dict(self.fixed)
        w.update({u.name: float(v) for u, v in zip(self.unknowns, p) if u.stage < 0})
        q = list(p)
        if name == "b":
            q[idx["b"]] = -w["b"]
            if "c" in idx:
                q[idx["c"]] = w["c"] + 2.0 * w["b"] * self.mu
            return q
        a, _, d, mu, sigma = self.wrap_at(p)
        found = engine.estimate(self.spec_at(p), mu, sigma, methods=("closed", "quadrature"))
        q[idx["a"]], q[idx["d"]] = -a, d + 2.0 * a * found.mean
        return q

    def _is_root(self, p) -> bool:
        try:
            r = self.residual(p)
        except MomentcalcError:
            return False
        return max(abs(x) for x in r) <= 1e-9 * max(1.0, *(abs(t) for t in self.targets.values()))

    def _is_new(self, p, found) -> bool:
        return not any(self._same_root(p, q) for q in found)

    @staticmethod
    def _same_root(p, q) -> bool:
        return all(abs(a - b) <= _SAME_ROOT * max(abs(a), abs(b), 1e-300) for a, b in zip(p, q))

    # --- the fast search -------------------------------------------------------------------
    # The exact residual (quadrature with its error tracking, ~50 ms) made a search of 81 starts, each ~170
    # residuals, take minutes (DKS's four conditions on softplus: 531 s). The search runs first on fast moments
    # instead: a fixed Gauss-Legendre rule on each piece of f between its kinks, f's own smooth pieces, which
    # agrees with the exact moments to ~1e-12 in a fraction of a millisecond. Only the starts whose fast search ends
    # at a root, one start per root, then run scipy's root on the exact residual, from there: a few steps.

    def _fast_search(self, u0):
        """The root (in u) that scipy's root finds from u0 on the fast moments; u0 where they do not apply (not one
        elementwise op with f and f'); None where it finds none."""
        try:
            applies = self._fast_moments(self.to_params(u0)) is not None
        except (MomentcalcError, OverflowError, ValueError, ZeroDivisionError):  # u0 outside the op's domain
            applies = False
        if not applies:
            return u0
        sol = optimize.root(self._fast_residual_u, u0, method="hybr", options={"xtol": 1e-12})
        if not np.all(np.isfinite(sol.x)) or any(k.positive and abs(x) > 30 for k, x in zip(self.unknowns, sol.x)):
            return None
        scale = max(1.0, *(abs(t) for t in self.targets.values()))
        return sol.x if max(abs(r) for r in self._fast_residual_u(sol.x)) <= _FAST_ROOT * scale else None

    def _fast_residual_u(self, u):
        try:
            if any(k.positive and abs(x) > 30 for k, x in zip(self.unknowns, u)):
                raise MomentcalcError("out of range")
            found = self._fast_moments(self.to_params(u))
        except (MomentcalcError, OverflowError, ValueError, ZeroDivisionError):
            found = None
        if found is None or not all(math.isfinite(found[k]) for k in self.targets):
            return [1e6] * len(self.targets)
        return [found[k] - t for k, t in self.targets.items()]

    def _fast_moments(self, values) -> dict | None:
        """mean, var, grad_sq and q_slope of y = a f(b x + c) + d at these parameters by the fixed rule; None
        where it does not apply."""
        spec = parse(self.spec_at(values))
        op = spec.ops[0]
        if len(spec.ops) != 1 or op.kind != catalog.ELEMENTWISE or op.info.f is None or op.info.df is None:
            return None
        f, df, args = op.info.f, op.info.df, op.info.args(op)
        a, b, d, m, _ = self.wrap_at(values)
        s = b * self.sigma  # f's input: m + s z, z ~ N(0, 1)
        lim = 12.0
        kinks = [(k - m) / s for k in op.info.kinks(*args)]
        nodes, weights = _gauss_legendre()
        e1 = e2 = g2 = q = 0.0
        for lo, hi in itertools.pairwise(_fast_panels(-m / s, min(1.0, 1.0 / abs(s)) / 8, lim, kinks)):
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for t, wt in zip(nodes, weights):
                z = mid + half * t
                x = m + s * z
                p = wt * half * math.exp(-0.5 * z * z) * _INV_SQRT_2PI
                fx, dfx = f(x, *args), df(x, *args)
                e1 += p * fx
                e2 += p * fx * fx
                g2 += p * dfx * dfx
                q += p * (a * fx + d) * a * b * dfx * z
        return {
            "mean": a * e1 + d,
            "var": a * a * (e2 - e1 * e1),
            "grad_sq": a * a * b * b * g2,
            "q_slope": q / self.sigma,
        }

    def roots(self, tell: Progress) -> list[list[float]]:
        found: list[list[float]] = []
        grid = [(signs, u0) for signs in self._sign_patterns() for u0 in self._start_grid()]
        self.starts = len(grid)
        refined: list[tuple] = []  # (signs, the fast search's root) of each start refined so far
        for number, (signs, u0) in enumerate(grid):
            tell(number, len(grid))
            self.signs = signs
            start = self._fast_search(np.array(u0, dtype=float))
            if start is None or any(s == signs and self._same_root(start, q) for s, q in refined):
                continue  # no root near this start, or one an earlier start has led to
            refined.append((signs, start))
            sol = optimize.root(self._residual_u, start, method="hybr", options={"xtol": 1e-14})
            # Not sol.success alone: hybr reports "xtol too small" at a root it cannot improve in doubles; the
            # residual check below decides.
            if not np.all(np.isfinite(sol.x)) or any(k.positive and abs(x) > 30 for k, x in zip(self.unknowns, sol.x)):
                continue
            p = self.to_params(sol.x)
            if self._is_root(p) and self._is_new(p, found):
                found.append(p)
        for name in ("b", "a"):  # the mirrors of every root found (and of the b-mirrors under a)
            if not self._mirror_holds(name):
                continue
            for p in list(found):
                q = self._mirror(p, name)
                if self._is_root(q) and self._is_new(q, found):
                    found.append(q)
                    self.mirrors[tuple(q)] = (tuple(p), name)
        return sorted(found)

    def jacobian(self, p):
        """d(quantity)/d(param) by central differences of the exact float method (relative accuracy ~1e-8:
        enough for Newton corrections of a few ulps and for the error bound's factor)."""
        cols = []
        for j, x in enumerate(p):
            h = 1e-6 * max(abs(x), 1e-3)
            up, down = list(p), list(p)
            up[j], down[j] = x + h, x - h
            ru, rd = self.residual(up), self.residual(down)
            cols.append([(a - b) / (2 * h) for a, b in zip(ru, rd)])
        return [[cols[j][i] for j in range(len(p))] for i in range(len(p))]

    def certified_residual(self, p):
        """(residual, its half-width) as mpf from the certified method's enclosures at PREC bits; None where it does
        not apply (no ball functions, or out of time)."""
        if "q_slope" in self.targets:
            return None  # the certified method has no Q-map slope (interval Newton encloses it: certified_box)
        spec = parse(self.spec_at(p))
        a, b, d, mu, sigma = self.wrap_at(p)
        # f's input N(b mu + c, (b sigma)^2) in doubles: exact at the default input N(0, 1), rounded otherwise.
        values, halfwidths = [], []
        with mpmath.workdps(PREC // 3):
            a, b, d = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(d)
            for k, t in self.targets.items():
                try:
                    lo, hi = certified.enclosure(spec, mu, sigma, _quantity(k), PREC, CERTIFY_EVALS)
                except NotApplicable:
                    return None
                lo, hi = (mpmath.mpf(q.numerator) / q.denominator for q in (lo, hi))
                if k == "var":  # std >= 0: its square's enclosure
                    lo, hi = max(lo, 0) ** 2, hi**2
                scale = {"mean": a, "var": a * a, "grad_sq": a * a * b * b}[k]
                shift = d if k == "mean" else 0
                lo, hi = sorted((scale * lo + shift, scale * hi + shift))
                values.append((lo + hi) / 2 - mpmath.mpf(t))
                halfwidths.append((hi - lo) / 2)
        return values, halfwidths

    def polish(self, p, certify: bool) -> Solution:
        _, bounds, method = self.moments(p)
        jac = self.jacobian(p)
        cert = self.certified_residual(p) if certify else None
        if cert is not None:
            method = "certified residual"
            for _ in range(4):  # Newton on the certified residual; each step rounds to the nearest double
                with mpmath.workdps(PREC // 3):
                    delta = mpmath.lu_solve(mpmath.matrix(jac), mpmath.matrix(cert[0]))
                    new = [float(mpmath.mpf(x) - delta[i]) for i, x in enumerate(p)]
                if new == p:
                    break
                p = new
                cert = self.certified_residual(p)
                if cert is None:
                    break
        if cert is not None:
            residual, halfwidth = [float(x) for x in cert[0]], [float(h) for h in cert[1]]
        else:
            residual = self.residual(p)
            halfwidth = [bounds[k] for k in self.targets]
        inverse = np.linalg.inv(np.array(jac))
        # Linearized bound, doubled for the Jacobian's own error and the neglected quadratic term.
        err = [
            2.0 * sum(float(abs(inverse[i][j])) * (abs(residual[j]) + halfwidth[j]) for j in range(len(p)))
            for i in range(len(p))
        ]
        labels = [u.label for u in self.unknowns]
        found = Solution(
            str(parse(self.spec_at(p))),
            dict(zip(labels, p)),
            dict(zip(labels, err)),
            dict(zip(labels, (bool(_within_rounding(x, e)) for x, e in zip(p, err)))),
            dict(zip(self.targets, residual)),
            method,
        )
        if not certify:
            return found
        try:
            box = self.krawczyk(p)
        except (NotApplicable, MomentcalcError, ZeroDivisionError) as why:
            return replace(found, proof=f"interval Newton not applied: {why}; the bound is the linearization")
        if box is None:
            return replace(
                found, proof="the Krawczyk test did not prove a root in its box; the bound is the linearization"
            )
        # The box holds exactly one root: its distance to the double, and the double is the root's nearest one
        # when the box lies within the double's rounding interval. With the input's variance as posed (input_var)
        # the float methods' root was that of sqrt(var) rounded: the box's midpoint, rounded, replaces it.
        if self.input_var is not None:
            p = [float((lo + hi) / 2) for lo, hi in box]
            found = replace(found, values=dict(zip(labels, p)), spec=str(parse(self.spec_at(p))))
        err = [_up(max(Fraction(x) - lo, hi - Fraction(x))) for x, (lo, hi) in zip(p, box)]
        return replace(
            found,
            errors=dict(zip(labels, err)),
            last_double=dict(zip(labels, (_box_rounds_to(x, b) for x, b in zip(p, box)))),
            method="certified (Krawczyk)",
            box={name: [float(lo), float(hi)] for name, (lo, hi) in zip(labels, _outward(box))},
            proof="Krawczyk test in ball arithmetic: exactly one root in the box",
        )

    # --- interval Newton ---------------------------------------------------------------

    def _box_problem(self, p):
        """(op, unknowns as certified_box takes them, the wrap's values) at the parameters p."""
        spec = parse(self.spec_at(p))
        if len(spec.ops) != 1:
            raise MomentcalcError("interval Newton treats one activation (with the affine wrap), not a pipeline")
        op = spec.ops[0]
        slots = [certified_box.param_slot(op, u.name) if u.stage >= 0 else u.name for u in self.unknowns]
        return op, slots, dict(self.fixed)

    def _enclose(self, op, slots, wrap, box, prec, jacobian):
        targets = list(self.targets)
        # The Jacobian only needs ~2^-40 (it sets the contraction |I - Y J|); the residuals need every bit.
        tol_bits = 40 if jacobian else prec
        values, jac = certified_box.enclose(
            op, slots, wrap, self.mu, self.sigma, box, targets, prec, jacobian, tol_bits, var=self.input_var
        )
        t = [Fraction(self.targets[k]) for k in targets]
        return [(lo - ti, hi - ti) for (lo, hi), ti in zip(values, t)], jac

    def krawczyk(self, p):
        """The box [(lo, hi)] (Fractions) around p that holds exactly one root, proven by the Krawczyk test
        K(X) = x - Y r(x) + (I - Y J(X)) (X - x) inside X (Krawczyk 1969; Moore, Kearfott, Cloud, "Introduction to
        Interval Analysis", 8.2), with r(x) and J(X) enclosed in ball arithmetic; None if the test fails."""
        op, slots, wrap = self._box_problem(p)
        x = [Fraction(v) for v in p]
        n = len(x)
        search = [(v - _SEARCH * _scale(v), v + _SEARCH * _scale(v)) for v in x]
        _, jac = self._enclose(op, slots, wrap, search, 128, True)
        mid = [[float((lo + hi) / 2) for lo, hi in row] for row in jac]
        y = [[Fraction(float(v)) for v in row] for row in np.linalg.inv(np.array(mid))]
        for _ in range(_REFINE_STEPS):  # simplified Newton: x <- x - Y r(x), contraction |I - Y J| ~ 2^-45 a step
            r, _ = self._enclose(op, slots, wrap, [(v, v) for v in x], PREC, False)
            step = [sum(y[i][j] * (r[j][0] + r[j][1]) / 2 for j in range(n)) for i in range(n)]
            x = [v - d for v, d in zip(x, step)]
            if all(abs(d) <= _BOX * _scale(v) / 1024 for v, d in zip(x, step)):
                break
        r, _ = self._enclose(op, slots, wrap, [(v, v) for v in x], PREC, False)
        rad = [_BOX * _scale(v) for v in x]
        box = [(v - e, v + e) for v, e in zip(x, rad)]
        if any(lo < s_lo or hi > s_hi for (lo, hi), (s_lo, s_hi) in zip(box, search)):
            return None  # J(search) does not cover the box
        for i in range(n):
            k = _isub((x[i], x[i]), _isum([_imul((y[i][j], y[i][j]), r[j]) for j in range(n)]))
            for j in range(n):
                # (I - Y J)_ij over the search box (which holds the box), times (X_j - x_j) = [-rad_j, rad_j]
                yj = _isum([_imul((y[i][m], y[i][m]), jac[m][j]) for m in range(n)])
                c = _isub((Fraction(i == j), Fraction(i == j)), yj)
                k = _iadd(k, _imul(c, (-rad[j], rad[j])))
            if not (box[i][0] < k[0] and k[1] < box[i][1]):
                return None
        return box


def _scale(v: Fraction) -> Fraction:
    return max(abs(v), Fraction(1, 10**6))


def _iadd(a, b):
    return a[0] + b[0], a[1] + b[1]


def _isub(a, b):
    return a[0] - b[1], a[1] - b[0]


def _imul(a, b):
    products = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(products), max(products)


def _isum(items):
    total = (Fraction(0), Fraction(0))
    for item in items:
        total = _iadd(total, item)
    return total


def _outward(box):
    """[(lo, hi)] Fractions as doubles rounded outward."""
    out = []
    for lo, hi in box:
        a, b = float(lo), float(hi)
        out.append(
            (
                a if Fraction(a) <= lo else math.nextafter(a, -math.inf),
                b if Fraction(b) >= hi else math.nextafter(b, math.inf),
            )
        )
    return out


def _up(q: Fraction) -> float:
    """A double >= q."""
    v = float(q)
    return v if Fraction(v) >= q else math.nextafter(v, math.inf)


def _box_rounds_to(x: float, box) -> bool:
    """Does every number of the box (Fractions) round to the double x?"""
    return float(box[0]) == x == float(box[1])


def _quantity(target: str) -> str:
    return "std" if target == "var" else target


def _within_rounding(x: float, err: float) -> bool:
    """Is every number within err of x rounded to x (the true root's nearest double is x)?"""
    return err < min(x - math.nextafter(x, -math.inf), math.nextafter(x, math.inf) - x) / 2


# --- alpha dropout ------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaDropout:
    keep: float  # q, the keep probability
    alpha_prime: float  # the value a dropped unit is set to: -scale * alpha, SELU's limit at -infinity
    a: float  # y = a * (x d + alpha' (1 - d)) + b keeps mean and variance
    b: float
    mean: float
    var: float

    def to_dict(self) -> dict:
        return asdict(self)


def alpha_dropout(keep: float, alpha: float, scale: float, mean: float = 0.0, var: float = 1.0) -> AlphaDropout:
    """Alpha dropout's affine correction (Klambauer et al. 2017, section "New Dropout Technique").

    With d ~ Bernoulli(q) and x of mean mu, variance nu, x d + alpha' (1 - d) has mean q mu + (1 - q) alpha'
    and variance q ((1 - q)(alpha' - mu)^2 + nu); a and b bring them back to (mu, nu):
    a = sqrt(nu / (q ((1 - q)(alpha' - mu)^2 + nu))), b = mu - a (q mu + (1 - q) alpha').
    At (0, 1) that is the paper's a = (q + alpha'^2 q (1 - q))^(-1/2), b = -a (1 - q) alpha'."""
    if not (isinstance(keep, (int, float)) and 0.0 < keep <= 1.0):
        raise MomentcalcError(f"the keep probability must be in (0, 1], got {keep!r}")
    if not var > 0:
        raise MomentcalcError(f"alpha dropout keeps a variance > 0; got --var {var!r}")
    q, ap = float(keep), -float(scale) * float(alpha)
    a = math.sqrt(var / (q * ((1.0 - q) * (ap - mean) ** 2 + var)))
    b = mean - a * (q * mean + (1.0 - q) * ap)
    return AlphaDropout(q, ap, a, b, float(mean), float(var))


@functools.cache
def _gauss_legendre() -> tuple[tuple[float, ...], tuple[float, ...]]:
    nodes, weights = np.polynomial.legendre.leggauss(_FAST_NODES)
    return tuple(float(t) for t in nodes), tuple(float(w) for w in weights)


def _fast_panels(center: float, narrowest: float, lim: float, kinks: list[float]) -> list[float]:
    """The ends of the fast moments' panels over [-lim, lim] in z, kinks among them: `narrowest` wide on each side of
    `center` (where f's input is 0), each next one twice as wide up to 1.

    Why graded: the activations' complex singularities (tanh's and sigmoid's at i pi / 2 in x, swish(beta)'s at
    i pi / beta, softplus's at i pi) sit at real part 0, i.e. near z = center, ~1 / |s| from the real axis. A panel
    no wider than about its distance to them gets ~1e-12 from 8 nodes, so panels can widen away from the center:
    ~30 panels where a uniform mesh narrow enough everywhere took ~100 (s = 1) to thousands (|s| = 20)."""
    center = min(max(center, -lim), lim)  # a center outside the range: grade from the nearer end
    ends = {-lim, lim, *(z for z in kinks if -lim < z < lim)}
    for side in (-1.0, 1.0):
        distance, width = 0.0, narrowest
        while distance < 2 * lim:
            distance += width
            ends.add(center + side * distance)
            width = min(2 * width, 1.0)
    return sorted(z for z in ends if -lim <= z <= lim)

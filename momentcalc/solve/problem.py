"""The posed problem: the moments of a spec at given values of its unknowns, by the engine's exact methods.

Problem fills the unknowns in (spec_at, wrap_at), evaluates the targets' quantities by the most exact float
method (moments) and their residual and Jacobian; the search (search.py), the fast moments (fast.py), the
polish (polish.py) and the Krawczyk test (krawczyk.py) all work on it.
"""

from __future__ import annotations

import math
import warnings

from .. import catalog
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..spec import parse
from . import fast
from .unknowns import AFFINE_DEFAULTS, UNKNOWN

engine = lazy_module("momentcalc.engine")
integrate = lazy_module("scipy.integrate")

POSITIVE_LIMIT = 30  # |log p| beyond which a positive parameter's search is pushed back (e^30 ~ 1e13)


class Problem:
    def __init__(self, spec, unknowns, targets, mu, sigma, fixed=None, input_var=None):
        self.text, self.unknowns, self.targets, self.mu, self.sigma = spec, unknowns, targets, mu, sigma
        self.input_var = input_var  # the input's variance as posed, where sigma is only its rounded square root
        self.fixed = dict(AFFINE_DEFAULTS if fixed is None else fixed)
        self.starts = 0
        self.signs = (1,) * len(unknowns)  # of the parameters solved as +-exp(u): the wrap's a and b
        self.mirrors: dict[tuple, tuple] = {}  # root -> (the root it mirrors, the symmetry's key in MIRRORS)

    def spec_at(self, values) -> str:
        found = iter(v for u, v in zip(self.unknowns, values) if u.stage >= 0)
        return UNKNOWN.sub(lambda m: f"{m.group(1)}={float(next(found))!r}", self.text)

    def wrap_values(self, values) -> dict[str, float]:
        """The wrap's a, b, c, d: the fixed ones and the unknowns' values."""
        w = dict(self.fixed)
        w.update({u.name: float(v) for u, v in zip(self.unknowns, values) if u.stage < 0})
        return w

    def wrap_at(self, values) -> tuple[float, float, float, float, float]:
        """(a, b, d, and f's input mean and std b mu + c, |b| sigma): the affine wrap a * f(b x + c) + d."""
        w = self.wrap_values(values)
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
        op = self.one_activation(values)
        if op is None:
            raise MomentcalcError("--q-slope takes one elementwise activation (with the affine wrap), not a pipeline")
        info, args = op.info, op.info.args(op)
        w = self.wrap_values(values)
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

    def one_activation(self, values):
        """The spec's op at these values where it is one elementwise activation with scalar f and f', else None."""
        spec = parse(self.spec_at(values))
        op = spec.ops[0]
        if len(spec.ops) != 1 or op.kind != catalog.ELEMENTWISE or op.info.f is None or op.info.df is None:
            return None
        return op

    def residual(self, values):
        found, _, _ = self.moments(values)
        return [found[k] - t for k, t in self.targets.items()]

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

    # scipy works on u: log(p) for parameters that must be > 0, p otherwise.
    def to_params(self, u):
        return [s * math.exp(x) if k.positive else float(x) for k, x, s in zip(self.unknowns, u, self.signs)]

    def out_of_range(self, u) -> bool:
        return any(k.positive and abs(x) > POSITIVE_LIMIT for k, x in zip(self.unknowns, u))

    def residual_u(self, u):
        try:
            if self.out_of_range(u):
                raise MomentcalcError("out of range")
            return self.residual(self.to_params(u))
        except MomentcalcError:  # outside the op's domain: push the root finder back
            return [1e6] * len(self.targets)

    def _fast_moments(self, values) -> dict | None:
        """fast.moments at these values (the name the search's tests call)."""
        return fast.moments(self, values)

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

The work is split by job: unknowns.py (what is posed), problem.py (the moments at given values), search.py
(roots from a grid of starts), fast.py (the search's fast moments), polish.py (Newton on the certified residual
and the bounds), krawczyk.py (the proof), results.py (what is returned); dropout.py is alpha dropout's closed form.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .. import catalog
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..settings import Progress
from ..spec import parse
from . import polish, search
from .dropout import AlphaDropout, alpha_dropout
from .problem import Problem
from .results import Solution, SolveResult
from .unknowns import AFFINE_DEFAULTS, MIRRORS, Unknown, find_unknowns, parse_affine, with_ones

engine = lazy_module("momentcalc.engine")

TARGETS = ("mean", "var", "grad_sq", "q_slope")
_Problem = Problem  # the name the tests pose a problem by

__all__ = [
    "AFFINE_DEFAULTS",
    "MIRRORS",
    "TARGETS",
    "AlphaDropout",
    "Problem",
    "Solution",
    "SolveResult",
    "Unknown",
    "alpha_dropout",
    "find_unknowns",
    "parse_affine",
    "solve",
]


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
    engine.checks.check_input(mu, sigma)
    if "q_slope" in targets:
        ops = parse(with_ones(spec)).ops
        if len(ops) != 1 or ops[0].kind != catalog.ELEMENTWISE or ops[0].info.df is None:
            raise MomentcalcError("--q-slope takes one elementwise activation (with the affine wrap), not a pipeline")
    if input_var is not None and not (math.isfinite(input_var) and input_var > 0 and math.sqrt(input_var) == sigma):
        raise MomentcalcError(f"input_var must be > 0 with sigma = sqrt(input_var); got {input_var!r}, sigma {sigma!r}")
    problem = Problem(spec, unknowns, targets, float(mu), float(sigma), fixed, input_var)
    tell = progress or (lambda done, total: None)
    roots = search.roots(problem, tell)
    index = {tuple(p): i for i, p in enumerate(roots, 1)}
    solutions = []
    for number, p in enumerate(roots, 1):
        tell(problem.starts + number - 1, problem.starts + len(roots))
        found = polish.polish(problem, p, certify)
        source = problem.mirrors.get(tuple(p))
        if source is not None:
            found = replace(found, mirror_of=index[source[0]], mirror=MIRRORS[source[1]])
        solutions.append(found)
    tell(problem.starts + len(roots), problem.starts + len(roots))
    solutions = tuple(solutions)
    return SolveResult(
        spec, tuple(u.label for u in unknowns), targets, float(mu), float(sigma), problem.starts, solutions, fixed
    )

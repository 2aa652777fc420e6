"""residual(f=SPEC, tau): y = sqrt(1 - tau) x + sqrt(tau) F(x), a variance-preserving residual mix of the input x
and an elementwise branch F (a spec of elementwise ops and normalize, e.g. relu | normalize).

For x ~ N(mu, sigma^2), E[y^2] = (1 - tau) E[x^2] + 2 sqrt(tau (1 - tau)) E[x F(x)] + tau E[F^2]: it needs the
cross moment E[x F(x)] (by Stein's lemma, mu E[F] + sigma^2 E[F'(x)]), not F's moments alone; dy/dx =
sqrt(1 - tau) + sqrt(tau) F'(x) gives the backward constant. A normalize inside F uses the exact constants of what
precedes it at the residual's input. Quadrature and Monte Carlo (momentcalc.products) evaluate y as one function.
"""

from __future__ import annotations

from ..catalog import ELEMENTWISE, NORMALIZE, RESIDUAL, OpInfo, Param, register
from ..errors import MomentcalcError


def _branch_ok(text: str) -> bool:
    """A spec of elementwise ops and normalize, spelled canonically (it is part of the table key)."""
    from ..spec import parse  # the spec parser reads this module's declaration: imported when a value is checked

    try:
        branch = parse(text)
    except MomentcalcError:
        return False
    return str(branch) == text and all(op.kind in (ELEMENTWISE, NORMALIZE) for op in branch.ops)


register(
    OpInfo(
        "residual",
        RESIDUAL,
        "sqrt(1 - tau) x + sqrt(tau) F(x) with F an elementwise spec, e.g. residual(f=relu | normalize,tau=0.1)",
        (
            Param("f", str, None, _branch_ok, "a spec of elementwise ops and normalize, spelled as `list` does"),
            Param("tau", float, None, lambda v: 0.0 <= v <= 1.0, "the branch's share of the variance, in [0, 1]"),
        ),
    )
)

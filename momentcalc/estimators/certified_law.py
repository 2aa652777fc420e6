"""Certified moments of a lone op that declares its law in balls (catalog.OpInfo.ball_law): the declared
mean, variance and backward constant as Arb balls, at rising working precision until each rounds to one double."""

from __future__ import annotations

from ..spec import Op
from . import NotApplicable, certified
from .certified_rounding import round_ball


def estimate(op: Op, mu: float, sigma: float) -> dict:
    if op.info.ball_law is None:
        raise NotApplicable(f"{op} declares no law in balls")
    for prec in certified.PRECS:
        with certified.flint.ctx.workprec(prec):
            law = op.info.ball_law(op, mu, sigma, certified.flint)
            if law is None:
                raise NotApplicable(f"no certified law of {op} is declared at mu={mu:g}, sigma={sigma:g}")
            if isinstance(law, str):
                raise NotApplicable(f"certified declines {op} at mu={mu:g}, sigma={sigma:g}: {law}")
            mean, var, grad = law
            balls = {"mean": mean, "std": var.sqrt() if var >= 0 else None, "grad_sq": grad}
            found = {q: round_ball(b) for q, b in balls.items() if b is not None}
        if balls["std"] is not None and all(found.values()):
            return found
    raise NotApplicable(f"the law of {op} could not be certified up to {certified.PRECS[-1]} bits")

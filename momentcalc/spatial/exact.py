"""The most exact method for a spec of iid inputs: closed form where there is one, else quadrature."""

from __future__ import annotations

from ..estimators import NotApplicable, closed, quadrature
from ..spec import Spec


def most_exact(spec: Spec, mu: float, sigma: float) -> tuple[float, float, float, float, str]:
    """(mean, std, mean error, std error, method) by the most exact method; NotApplicable if none."""
    if not spec.ops:
        return mu, sigma, 0.0, 0.0, "closed"
    if len(spec.ops) == 1:
        try:
            m = closed.estimate_moments(spec, mu, sigma)
            if m.std is not None:
                return m.mean, m.std, m.mean_err, m.std_err, "closed"
        except NotApplicable:
            pass
    return (*quadrature.estimate_moments(spec, mu, sigma), "quadrature")

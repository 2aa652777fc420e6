"""Alpha dropout's affine correction, in closed form."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import MomentcalcError


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

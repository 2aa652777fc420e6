"""Exact gains with torch.nn.init.calculate_gain's signature, NF-Nets gamma and the NormProp affine.

The gain of f is the weight scale that keeps the second moment: with std = gain / sqrt(fan_in) and
inputs of second moment 1, a layer's pre-activations have variance gain^2, and for X ~ N(0, 1)
E[(gain f(X))^2] = 1 exactly when gain = 1 / sqrt(E[f(X)^2]). That is torch's meaning; torch's
table gets it exactly for linear/conv, relu and leaky_relu only. Where torch's value is not this
moment it is a convention or a heuristic:

- tanh: 5/3 (a heuristic; the exact value is 1.5925...),
- sigmoid: 1 (the exact value is 1.846...),
- selu: 3/4, a convention chosen in pytorch/pytorch#50664 to balance forward and backward
  magnitudes; the second-moment gain of SELU is exactly 1 (SELU keeps E[f^2] = 1 by construction),
  which is what torch's docs advise for self-normalizing nets ('linear').

calculate_gain here returns the exact second-moment gain for every name.
"""

from __future__ import annotations

import math

from .. import catalog
from ..errors import MomentcalcError
from ..spec import parse
from .moments import moments

# torch's names for the identity map (a linear layer with no nonlinearity): gain exactly 1.
_IDENTITY_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
TORCH_LEAKY_RELU_SLOPE = 0.01  # torch's default when param is None
_PER_ELEMENT_KINDS = (catalog.ELEMENTWISE, catalog.NORMALIZE, catalog.DROPOUT)


def nonlinearity_spec(nonlinearity: str, param: float | None = None) -> str:
    """The momentcalc spec of a torch nonlinearity name or of any per-element spec, canonical.

    param is the negative slope of 'leaky_relu' (torch's meaning) and ignored otherwise, as torch
    ignores it (nn.init.kaiming_normal_ passes its `a` for every nonlinearity).
    """
    if not isinstance(nonlinearity, str):
        raise MomentcalcError(
            f"nonlinearity must be a name such as 'relu' or a spec such as 'gelu', not {nonlinearity!r}"
        )
    name = nonlinearity.strip()
    if name in _IDENTITY_NAMES:
        return "identity"
    if name == "leaky_relu":
        slope = TORCH_LEAKY_RELU_SLOPE if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope):
            raise MomentcalcError(f"leaky_relu's param is its negative slope, a finite number, not {param!r}")
        return str(parse(f"leaky_relu(slope={float(slope)!r})"))
    parsed = parse(name)
    windowed = [str(op) for op in parsed.ops if op.kind not in _PER_ELEMENT_KINDS]
    if windowed:
        raise MomentcalcError(
            f"a gain is defined for per-element specs such as 'relu' or 'gelu | normalize', not for {windowed[0]!r}"
        )
    return str(parsed)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """1 / sqrt(E[f(X)^2]) for X ~ N(0, 1): torch.nn.init.calculate_gain's meaning, exact for every spec."""
    m = moments(nonlinearity_spec(nonlinearity, param))
    return 1.0 / math.hypot(m.mean, m.std)  # hypot: E[f^2] = mean^2 + std^2 without a rounding of the squares


def gamma(spec: str, mu: float = 0.0, sigma: float = 1.0) -> float:
    """NF-Nets' gamma: 1 / std(f(X)), X ~ N(mu, sigma^2) (N(0, 1) by default)."""
    return 1.0 / moments(spec, mu, sigma).std


def affine(spec: str, mu: float = 0.0, sigma: float = 1.0) -> tuple[float, float]:
    """(mean, std) of the spec's output at N(mu, sigma^2): NormProp's y = (f(x) - mean) / std."""
    m = moments(spec, mu, sigma)
    return m.mean, m.std

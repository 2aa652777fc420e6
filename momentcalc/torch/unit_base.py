"""The scale primitives every unit-scaled op is built from: scale_fwd, scale_bwd and the constraints.

They live apart from the ops (unit.py, unit_layers.py) so that each module of ops imports them one way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import MomentcalcError


class _ScaleGrad(torch.autograd.Function):
    """Multiplies by `forward` in the forward pass and the incoming gradient by `backward` in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, forward: float, backward: float) -> Tensor:
        ctx.backward_scale = backward
        return x * forward

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.backward_scale, None, None


def scale_fwd(input: Tensor, scale: float) -> Tensor:
    """input * scale, with its gradient passed back unchanged."""
    return _ScaleGrad.apply(input, scale, 1.0)


def scale_bwd(input: Tensor, scale: float) -> Tensor:
    """input unchanged, with the gradient reaching it multiplied by scale."""
    return _ScaleGrad.apply(input, 1.0, scale)


def _mean(name: str, scales: tuple[float, ...]) -> float:
    n = len(scales)
    if name == "gmean":
        return math.prod(scales) ** (1.0 / n)
    if name == "hmean":
        return n / sum(1.0 / s for s in scales)
    return sum(scales) / n


CONSTRAINTS = ("to_output_scale", "to_grad_input_scale", "gmean", "hmean", "amean")


def constrain(constraint: str | None, forward: float, *backward: float) -> tuple[float, ...]:
    """(forward, *backward) after the constraint: None keeps them; the others set all to one value."""
    if constraint is None or constraint == "":
        return (forward, *backward)
    if constraint not in CONSTRAINTS:
        raise MomentcalcError(f"constraint must be None or one of {', '.join(CONSTRAINTS)}, not {constraint!r}")
    if constraint == "to_output_scale":
        chosen = forward
    elif constraint == "to_grad_input_scale":
        if len(backward) != 1:
            raise MomentcalcError("constraint 'to_grad_input_scale' needs an op of one input")
        chosen = backward[0]
    else:
        chosen = _mean(constraint, (forward, *backward))
    return (chosen,) * (1 + len(backward))

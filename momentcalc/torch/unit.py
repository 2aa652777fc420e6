"""Unit-scaled ops with unit-scaling 0.3.5's names and signatures, their scales exact (momentcalc.torch.unit_scales).

    import momentcalc.torch.unit as U      # in place of: import unit_scaling.functional as U
    y = U.silu(x, mult=0.5)                 # x * sigmoid(0.5 x), output and gradient at unit scale
    y = U.silu_glu(value, gate, mult=1.0)   # value * silu(gate), each input's gradient scaled on its own
    y = U.gelu_glu(value, gate)             # also sigmoid_glu, relu_glu (not in unit-scaling)
    p = U.softmax(logits, dim=-1, mult=2.0) # softmax(2 x) * scale, unit RMS
    y = U.layer_norm(x, (256,))             # also rms_norm, embedding, cross_entropy, mse_loss (unit_layers.py)
    y = U.conv1d(x, w, padding=3)           # scales counted over edges and padding too (unit_conv.py)
    y = U.scaled_dot_product_attention(q, k, v, is_causal=True)  # scales per attended-key count (unit_attention)

Each op multiplies the gradient reaching its input by the backward scale (scale_bwd), applies the plain
function, and multiplies its output by the forward scale (scale_fwd): the gradient it passes back is the
backward scale times the plain function's gradient, not the forward scale's. `constraint` ties the scales
as unit-scaling's does ("to_output_scale", its default, uses the forward scale for both, which makes the op
an ordinary differentiable function; None keeps them separate; "gmean", "hmean", "amean",
"to_grad_input_scale"). linear, linear_readout, matmul and the residual pair need no fitted constant: their
scales are algebra (unit variance sums), the same as unit-scaling's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MomentcalcError
from . import checks, unit_scales
from .unit_attention import scaled_dot_product_attention
from .unit_base import CONSTRAINTS, constrain, scale_bwd, scale_fwd
from .unit_conv import Conv1d, conv1d
from .unit_layers import (
    CrossEntropyLoss,
    Embedding,
    LayerNorm,
    RMSNorm,
    cross_entropy,
    embedding,
    layer_norm,
    mse_loss,
    rms_norm,
)


def _elementwise(fn, input: Tensor, scales: unit_scales.UnitScales, constraint: str | None) -> Tensor:
    forward, backward = constrain(constraint, scales.forward, *scales.backward)
    return scale_fwd(fn(scale_bwd(input, backward)), forward)


def gelu(
    input: Tensor, mult: float = 1.0, constraint: str | None = "to_output_scale", approximate: str = "none"
) -> Tensor:
    """Unit-scaled gelu(mult x) / mult, its scales exact for this mult."""
    scales = unit_scales.gelu(mult, approximate)
    m = scales.sigma
    return _elementwise(lambda x: F.gelu(x * m, approximate=approximate) / m, input, scales, constraint)


def silu(input: Tensor, mult: float = 1.0, constraint: str | None = "to_output_scale", inplace: bool = False) -> Tensor:
    """Unit-scaled x * sigmoid(mult x), its scales exact for this mult (inplace is not supported, as there)."""
    if inplace:
        raise MomentcalcError("silu: inplace=True is not supported (the scaled output is a new tensor)")
    scales = unit_scales.silu(mult)
    return _elementwise(lambda x: x * torch.sigmoid(x * mult), input, scales, constraint)


def silu_glu(input: Tensor, gate: Tensor, mult: float = 1.0) -> Tensor:
    """Unit-scaled input * gate * sigmoid(mult gate): unit output std, and each input's gradient on its own scale."""
    return _gated(input, gate, lambda g: g * torch.sigmoid(g * mult), unit_scales.silu_glu(mult))


def _gated(input: Tensor, gate: Tensor, h, scales: unit_scales.UnitScales) -> Tensor:
    value_scale, gate_scale = scales.backward
    return scale_fwd(scale_bwd(input, value_scale) * h(scale_bwd(gate, gate_scale)), scales.forward)


def sigmoid_glu(input: Tensor, gate: Tensor) -> Tensor:
    """Unit-scaled input * sigmoid(gate) (GLU, Dauphin et al. 2017), each input's gradient on its own scale."""
    return _gated(input, gate, torch.sigmoid, unit_scales.gated("sigmoid"))


def gelu_glu(input: Tensor, gate: Tensor) -> Tensor:
    """Unit-scaled input * gelu(gate) (GEGLU, Shazeer 2020), each input's gradient on its own scale."""
    return _gated(input, gate, F.gelu, unit_scales.gated("gelu"))


def relu_glu(input: Tensor, gate: Tensor) -> Tensor:
    """Unit-scaled input * relu(gate) (ReGLU, Shazeer 2020), each input's gradient on its own scale."""
    return _gated(input, gate, F.relu, unit_scales.gated("relu"))


def softmax(
    input: Tensor,
    dim: int,
    dtype: torch.dtype | None = None,
    constraint: str | None = "to_output_scale",
    mult: float = 1.0,
) -> Tensor:
    """Unit-scaled softmax(mult x) along dim: unit RMS output, scales exact for this dim size and mult."""
    scales = unit_scales.softmax(input.shape[dim], mult)
    return _elementwise(lambda x: F.softmax(x * mult, dim=dim, dtype=dtype), input, scales, constraint)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Unit-scaled (inverted) dropout: both scales sqrt(1 - p) in training, none otherwise."""
    if inplace:
        raise MomentcalcError("dropout: inplace=True is not supported (the scaled output is a new tensor)")
    if not checks.flag("training", training):
        return input
    scales = unit_scales.dropout(p)
    return _elementwise(lambda x: F.dropout(x, p, True), input, scales, None)


def matmul(left: Tensor, right: Tensor, constraint: str | None = "to_output_scale") -> Tensor:
    """Unit-scaled left @ right: a sum of `inner` unit-variance products has variance `inner`."""
    forward, left_scale, right_scale = constrain(
        constraint, left.shape[-1] ** -0.5, right.shape[-1] ** -0.5, left.shape[-2] ** -0.5
    )
    return scale_fwd(torch.matmul(scale_bwd(left, left_scale), scale_bwd(right, right_scale)), forward)


def linear(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    constraint: str | None = "to_output_scale",
    scale_power: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> Tensor:
    """Unit-scaled x W^T + b for unit-variance W: output by fan_in^-1/2, input gradient by fan_out^-1/2."""
    fan_out, fan_in = weight.shape
    batch = input.numel() // fan_in
    forward, input_scale = constrain(constraint, fan_in ** -scale_power[0], fan_out ** -scale_power[1])
    param_scale = batch ** -scale_power[2]
    bias = None if bias is None else scale_bwd(bias, param_scale)
    output = F.linear(scale_bwd(input, input_scale), scale_bwd(weight, param_scale), bias)
    return scale_fwd(output, forward)


def linear_readout(input: Tensor, weight: Tensor, bias: Tensor | None, constraint: str | None = None) -> Tensor:
    """Unit-scaled readout layer (u-muP's, as unit-scaling's): output by 1 / fan_in, so that the logits shrink as
    fan_in^-1/2 with width (muP's readout rule), input gradient by fan_out^-1/2; no constraint by default."""
    return linear(input, weight, bias, constraint=constraint, scale_power=(1.0, 0.5, 0.5))


def residual_split(input: Tensor, tau: float = 1.0) -> tuple[Tensor, Tensor]:
    """(residual, skip) copies of input whose gradients are weighted tau : 1, summing to unit variance."""
    norm = math.sqrt(1.0 + checks.real("tau", tau) ** 2)
    return scale_bwd(input, tau / norm), scale_bwd(input, 1.0 / norm)


def residual_add(residual: Tensor, skip: Tensor, tau: float = 1.0) -> Tensor:
    """(tau residual + skip) / sqrt(1 + tau^2): unit variance for independent unit-variance branches."""
    norm = math.sqrt(1.0 + checks.real("tau", tau) ** 2)
    return scale_fwd(residual, tau / norm) + scale_fwd(skip, 1.0 / norm)


class GELU(nn.GELU):
    """nn.GELU, unit-scaled with the exact scales of gelu(mult x) / mult."""

    def __init__(self, mult: float = 1.0, constraint: str | None = "to_output_scale", approximate: str = "none"):
        super().__init__(approximate=approximate)
        unit_scales.gelu(mult, approximate)  # a bad mult is refused here, not at the first forward pass
        constrain(constraint, 1.0, 1.0)
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.mult, self.constraint, self.approximate)


class SiLU(nn.SiLU):
    """nn.SiLU, unit-scaled with the exact scales of x * sigmoid(mult x)."""

    def __init__(self, mult: float = 1.0, constraint: str | None = "to_output_scale", inplace: bool = False):
        super().__init__(inplace=inplace)
        unit_scales.silu(mult)
        constrain(constraint, 1.0, 1.0)
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return silu(input, self.mult, self.constraint, self.inplace)


class Softmax(nn.Softmax):
    """nn.Softmax, unit-scaled (unit RMS) with the exact scales of softmax(mult x) for the input's dim size."""

    def __init__(self, dim: int, mult: float = 1.0, constraint: str | None = "to_output_scale"):
        super().__init__(dim=dim)
        checks.real("mult", mult)  # its range is checked with the dim size, at the first forward pass
        constrain(constraint, 1.0, 1.0)
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return softmax(input, self.dim, constraint=self.constraint, mult=self.mult)


class Dropout(nn.Dropout):
    """nn.Dropout, unit-scaled: output and gradient times sqrt(1 - p) in training."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training, self.inplace)


class Linear(nn.Linear):
    """nn.Linear with unit-variance weights (bias False by default, as unit-scaling), unit-scaled."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device=None,
        dtype=None,
        constraint: str | None = "to_output_scale",
    ):
        constrain(constraint, 1.0, 1.0)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.constraint = constraint

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias, self.constraint)


class LinearReadout(Linear):
    """The network's last Linear, unit-scaled as a readout (linear_readout): no constraint by default."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device=None,
        dtype=None,
        constraint: str | None = None,
    ):
        super().__init__(in_features, out_features, bias, device, dtype, constraint)

    def forward(self, input: Tensor) -> Tensor:
        return linear_readout(input, self.weight, self.bias, self.constraint)


__all__ = [
    "CONSTRAINTS",
    "GELU",
    "Conv1d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "Linear",
    "LinearReadout",
    "RMSNorm",
    "SiLU",
    "Softmax",
    "constrain",
    "conv1d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "gelu_glu",
    "layer_norm",
    "linear",
    "linear_readout",
    "matmul",
    "mse_loss",
    "relu_glu",
    "residual_add",
    "residual_split",
    "rms_norm",
    "scale_bwd",
    "scale_fwd",
    "scaled_dot_product_attention",
    "sigmoid_glu",
    "silu",
    "silu_glu",
    "softmax",
]

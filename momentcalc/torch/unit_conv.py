"""Unit-scaled 1D convolution with unit-scaling 0.3.5's names and signatures (re-exported by momentcalc.torch.unit).

    y = U.conv1d(x, w, stride=2, padding=3)   # x (batch, channels, length), w with unit-variance entries
    conv = U.Conv1d(64, 128, kernel_size=7, padding=3)

No activation enters a convolution's scales: they are closed forms, counts of the unit-variance products summed.
Call T the number of (output position, kernel tap) pairs whose tap reads the input rather than the zero padding.
An output entry sums fan_in = in_channels / groups products per such tap, so the mean square of the output over
all its positions is fan_in T / out; an input entry's gradient sums out_channels / groups products per pair that
reads it, mean square (out_channels / groups) T / length over all input positions; a weight tap's gradient sums
batch products per output that the tap reads from the input, batch T / kernel on average over the taps; the bias
gets batch * out. unit-scaling takes T = out * kernel and length = stride * out, true of interior positions only:
with padding, or a length that the stride leaves a remainder of, its output or input gradient is not at unit scale
over the tensor (kernel 7, padding 3 on a length of 16: T = 100, not 112, an output RMS of 0.945; kernel 3,
stride 2 on 16: an input gradient RMS of 0.935). Here T is counted, so both mean squares are 1 exactly for
unit-variance input, weights and output gradient.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .. import convshape
from ..errors import MomentcalcError
from . import checks
from .unit_base import constrain, scale_bwd, scale_fwd


def taps_read(length: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """T: the (output position, tap) pairs of a 1D window whose tap reads one of the `length` inputs, not padding.

    Tap t of output o reads padded position o stride + t dilation, input index i = o stride + t dilation - padding;
    for each tap the outputs with 0 <= i < length are a run of consecutive o. O(kernel) integer steps.
    """
    out = convshape.output_size(length, kernel, stride, padding, dilation)  # refuses a kernel that does not fit
    total = 0
    for t in range(kernel):
        shift = t * dilation - padding  # i = o stride + shift
        first = max(0, -(shift // stride))  # the least o with o stride + shift >= 0: ceil(-shift / stride)
        last = min(out - 1, (length - 1 - shift) // stride)  # the largest o with i <= length - 1
        total += max(0, last - first + 1)
    return total


def _whole(name: str, value, least: int) -> int:
    """A whole number (padding too: no "same" or "valid", as in unit-scaling), or nn.Conv1d's 1-tuple of one."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return checks.whole(name, value, least)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    constraint: str | None = "to_output_scale",
    scale_power: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> Tensor:
    """Unit-scaled F.conv1d for unit-variance weights: output, input gradient and weight gradient at unit mean square
    over the whole tensor, padding and edges included (the counts of the module docstring)."""
    stride, padding = _whole("stride", stride, 1), _whole("padding", padding, 0)
    dilation, groups = _whole("dilation", dilation, 1), _whole("groups", groups, 1)
    if checks.tensor("input", input).dim() not in (2, 3) or weight.dim() != 3:
        raise MomentcalcError(
            f"conv1d takes (batch, channels, length) or (channels, length) input and a (out, in / groups, kernel) "
            f"weight, not {list(input.shape)} and {list(weight.shape)}"
        )
    out_channels, fan_in, kernel = weight.shape
    if out_channels % groups or input.shape[-2] != fan_in * groups:
        raise MomentcalcError(
            f"conv1d with groups={groups}: the weight's {out_channels} output channels must be a multiple of groups "
            f"and the input's {input.shape[-2]} channels groups * {fan_in} (the weight's second dimension)"
        )
    length = input.shape[-1]
    count = taps_read(length, kernel, stride, padding, dilation)
    if count == 0:
        raise MomentcalcError(
            f"conv1d: with stride {stride} and padding {padding} no tap of the kernel reads the {length} inputs: every "
            f"output is padding; use less padding or a smaller stride"
        )
    out = convshape.output_size(length, kernel, stride, padding, dilation)
    batch = input.numel() // (input.shape[-2] * length)
    forward, input_scale = constrain(
        constraint,
        (fan_in * count / out) ** -scale_power[0],
        (out_channels // groups * count / length) ** -scale_power[1],
    )
    weight = scale_bwd(weight, (batch * count / kernel) ** -scale_power[2])
    bias = None if bias is None else scale_bwd(bias, (batch * out) ** -scale_power[2])
    output = F.conv1d(scale_bwd(input, input_scale), weight, bias, stride, padding, dilation, groups)
    return scale_fwd(output, forward)


class Conv1d(nn.Conv1d):
    """nn.Conv1d with unit-variance weights (bias False by default, as unit-scaling), unit-scaled; padding a whole
    number. A padding_mode other than "zeros" pads with input values first, so that every tap reads the input."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        constraint: str | None = "to_output_scale",
    ):
        for name, value, least in (("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            _whole(name, value, least)  # refused here, not at the first forward pass
        constrain(constraint, 1.0, 1.0)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        )
        self.constraint = constraint

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        padding = self.padding[0]
        if self.padding_mode != "zeros":
            # as nn.Conv1d does: the padded input is convolved without further padding (unit-scaling's Conv1d
            # passes its padding again here, padding twice)
            input, padding = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode), 0
        return conv1d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups, self.constraint)


__all__ = ["Conv1d", "conv1d", "taps_read"]

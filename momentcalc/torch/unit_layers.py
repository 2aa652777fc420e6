"""Unit-scaled norms, embedding and cross entropy with unit-scaling 0.3.5's names and signatures (re-exported by
momentcalc.torch.unit), their scales exact (momentcalc.torch.unit_scales).

    y = U.layer_norm(x, (256,))          # forward 1 / std, input gradient by sqrt((d - 3) / (d - 2))
    y = U.rms_norm(x, (256,), weight)    # the gain's gradient by (d / numel)^(1/2), as unit-scaling
    loss = U.cross_entropy(logits, target, mult=2.0)  # logits' gradient at unit RMS for this vocab and mult
    loss = U.mse_loss(prediction, target)  # both gradients by 8^-1/2, a closed form (as unit-scaling)

unit-scaling leaves a norm's output and input gradient unscaled: at large d both are near 1, but the backward
constant of layernorm over d entries is (d - 2) / (d - 3) (rmsnorm's (d - 1) / (d - 2)), 1.6 % at d = 64 and 50 %
(layernorm) at d = 5. Here both scales come from ops/norms.py, with `constraint` as the other ops have it (None by
default: with the forward scale exactly 1, "to_output_scale" is unit-scaling's plain norm).

The exact methods give the norms at eps = 0 only, so an eps > 0 is accepted where it cannot move the constants by
more than EPS_TOL (eps_shift), and the scales are those of eps = 0. The bound, for unit-variance input: with
Q = |c|^2 ~ chi^2_k (k = d - 1 for layernorm, d for rmsnorm) and r = Q / (Q + d eps), a row's E[y^2] is E[r] >=
1 - d eps / (k - 2); the squared Jacobian column is A r - B r^2 + (B / 2) r^3 (ops/norms.py's sample formula,
A = k / Q, 0 <= B / 2 <= A), which lies within 3 (1 - r) A of its eps = 0 value, so the backward constant moves by
at most 3 d eps k / ((k - 1) (k - 4)) of itself (E[1 / Q^2] = 1 / ((k - 2)(k - 4))): infinite for k <= 4, where
only eps = 0 is given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MomentcalcError
from . import checks, unit_scales
from .unit_base import constrain, scale_bwd, scale_fwd

EPS_TOL = 1e-3  # the most, relative, that eps may move E[y^2] or the backward constant from their eps = 0 values


def _trailing(input: Tensor, normalized_shape) -> tuple[int, ...]:
    """normalized_shape as a tuple, if it is the input's trailing dimensions."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(input.shape[-len(shape) :]) != shape:
        raise MomentcalcError(
            f"normalized_shape {list(shape)} must be the input's trailing dimensions, the input is {list(input.shape)}"
        )
    return shape


def eps_shift(name: str, d: int, eps: float) -> float:
    """A bound on how far eps moves a norm's E[y^2] and backward constant from their eps = 0 values, relative."""
    k = d - 1 if name == "layer_norm" else d  # the degrees of freedom of |c|^2
    if eps == 0.0:
        return 0.0
    if k <= 4:
        return math.inf  # E[1 / Q^2] is infinite: eps moves the backward constant more than linearly
    return 3 * d * eps * k / ((k - 1) * (k - 4))  # above d eps / (k - 2), E[y^2]'s, for every k > 4


def _eps(name: str, d: int, eps) -> float:
    x = checks.real("eps", eps)
    if x < 0:
        raise MomentcalcError(f"eps must be >= 0, not {eps!r}")
    if eps_shift(name, d, x) > EPS_TOL:
        raise MomentcalcError(
            f"{name} over {d} entries with eps={eps!r}: the exact scales are those of eps = 0, which this eps could "
            f"move by more than {EPS_TOL:g}; use a smaller eps (0 always works)"
        )
    return x


def _norm(name, fn, input: Tensor, normalized_shape, params, eps, constraint) -> Tensor:
    """fn(scaled input, normalized_shape, *params, eps), each parameter's gradient by (d / numel)^(1/2)."""
    shape = _trailing(checks.tensor("input", input), normalized_shape)
    d = math.prod(shape)
    forward, backward = constrain(constraint, *_scales(name, d))
    # a gain or bias receives the sum of numel / d unit-variance products: unit-scaling's algebra
    param_scale = (d / input.numel()) ** 0.5
    params = [None if p is None else scale_bwd(p, param_scale) for p in params]
    return scale_fwd(fn(scale_bwd(input, backward), shape, *params, eps=_eps(name, d, eps)), forward)


def _scales(name: str, d: int) -> tuple[float, float]:
    s = unit_scales.norm(name, d)
    return s.forward, s.backward[0]


def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    constraint: str | None = None,
) -> Tensor:
    """Unit-scaled F.layer_norm: output and input gradient scaled by layernorm(d)'s exact constants."""
    return _norm("layer_norm", F.layer_norm, input, normalized_shape, (weight, bias), eps, constraint)


def rms_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    eps: float = 1e-5,
    constraint: str | None = None,
) -> Tensor:
    """Unit-scaled x / sqrt(mean(x^2) + eps) * weight: scaled by rmsnorm(d)'s exact constants."""
    return _norm("rms_norm", F.rms_norm, input, normalized_shape, (weight,), eps, constraint)


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """F.embedding with the table's gradient by (vocab / tokens)^(1/2): a row receives Binomial(tokens, 1/vocab)
    unit-variance gradients for uniform tokens, tokens / vocab in mean square (unit-scaling's rule, exact)."""
    if scale_grad_by_freq or sparse:
        raise MomentcalcError("embedding: scale_grad_by_freq and sparse are not supported (as in unit-scaling)")
    weight = scale_bwd(weight, (weight.shape[0] / checks.tensor("input", input).numel()) ** 0.5)
    return F.embedding(input, weight, padding_idx, max_norm, norm_type)


REDUCTIONS = ("mean", "sum")


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    mult: float = 1.0,
) -> Tensor:
    """Unit-scaled cross entropy of softmax(mult x) over the last of (batch, vocab) logits: the logits' gradient at
    unit RMS (exact for N(0, 1) logits and this vocab, mult and label_smoothing), the loss a mean by scale_fwd."""
    if weight is not None or size_average is not None or reduce is not None:
        raise MomentcalcError("cross_entropy: weight, size_average and reduce are not supported (as in unit-scaling)")
    if reduction not in REDUCTIONS:
        raise MomentcalcError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
    if checks.tensor("input", input).dim() not in (1, 2):
        raise MomentcalcError(f"cross_entropy's input is (vocab,) or (batch, vocab) logits, not {list(input.shape)}")
    batch, vocab = (1, input.shape[0]) if input.dim() == 1 else input.shape
    scales = unit_scales.cross_entropy(vocab, mult, label_smoothing)
    logits = scale_fwd(scale_bwd(input, scales.backward[0]), mult)
    loss = F.cross_entropy(logits, target, None, None, ignore_index, None, "sum", label_smoothing)
    return scale_fwd(loss, 1.0 / batch) if reduction == "mean" else loss


# The gradient of the summed squared error in input (and in target) is 2 (input - target) (its negative): for
# independent unit-variance input and target its mean square is 4 E[(X - T)^2] = 8, a closed form (unit-scaling's
# 8^-1/2). Against a constant target (T = 0) it would be 4: the scale assumes a target of unit scale too.
MSE_GRAD_SCALE = 8**-0.5


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Unit-scaled F.mse_loss: input's and target's gradients by 8^-1/2 (unit mean square for independent
    unit-variance input and target), the loss a sum, divided by the number of entries for "mean" by scale_fwd."""
    if size_average is not None or reduce is not None:
        raise MomentcalcError("mse_loss: size_average and reduce are not supported; use reduction='mean' or 'sum'")
    if reduction not in REDUCTIONS:
        raise MomentcalcError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
    if checks.tensor("input", input).shape != checks.tensor("target", target).shape:
        raise MomentcalcError(
            f"mse_loss needs input and target of one shape (as unit-scaling's), not {list(input.shape)} and "
            f"{list(target.shape)}"
        )
    loss = F.mse_loss(scale_bwd(input, MSE_GRAD_SCALE), scale_bwd(target, MSE_GRAD_SCALE), reduction="sum")
    return scale_fwd(loss, 1.0 / input.numel()) if reduction == "mean" else loss


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm, unit-scaled (elementwise_affine False by default, as unit-scaling)."""

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        constraint: str | None = None,
    ):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)
        _check_norm("layer_norm", self.normalized_shape, eps, constraint)
        self.constraint = constraint

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps, self.constraint)


class RMSNorm(nn.Module):
    """Unit-scaled RMS normalization over trailing dimensions (Zhang & Sennrich 2019), gain off by default."""

    def __init__(
        self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = False, constraint: str | None = None
    ):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        _check_norm("rms_norm", self.normalized_shape, eps, constraint)
        self.eps, self.constraint = eps, constraint
        self.weight = nn.Parameter(torch.ones(self.normalized_shape)) if elementwise_affine else None

    def forward(self, input: Tensor) -> Tensor:
        return rms_norm(input, self.normalized_shape, self.weight, self.eps, self.constraint)


def _check_norm(name: str, shape, eps, constraint) -> None:
    """Refuses a bad size, eps or constraint at construction rather than at the first forward pass."""
    unit_scales.norm(name, math.prod(shape))
    _eps(name, math.prod(shape), eps)
    constrain(constraint, 1.0, 1.0)


class Embedding(nn.Embedding):
    """nn.Embedding (N(0, 1) rows: unit-scale output), its table's gradient unit-scaled."""

    def forward(self, input: Tensor) -> Tensor:
        return embedding(
            input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
        )


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """nn.CrossEntropyLoss, unit-scaled, with unit-scaling's mult (a temperature 1 / mult on the logits)."""

    def __init__(
        self,
        mult: float = 1.0,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        unit_scales.cross_entropy_params(mult, label_smoothing)  # a bad one is refused here
        if weight is not None or size_average is not None or reduce is not None or reduction not in REDUCTIONS:
            raise MomentcalcError("CrossEntropyLoss: no weight, size_average or reduce; reduction 'mean' or 'sum'")
        self.mult = mult

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            mult=self.mult,
        )


__all__ = [
    "CrossEntropyLoss",
    "Embedding",
    "LayerNorm",
    "RMSNorm",
    "cross_entropy",
    "embedding",
    "layer_norm",
    "mse_loss",
    "rms_norm",
]

"""Normalization Propagation (Arpit et al. 2016) as torch modules, with exact constants.

Every module maps an input whose components are N(mu, sigma^2) (N(0, 1) by default: what the
module before it puts out) to an output with mean 0 and std 1, with no batch statistics:

- NormPropLinear / NormPropConv2d: each output unit's weights are divided by their l2 norm
  (W_i / ||W_i||), so unit-variance, uncorrelated inputs give unit-variance outputs; then an
  optional learnable scale (init 1) and bias (init 0), per output unit, as in the paper.
- NormPropActivation(spec): (f(x) - mean) / std for any chain of elementwise ops.
- NormPropMaxPool2d / NormPropAvgPool2d: the pool, then the constants of the pipeline that feeds
  it (``after='relu | normalize'`` gives those of 'relu | normalize | maxpool(k=3)').
- NormPropDropout(keep, scale): keep is the KEEP probability, as in momentcalc's dropout(p=...);
  torch's nn.Dropout(p) takes the drop probability, so the keyword p= is refused here (a torch
  user's p=0.2 would otherwise silently keep 20%).

They are ordinary modules: no closure in their state (an activation keeps a functional.Chain, which
pickles as its spec), so a model holding them pickles and torch.saves; no shape arithmetic on tensors
in forward, so torch.fx and torch.export trace them; a bad argument is one MomentcalcError (checks.py).

The constants come from the packaged table or momentcalc's exact methods (moments.moments) and are
those of an interior window: border windows of a padded pool (and border outputs of a zero-padded
conv) see fewer inputs and have other moments (`momentcalc estimate SPEC --size N` maps them;
padding_mode='circular' has no border).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MomentcalcError
from . import checks
from .functional import compile_chain
from .moments import LayerMoments, moments


class _Normalized(nn.Module):
    """Shared by the modules that normalize with constants: (y - mean) / std, and how they print."""

    constants: LayerMoments

    def _set_constants(self, spec: str, mu: float, sigma: float) -> None:
        self.constants = moments(spec, mu, sigma)
        self.mean, self.std = self.constants.mean, self.constants.std
        self.inv_std = 1.0 / self.constants.std

    def _normalize(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean) * self.inv_std

    def extra_repr(self) -> str:
        c = self.constants
        at = "" if (c.mu, c.sigma) == (0.0, 1.0) else f" at N({c.mu:g}, {c.sigma:g}^2)"
        return f"spec='{c.spec}'{at}, mean={c.mean:.10g}, std={c.std:.10g}"


def _pipeline(after: str | None, last: str) -> str:
    return last if after is None else f"{checks.text('after', after)} | {last}"


class NormPropActivation(_Normalized):
    """(f(x) - mean) / std for an elementwise spec such as 'relu', 'gelu' or 'tanh | normalize | relu'."""

    def __init__(self, spec: str = "relu", mu: float = 0.0, sigma: float = 1.0):
        super().__init__()
        self.fn = compile_chain(checks.text("spec", spec), mu, sigma)  # a Chain: pickles as its spec
        self._set_constants(spec, mu, sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(self.fn(x))


def _unit_rows(weight: torch.Tensor) -> torch.Tensor:
    """Each output unit's weights (dimension 0) divided by their l2 norm."""
    return F.normalize(weight.flatten(1), dim=1).view_as(weight)


def _scale_and_bias(y: torch.Tensor, scale, bias, channel_dims: int) -> torch.Tensor:
    """y * scale + bias per output unit, whose dimension is the channel_dims-th from the end (1: linear; 3: a
    conv's (N,) C, H, W). No shape arithmetic on y: torch.fx and torch.export trace it symbolically."""
    trailing = (None,) * (channel_dims - 1)
    if scale is not None:
        y = y * scale[(..., *trailing)]
    if bias is not None:
        y = y + bias[(..., *trailing)]
    return y


def _layer_sizes(kind: str, fan_in: int, fan_out: int, bias, scale) -> None:
    checks.whole(f"{kind}'s in size", fan_in, 1)
    checks.whole(f"{kind}'s out size", fan_out, 1)
    checks.flag("bias", bias)
    checks.flag("scale", scale)


def _torch_refusal(kind: str, why: Exception) -> MomentcalcError:
    first = (str(why).strip().splitlines() or [type(why).__name__])[0]
    return MomentcalcError(f"{kind}: {first}")


class NormPropLinear(nn.Linear):
    """nn.Linear with unit-norm weight rows, an optional learnable scale (init 1) and bias (init 0)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, scale: bool = True, **kw):
        _layer_sizes("NormPropLinear", in_features, out_features, bias, scale)
        try:
            super().__init__(in_features, out_features, bias=bias, **kw)
        except (TypeError, ValueError, RuntimeError) as why:  # torch's own checks of device=, dtype=
            raise _torch_refusal("NormPropLinear", why) from None
        self.scale = nn.Parameter(torch.ones(out_features, **kw)) if scale else None
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scale_and_bias(F.linear(x, _unit_rows(self.weight)), self.scale, self.bias, 1)


class NormPropConv2d(nn.Conv2d):
    """nn.Conv2d (same arguments) whose filters have unit l2 norm over their fan-in; optional scale and bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *args, bias: bool = True, scale=True, **kw):
        _layer_sizes("NormPropConv2d", in_channels, out_channels, bias, scale)
        checks.pair("kernel_size", kernel_size, 1)
        try:
            super().__init__(in_channels, out_channels, kernel_size, *args, bias=bias, **kw)
        except (TypeError, ValueError, RuntimeError) as why:  # torch's checks of stride, padding, groups, ...
            raise _torch_refusal("NormPropConv2d", why) from None
        checks.pair("stride", self.stride, 1)
        checks.pair("dilation", self.dilation, 1)
        if not isinstance(self.padding, str):
            checks.pair("padding", self.padding, 0)
        factory = {k: v for k, v in kw.items() if k in ("device", "dtype")}
        self.scale = nn.Parameter(torch.ones(out_channels, **factory)) if scale else None
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scale_and_bias(self._conv_forward(x, _unit_rows(self.weight), None), self.scale, self.bias, 3)


def _window_spec(reduction: str, kernel_size, stride, padding, dilation=1) -> str:
    """The spec of the pool's window; refuses what torch would refuse only at the first forward pass."""
    kh, kw = checks.pair("kernel_size", kernel_size, 1)
    if stride is not None:
        checks.pair("stride", stride, 1)
    dh, dw = checks.pair("dilation", dilation, 1)
    ph, pw = checks.pair("padding", padding, 0)
    if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
        raise MomentcalcError(f"padding must be at most half the kernel size, got padding={padding!r}")
    return f"{reduction}(k={kh})" if kh == kw else f"{reduction}(n={kh * kw})"


class NormPropMaxPool2d(_Normalized):
    """nn.MaxPool2d (kernel_size, stride, padding, dilation, ceil_mode as torch), then (y - mean) / std.

    after: the pipeline that produced the input from N(mu, sigma^2), e.g. 'relu | normalize'; None
    when the input itself is N(mu, sigma^2).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, after=None, mu=0.0, sigma=1.0):
        super().__init__()
        spec = _pipeline(after, _window_spec("maxpool", kernel_size, stride, padding, dilation))
        self.pool = nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=checks.flag("ceil_mode", ceil_mode))
        self._set_constants(spec, mu, sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(self.pool(x))


class NormPropAvgPool2d(_Normalized):
    """nn.AvgPool2d (kernel_size, stride, padding, ceil_mode, count_include_pad as torch), then (y - mean) / std."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        after=None,
        mu=0.0,
        sigma=1.0,
    ):
        super().__init__()
        spec = _pipeline(after, _window_spec("avgpool", kernel_size, stride, padding))
        checks.flag("ceil_mode", ceil_mode)
        checks.flag("count_include_pad", count_include_pad)
        self.pool = nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self._set_constants(spec, mu, sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(self.pool(x))


_DIVISORS = {"none": lambda keep: 1.0, "sqrt": lambda keep: keep**0.5, "inverse": lambda keep: keep}


def _keep_of(p) -> str:
    """1 - p as a person writes it: 0.2 for p=0.8, not the float subtraction's 0.19999999999999996."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        return "1 - p, with torch's p in [0, 1)"
    return repr(float(f"{1 - p:.15g}"))


class NormPropDropout(_Normalized):
    """Dropout that keeps each value with probability keep (dropout(p=keep, scale) of momentcalc), then
    (y - mean) / std.

    scale: 'sqrt' (kept values / sqrt(keep), the NormProp choice), 'inverse' (/ keep) or 'none'. In eval
    mode no value is dropped and the input is standardized with its own moments instead, so the
    output has mean 0 and std 1 in both modes. p= is refused: torch's p is the DROP probability.
    """

    def __init__(self, keep: float = 0.8, scale: str = "sqrt", after: str | None = None, mu=0.0, sigma=1.0, *, p=None):
        super().__init__()
        if p is not None:
            raise MomentcalcError(
                f"NormPropDropout takes keep= (the probability of keeping a value), not p=: torch's p is the drop "
                f"probability; for torch's nn.Dropout(p={p!r}) write NormPropDropout(keep={_keep_of(p)})"
            )
        keep = checks.real("keep", keep)
        if not 0 < keep <= 1:
            raise MomentcalcError(f"keep is the keep probability (of keeping a value), in (0, 1], got {keep!r}")
        if scale not in _DIVISORS:
            raise MomentcalcError(f"scale must be one of {', '.join(map(repr, _DIVISORS))}, got {scale!r}")
        self._set_constants(_pipeline(after, f"dropout(p={keep!r},scale={scale})"), mu, sigma)
        self.keep = keep
        self.divisor = _DIVISORS[scale](keep)
        fed = moments(after, mu, sigma) if after is not None else None
        self.in_mean = fed.mean if fed is not None else float(mu)
        self.in_inv_std = 1.0 / (fed.std if fed is not None else float(sigma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.in_mean) * self.in_inv_std
        # F.dropout divides kept values by keep; times keep / divisor gives the scale asked for.
        return self._normalize(F.dropout(x, 1.0 - self.keep, True) * (self.keep / self.divisor))

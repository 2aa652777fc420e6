"""EDM2's magnitude-preserving ops (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models", section 3, and its published networks_edm2.py), with the activation's constant exact for
any activation.

    from momentcalc.torch import mp
    y = mp.mp_silu(x)              # silu(x) / 0.596...: EDM2's constant, here 1 / sqrt(E[silu(X)^2]) exactly
    y = mp.mp_act(x, "gelu")       # any elementwise spec momentcalc runs in torch, e.g. "tanh", "swish(beta=2)"
    y = mp.mp_sum(a, b, t=0.3)     # lerp(a, b, t) / sqrt((1 - t)^2 + t^2)
    y = mp.mp_cat(a, b, dim=1, t=0.5)
    layer = mp.MPConv(64, 128, (3, 3))  # forced weight normalization: each output unit's weight of unit norm

EDM2 calls an op magnitude-preserving when it keeps the expected magnitude, the root mean square, of N(0, 1)
input: its 0.596 is sqrt(E[silu(X)^2]) = 0.59647 (silu's std is 0.5595), so mp_act divides by the RMS, taken
from momentcalc's exact methods (momentcalc.torch.calculate_gain, once per spec).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MomentcalcError
from . import checks
from .functional import Chain, compile_chain
from .gains import calculate_gain


@lru_cache(maxsize=64)
def _activation(spec: str) -> tuple[Chain, float]:
    return compile_chain(spec), calculate_gain(spec)


def act_gain(spec: str = "silu") -> float:
    """1 / sqrt(E[f(X)^2]) for X ~ N(0, 1): what mp_act multiplies f by (EDM2's 1 / 0.596 for silu)."""
    return _activation(checks.text("spec", spec))[1]


def mp_act(x: Tensor, spec: str = "silu") -> Tensor:
    """f(x) / sqrt(E[f(X)^2]): unit RMS output for N(0, 1) input, f any elementwise spec torch can run."""
    chain, gain = _activation(checks.text("spec", spec))
    return chain(checks.tensor("x", x)) * gain


def mp_silu(x: Tensor) -> Tensor:
    """EDM2's mp_silu, silu(x) / 0.596, with the exact RMS."""
    return mp_act(x, "silu")


def mp_gelu(x: Tensor) -> Tensor:
    """gelu(x) (erf form) at unit RMS for N(0, 1) input."""
    return mp_act(x, "gelu")


def _blend(t) -> float:
    t = checks.real("t", t)
    if not 0.0 <= t <= 1.0:
        raise MomentcalcError(f"t is the weight of the second input, in [0, 1], not {t!r}")
    return t


def mp_sum(a: Tensor, b: Tensor, t: float = 0.5) -> Tensor:
    """(1 - t) a + t b, divided by its RMS sqrt((1 - t)^2 + t^2) for independent unit-RMS a and b."""
    t = _blend(t)
    return checks.tensor("a", a).lerp(checks.tensor("b", b), t) / math.sqrt((1 - t) ** 2 + t * t)


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """cat([a, b], dim) with a's entries weighted (1 - t) and b's t in the sum of squares, unit RMS overall.

    With Na and Nb entries along dim, a is scaled by (1 - t) C / sqrt(Na) and b by t C / sqrt(Nb), C^2 =
    (Na + Nb) / ((1 - t)^2 + t^2): the two parts then carry (1 - t)^2 : t^2 of the squared norm, whatever their
    sizes, and the whole has unit RMS when a and b have.
    """
    t = _blend(t)
    na, nb = checks.tensor("a", a).shape[dim], checks.tensor("b", b).shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t * t))
    return torch.cat([a * ((1 - t) * c / math.sqrt(na)), b * (t * c / math.sqrt(nb))], dim=dim)


def normalize(weight: Tensor, eps: float = 1e-4) -> Tensor:
    """Each output unit's weight (a slice along dim 0) divided by its RMS plus eps: unit RMS, norm sqrt(fan_in).

    eps keeps a zero slice finite, as in EDM2; the norm is taken in float32 at least (bfloat16 weights).
    """
    dims = list(range(1, weight.dim()))
    dtype = torch.promote_types(weight.dtype, torch.float32)
    norm = torch.linalg.vector_norm(weight, dim=dims, keepdim=True, dtype=dtype)
    fan_in = weight[0].numel()
    return weight / (eps + norm / math.sqrt(fan_in)).to(weight.dtype)


class MPConv(nn.Module):
    """EDM2's MPConv: a linear map (kernel ()) or a 2-d convolution (kernel (k, k), 'same' padding) whose
    effective weight has unit norm per output unit, so N(0, 1) iid inputs give unit-variance outputs.

    Forced weight normalization: in training each forward pass first rescales the stored weight to unit RMS per
    output unit (in place, without gradient), then uses normalize(weight) / sqrt(fan_in) * gain, so the
    gradient stays orthogonal to the weight and the stored weight's norm cannot grow.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = ()):
        super().__init__()
        checks.whole("in_channels", in_channels, 1)
        checks.whole("out_channels", out_channels, 1)
        kernel = tuple(kernel)
        if len(kernel) not in (0, 2) or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in kernel):
            raise MomentcalcError(f"kernel is () for a linear map or (k, k) for a 2-d convolution, not {kernel!r}")
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def effective_weight(self, gain: float = 1.0) -> Tensor:
        """normalize(weight) * gain / sqrt(fan_in): each output unit's weight of norm gain."""
        w = normalize(self.weight)
        return w * (gain / math.sqrt(w[0].numel()))

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(self.weight))
        w = self.effective_weight(checks.real("gain", gain)).to(x.dtype)
        if w.dim() == 2:
            return F.linear(x, w)
        return F.conv2d(x, w, padding=(w.shape[-2] // 2, w.shape[-1] // 2))


class MPActivation(nn.Module):
    """mp_act as a module: f(x) / sqrt(E[f(X)^2]) for the spec (silu by default)."""

    def __init__(self, spec: str = "silu"):
        super().__init__()
        act_gain(spec)  # a spec torch cannot run, or one with no moments, is refused here
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        return mp_act(x, self.spec)

    def extra_repr(self) -> str:
        return repr(self.spec)


__all__ = [
    "MPActivation",
    "MPConv",
    "act_gain",
    "mp_act",
    "mp_cat",
    "mp_gelu",
    "mp_silu",
    "mp_sum",
    "normalize",
]

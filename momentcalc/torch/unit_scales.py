"""The scales of momentcalc.torch.unit's ops, from momentcalc's exact methods, once per distinct parameter value.

A unit-scaled op multiplies its output by a forward scale and the gradient reaching each input by a backward
scale, so that both have unit scale when the input is N(0, 1) and the output gradient has unit variance.
unit-scaling 0.3.5 (Blake et al. 2023) fits these scales; here they are the op's exact constants
(moments.moments: the packaged table where it holds the spec, else certified, closed form and quadrature, which
must agree), never interpolated. A value those methods cannot give raises MomentcalcError.

Conventions, as unit-scaling's own limits show them:
- gelu, silu, silu_glu, dropout: forward = 1 / std(y) (unit-scaling's gelu limit for large mult is
  sqrt(2 / (1 - 1/pi)), relu's 1 / std);
- softmax: forward = 1 / sqrt(E[y^2]) (its limits are n and sqrt(n): softmax's mean 1/n is not removed);
- layer_norm, rms_norm: forward = 1 / std(y) over one normalized vector of d iid N(0, 1) entries (exactly 1
  at eps = 0), backward = 1 / sqrt(E[sum_j J_j1^2]) (ops/norms.py); unit-scaling scales neither;
- cross_entropy: backward = 1 / RMS of softmax(mult x) - q over the logits, for N(0, 1) logits and a target
  class drawn independently of them (unit-scaling's vocab / sqrt(vocab - 1) is this RMS at uniform p);
- every backward scale is 1 / sqrt(E[f'(X)^2]), per input for a gated unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..errors import MomentcalcError
from . import checks
from .moments import LayerMoments, moments

STD, RMS = "std", "rms"

# torch.compile calls a lookup once while tracing and keeps its scales as constants of the graph: traced, the
# table's loading and the exact methods (files, numba, scipy) break the graph, and fullgraph=True fails
_constant = torch.compiler.assume_constant_result


@dataclass(frozen=True)
class UnitScales:
    """Forward scale of an op's output and backward scale of each input's gradient, with their origin."""

    spec: str  # the momentcalc spec whose constants they are
    sigma: float  # its input's std (gelu(mult x) / mult is gelu at N(0, mult^2))
    forward: float
    backward: tuple[float, ...]  # one per input, in the op's argument order
    convention: str  # STD or RMS: what the forward scale divides by
    method: str  # method of record (or the table) of the forward constant


def _positive(name: str, value, lo: float = 0.0, hi: float = math.inf) -> float:
    x = checks.real(name, value)
    if not lo < x <= hi:
        raise MomentcalcError(f"{name} must be in ({lo:g}, {hi:g}], not {value!r}")
    return x


def _grad_scale(m: LayerMoments, factor: float = 1.0) -> float:
    """1 / sqrt(factor * E[f'^2]); factor carries a chain-rule constant (gelu's mult)."""
    if m.grad_sq is None or not math.isfinite(m.grad_sq) or m.grad_sq <= 0:
        raise MomentcalcError(f"the exact methods give no positive E[f'(X)^2] for {m.spec!r}: no backward scale")
    return 1.0 / math.sqrt(factor * m.grad_sq)


@lru_cache(maxsize=256)
def _gelu(mult: float, approximate: str) -> UnitScales:
    spec = "gelu" if approximate == "none" else "gelu(approximate=tanh)"
    # y = gelu(mult x) / mult: with Z = mult X ~ N(0, mult^2), std(y) = std(gelu(Z)) / mult and
    # y'(x) = gelu'(Z), so E[y'^2] = E[gelu'(Z)^2]
    m = moments(spec, 0.0, mult)
    return UnitScales(spec, mult, mult / m.std, (_grad_scale(m),), STD, m.method)


@_constant
def gelu(mult: float = 1.0, approximate: str = "none") -> UnitScales:
    """Scales of gelu(mult x) / mult (unit-scaling's gelu)."""
    if approximate not in ("none", "tanh"):
        raise MomentcalcError(f"approximate must be 'none' or 'tanh', not {approximate!r}")
    return _gelu(_positive("mult", mult, hi=1e3), approximate)


@lru_cache(maxsize=256)
def _silu(mult: float) -> UnitScales:
    spec = f"swish(beta={mult!r})"
    m = moments(spec)
    return UnitScales(m.spec, 1.0, 1.0 / m.std, (_grad_scale(m),), STD, m.method)


@_constant
def silu(mult: float = 1.0) -> UnitScales:
    """Scales of x * sigmoid(mult x) (unit-scaling's silu)."""
    return _silu(_positive("mult", mult, hi=1e3))


@lru_cache(maxsize=256)
def _gated(name: str, params: str) -> UnitScales:
    sep = ", " if params else ""
    value = moments(f"{name}({params})")
    gate = moments(f"{name}({params}{sep}wrt=gate)")
    return UnitScales(value.spec, 1.0, 1.0 / value.std, (_grad_scale(value), _grad_scale(gate)), STD, value.method)


@_constant
def silu_glu(mult: float = 1.0) -> UnitScales:
    """Scales of input * gate * sigmoid(mult gate): forward, then (input's, gate's) backward."""
    return _gated("swiglu", f"beta={_positive('mult', mult, hi=1e3)!r}")


GATED = {"sigmoid": "glu", "gelu": "geglu", "relu": "reglu"}  # the gate function -> momentcalc's gated unit


@_constant
def gated(gate: str) -> UnitScales:
    """Scales of input * h(gate) for h sigmoid, gelu (erf form) or relu: forward, then (input's, gate's) backward."""
    if gate not in GATED:
        raise MomentcalcError(f"a gate is one of {', '.join(GATED)} (silu_glu has its own mult), not {gate!r}")
    return _gated(GATED[gate], "")


@lru_cache(maxsize=4096)
def softmax_moments(n: int, t: float) -> LayerMoments:
    """The exact moments of softmax(x / t) over n iid N(0, 1) logits, computed once per (n, t) in a process: unit
    softmax, cross entropy and attention (per attended-key count) share them."""
    return moments(f"softmax(n={n}, t={t!r})")


@lru_cache(maxsize=256)
def _softmax(n: int, mult: float) -> UnitScales:
    m = softmax_moments(n, 1.0 / mult)
    # the Jacobian of softmax(x / t) in x carries 1 / t = mult already (ops/softmax.py)
    return UnitScales(m.spec, 1.0, 1.0 / math.hypot(m.mean, m.std), (_grad_scale(m),), RMS, m.method)


@_constant
def softmax(n: int, mult: float = 1.0) -> UnitScales:
    """Scales of softmax(mult x) over n entries; forward by RMS (unit-scaling's convention for softmax)."""
    size = checks.whole("dim size", n, 1)
    return _softmax(size, _positive("mult", mult, 1e-3, 1e3))


@lru_cache(maxsize=256)
def _dropout(p: float) -> UnitScales:
    # torch's p drops; momentcalc's dropout(p) keeps with probability p, and torch divides kept values by it
    m = moments(f"dropout(p={1.0 - p!r}, scale=inverse)")
    # y = x r / (1 - p) with r independent of x: y' = r / (1 - p) and E[y'^2] = E[y^2] at E[x^2] = 1
    grad_sq = m.grad_sq if m.grad_sq is not None else m.second_moment
    return UnitScales(m.spec, 1.0, 1.0 / m.std, (1.0 / math.sqrt(grad_sq),), STD, m.method)


@_constant
def dropout(p: float = 0.5) -> UnitScales:
    """Scales of torch's (inverted) dropout with drop probability p in [0, 1)."""
    x = checks.real("p", p)
    if not 0.0 <= x < 1.0:
        raise MomentcalcError(f"p is dropout's drop probability, in [0, 1), not {p!r}")
    if x == 0.0:
        return UnitScales("identity", 1.0, 1.0, (1.0,), STD, "closed")
    return _dropout(x)


NORMS = {"layer_norm": "layernorm", "rms_norm": "rmsnorm"}


@lru_cache(maxsize=256)
def _norm(name: str, d: int) -> UnitScales:
    # eps = 0: the exact methods give the norms there only; eps's effect on the scales is bounded in unit_layers
    m = moments(f"{NORMS[name]}(d={d})")
    return UnitScales(m.spec, 1.0, 1.0 / m.std, (_grad_scale(m),), STD, m.method)


@_constant
def norm(name: str, d: int) -> UnitScales:
    """Scales of layer_norm or rms_norm over d normalized entries, at eps = 0 and unit-variance input."""
    if name not in NORMS:
        raise MomentcalcError(f"a norm is one of {', '.join(NORMS)}, not {name!r}")
    return _norm(name, checks.whole("normalized size", d, 1))


@lru_cache(maxsize=256)
def _cross_entropy(n: int, mult: float, smoothing: float) -> UnitScales:
    m = softmax_moments(n, 1.0 / mult)
    # the gradient of the summed loss in a row of logits is p - q, q = (1 - s) onehot(target) + s / n. With the
    # target independent of the logits, E[p_j] = 1 / n and sum_j q_j = 1: E|p - q|^2 = n E[p_1^2] - 2 / n + |q|^2
    q_sq = (1.0 - smoothing + smoothing / n) ** 2 + (n - 1) * (smoothing / n) ** 2
    mean_sq = (n * m.second_moment - 2.0 / n + q_sq) / n
    if not mean_sq > 0:
        raise MomentcalcError(f"cross_entropy over {n} classes has no gradient to scale")
    return UnitScales(m.spec, 1.0, 1.0, (1.0 / math.sqrt(mean_sq),), RMS, m.method)


def cross_entropy_params(mult: float, label_smoothing: float) -> tuple[float, float]:
    """(mult, label_smoothing) if they are in range."""
    smoothing = checks.real("label_smoothing", label_smoothing)
    if not 0.0 <= smoothing <= 1.0:
        raise MomentcalcError(f"label_smoothing must be in [0, 1], not {label_smoothing!r}")
    return _positive("mult", mult, 1e-3, 1e3), smoothing


@_constant
def cross_entropy(n: int, mult: float = 1.0, label_smoothing: float = 0.0) -> UnitScales:
    """Scales of the cross entropy of softmax(mult x) over n classes: forward 1, backward the logits' gradient's."""
    size = checks.whole("number of classes", n, 2)
    return _cross_entropy(size, *cross_entropy_params(mult, label_smoothing))

"""Backward variance maps: how much gradient variance reaches each input position.

For one 2-D layer on an I x I input and an upstream gradient of iid N(0, 1)
entries, the map gives Var[dL/dx] at every input position. The maps are exact
(counting arguments) and can be cross-checked by simulation with the numpy
reference in ``reference_conv``.

Exact maps, per layer:

- ``conv(k, s, p, cin, cout)`` with NormProp row-normalized random weights
  (each output filter has unit l2 norm over its cin*k*k fan-in, so by symmetry
  E[w^2] = 1/(cin*k*k) per tap): the input gradient is a sum of g * w terms,
  one per (output channel, output position, tap) that reads the position, and
  the cross terms vanish because the g's are independent with mean zero. So
  Var = cout * (number of (output position, tap) pairs touching it) / (cin*k*k).
- ``maxpool(k, s, p)``: padding is -inf, so a window's argmax is uniform over
  its m real inputs (m = k*k away from the border). A position gets
  sum over the windows covering it of 1/m.
- ``avgpool(k, s, p, count_include_pad)``: a window with divisor n passes
  g/n to each input, so a position gets sum over covering windows of 1/n^2,
  where n = k*k, or the window's number of real inputs when
  count_include_pad is false.

Every window is a product of one window per axis, and each of these sums
factors into (per-row sum) * (per-column sum), so the map is an outer product.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .convshape import conv_shape
from .errors import MomentcalcError

_KEYS = {
    "conv": ("k", "s", "p", "cin", "cout"),
    "maxpool": ("k", "s", "p"),
    "avgpool": ("k", "s", "p", "count_include_pad"),
}
_MIN_VALUE = {"k": 1, "s": 1, "p": 0, "cin": 1, "cout": 1}
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}
_LAYER_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$")


@dataclass(frozen=True)
class Layer:
    """One conv or pooling layer. s defaults to 1 for conv and to k for pools."""

    kind: str
    k: int
    s: int
    p: int = 0
    cin: int = 1
    cout: int = 1
    count_include_pad: bool = True

    @property
    def is_pool(self) -> bool:
        return self.kind != "conv"

    def __str__(self) -> str:
        parts = [f"k={self.k}", f"s={self.s}", f"p={self.p}"]
        if self.kind == "conv":
            parts += [f"cin={self.cin}", f"cout={self.cout}"]
        if self.kind == "avgpool" and not self.count_include_pad:
            parts.append("count_include_pad=false")
        return f"{self.kind}({','.join(parts)})"


def parse_layer(text: str) -> Layer:
    """Parse ``name(key=value,...)``, e.g. ``conv(k=3,s=2,p=1,cin=1,cout=1)``."""
    match = _LAYER_RE.match(text)
    if not match:
        raise MomentcalcError(f"cannot parse layer {text!r}; expected name(key=value,...), e.g. conv(k=3,s=2,p=1)")
    kind, body = match.group(1).lower(), match.group(2) or ""
    if kind not in _KEYS:
        raise MomentcalcError(f"unknown layer {kind!r}; accepted: {', '.join(_KEYS)}")
    values = _parse_arguments(kind, body)
    if "k" not in values:
        raise MomentcalcError(f"{kind} needs a kernel size k, e.g. {kind}(k=3)")
    values.setdefault("s", values["k"] if kind != "conv" else 1)
    return Layer(kind=kind, **values)


def _parse_arguments(kind: str, body: str) -> dict:
    values: dict = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, eq, raw = (piece.strip() for piece in item.partition("="))
        key = key.lower()
        if not eq or key not in _KEYS[kind]:
            raise MomentcalcError(f"bad argument {item!r} for {kind}; accepted keys: {', '.join(_KEYS[kind])} (as key=value)")
        if key in values:
            raise MomentcalcError(f"{key} given twice in {kind}(...)")
        values[key] = _parse_value(key, raw)
    return values


def _parse_value(key: str, raw: str):
    if key == "count_include_pad":
        if raw.lower() not in _BOOL_WORDS:
            raise MomentcalcError(f"count_include_pad must be true or false, got {raw!r}")
        return _BOOL_WORDS[raw.lower()]
    lowest = _MIN_VALUE[key]
    if not re.fullmatch(r"[+-]?\d+", raw) or int(raw) < lowest:
        raise MomentcalcError(f"{key} must be an integer >= {lowest}, got {raw!r}")
    return int(raw)


def _as_layer(layer: Layer | str) -> Layer:
    return parse_layer(layer) if isinstance(layer, str) else layer


def output_size(layer: Layer, size: int) -> int:
    """Output side of the layer on a size x size input; raises for impossible shapes."""
    return conv_shape(size, layer.k, layer.s, layer.p, pool=layer.is_pool).output


def _axis_weights(layer: Layer, size: int) -> np.ndarray:
    """Per-axis factor of the exact map (see the module docstring)."""
    weights = np.zeros(size)
    for o in range(output_size(layer, size)):
        start = o * layer.s - layer.p
        real = [u for u in range(start, start + layer.k) if 0 <= u < size]
        if layer.kind == "conv":
            share = 1.0
        elif layer.kind == "maxpool":
            share = 1.0 / len(real)
        else:
            divisor = layer.k * layer.k if layer.count_include_pad else len(real)
            share = 1.0 / divisor**2
        weights[real] += share
    return weights


def exact_map(layer: Layer | str, size: int) -> np.ndarray:
    """Exact size x size map of Var[input gradient] for iid N(0, 1) upstream gradient."""
    layer = _as_layer(layer)
    axis = _axis_weights(layer, size)
    if layer.kind == "maxpool" or layer.count_include_pad is False:
        # these per-axis factors are already sqrt-free: 1/m = 1/(m_r m_c) factorizes
        return np.outer(axis, axis)
    if layer.kind == "avgpool":
        # count_include_pad: 1/k^4 per window = (1/k^2 per row)(1/k^2 per column)
        return np.outer(axis, axis) * (layer.k * layer.k) ** 2 / layer.k**4 / (layer.k * layer.k) ** 2 * layer.k**4
    return np.outer(axis, axis) * layer.cout / (layer.cin * layer.k * layer.k)

"""Correlated windows: avgpool(k1, s1 < k1) | f | avgpool(k2), exact through the certified correlation map K(c)
of a piecewise polynomial f."""

from __future__ import annotations

import itertools
import math

from .. import catalog
from .._lazy import lazy_module
from ..estimators import NotApplicable
from ..ops import pooling
from ..spec import Spec
from .exact import most_exact
from .geometry import Layer

certified_kernel = lazy_module("momentcalc.estimators.certified_kernel")  # python-flint: correlated windows only


def correlated_windows(spec: Spec, layers: list[Layer], r: int | None, mu: float, sigma: float):
    """avgpool(k1, s1 < k1) | f | avgpool(k2), no padding: exact through the correlation map of f.

    The first averages W_u are N(mu, sigma^2 / n1), jointly normal, with correlation the overlap of their windows,
    prod over axes of max(0, k1 - |u - v| s1) / k1; the last window averages f(W_u) over its n2 positions, so
    Var = sum_{u, v} Cov(f(W_u), f(W_v)) / n2^2 with Cov = K(c_uv) - E[f(W)]^2, K certified by ball arithmetic
    (estimators.certified_kernel; f piecewise polynomial). None where the spec is not of this form."""
    if len(layers) != 2 or len(spec.ops) != 3:
        return None
    first, last = layers
    f_op = spec.ops[1]
    if not (
        first.depth == 0
        and last.depth == 2
        and first.op.info.reduction == last.op.info.reduction == pooling.MEAN
        and first.p == 0
        and last.p == 0
        and f_op.kind == catalog.ELEMENTWISE
        and f_op.info.piece_degree is not None
        and r == last.op.window_size
    ):
        return None
    dims = first.op.get("dims")
    n1, n2 = first.op.window_size, last.op.window_size
    s_w = sigma / math.sqrt(n1)
    try:
        mean, std, mean_err, std_err, method = most_exact(Spec((f_op,)), mu, s_w)
        offsets = list(itertools.product(range(last.k), repeat=dims))
        counts: dict[float, int] = {}
        for u, v in itertools.product(offsets, repeat=2):
            c = math.prod(max(0, first.k - abs(a - b) * first.s) / first.k for a, b in zip(u, v))
            counts[c] = counts.get(c, 0) + 1
        cov, err = 0.0, 0.0
        for c, count in counts.items():
            if c == 1.0:  # the same position: Var f(W)
                cov += count * std * std
                err += count * 2 * std * std_err
                continue
            k = certified_kernel.certify(f_op, c, mu, s_w)
            cov += count * (k.value - mean * mean)
            # c is the double nearest the overlap fraction (2/3 is not a double): |dK/dc| = s_w^2 |E[f' f']| <=
            # (s_w d)^2 (Price's theorem, |f'| <= d) times half an ulp of c
            slope = (s_w * f_op.info.growth(*f_op.info.args(f_op))[2]) ** 2
            err += count * ((k.hi - k.lo) / 2 + math.ulp(k.value) + 2 * abs(mean) * mean_err + slope * math.ulp(c))
    except NotApplicable as why:
        return str(why)
    var = cov / (n2 * n2)
    if not var > 0:
        return None
    out_std = math.sqrt(var)
    out_std_err = err / (n2 * n2) / (2 * out_std) + 4 * math.ulp(out_std)
    what = f"{spec} (correlated windows: the certified correlation map K(c) of {f_op})"
    return mean, out_std, mean_err, out_std_err, f"{method} + certified K(c)", what

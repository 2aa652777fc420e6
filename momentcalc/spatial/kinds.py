"""Exact values per kind of output position: the spec a border window with r real inputs computes, the
scaled moments of a border average, trailing normalize ops, or the correlated-window pipeline."""

from __future__ import annotations

from .. import catalog
from ..estimators import NotApplicable
from ..ops import pooling
from ..spec import Op, Spec
from .correlated import correlated_windows
from .exact import most_exact
from .geometry import Layer


def exact_for(spec: Spec, layers: list[Layer], r: int | None, mu: float, sigma: float):
    """(mean, std, mean error, std error, method, what) of a kind with r real inputs, or a str saying why none."""
    if not layers:
        return (*most_exact(spec, mu, sigma), str(spec))
    if any(layer.s < layer.k or layer.p > 0 for layer in layers[:-1]):
        correlated = correlated_windows(spec, layers, r, mu, sigma)
        if correlated is not None:
            return correlated
        return "an earlier window op overlaps or pads, so the last one sees correlated or unequal inputs"
    last = layers[-1]
    # Trailing normalize ops are affine maps with the interior constants: apply them to the moments.
    end = len(spec.ops)
    while end > last.depth + 1 and spec.ops[end - 1].kind == catalog.NORMALIZE:
        end -= 1
    prefix, suffix = spec.ops[: last.depth], spec.ops[last.depth + 1 : end]
    if any(op.kind == catalog.NORMALIZE for op in suffix):
        return "a normalize between ops after the last window op: it uses the interior constants"
    n = last.op.window_size
    scaled = last.op.info.reduction == pooling.MEAN and last.op.get("count_include_pad") and r < n
    if scaled and suffix:
        return f"ops after a border average (a sum of {r} over {n}) have no exact method here"
    try:
        kind_spec = Spec(prefix + (Op(last.op.name, (("n", r),)),) + suffix)
        mean, std, mean_err, std_err, method = most_exact(kind_spec, mu, sigma)
        what = str(kind_spec)
        if scaled:  # the sum of r real inputs over n, not over r
            mean, std, mean_err, std_err = (v * r / n for v in (mean, std, mean_err, std_err))
            what += f", times {r}/{n}"
        for depth in range(end, len(spec.ops)):
            m0, s0, m0_err, s0_err, _ = most_exact(Spec(spec.ops[:depth]), mu, sigma)
            mean, mean_err = (mean - m0) / s0, (mean_err + m0_err) / s0 + abs(mean - m0) * s0_err / s0**2
            std, std_err = std / s0, std_err / s0 + std * s0_err / s0**2
            what += " | normalize (interior constants)"
        return mean, std, mean_err, std_err, method, what
    except NotApplicable as why:
        return str(why)

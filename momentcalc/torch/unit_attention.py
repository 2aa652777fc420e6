"""Unit-scaled scaled_dot_product_attention (unit-scaling 0.3.5's signature), its scales exact per attended-key count.

    y = U.scaled_dot_product_attention(q, k, v, is_causal=True, mult=1.0)

The plain function is torch's attention with unit-scaling's logit scale, softmax(mult q k^T / d) v, d the head
size. Its scales come from momentcalc's softmax(n, t) (ops/softmax.py: exact E[p^2] and backward constant
E[sum_k J_k1^2]) for the number n of keys each query row attends to; a causal row i attends to i + 1 keys, so
the output and the query gradient get one scale per row and the key and value gradients one per key position.
unit-scaling instead takes one scale for all rows and all three inputs from a fit.

Assumptions (at initialization, as unit scaling's): q, k, v and the output gradient g have independent unit-
variance entries, independent of each other; the logits x = q k^T / sqrt(d) of one row are iid N(0, 1) (exact
for Gaussian keys and a query of norm sqrt(d); a Gaussian query's norm varies by sqrt(2 / d) relative), so
softmax(mult q k^T / d) = softmax(x / t) with t = sqrt(d) / mult. Then, with m2(n) = E[p_1^2] and g(n) the
backward constant of softmax(n, t), and 1 - p the dropout keep rate:
- output row i: Var = n_i m2(n_i) / (1 - p) (a weighted sum of unit values, weights independent of them);
- value j: Var of (P^T g)_j = sum over rows i attending j of m2(n_i) / (1 - p);
- query i: Var = n_i d_v g(n_i) / (d (1 - p)) (the logit gradient J^T (g v^T) has variance d_v g per logit);
- key j: Var = d_v sum over rows i attending j of g(n_i) / (d (1 - p)).
Each scale is 1 / sqrt of its variance. A query row that attends to one key has no gradient (softmax over one
key is the constant 1) and a key no row attends to none; both keep scale 1. The query-gradient formula neglects
the dependence of a logit's gradient on its own key, a relative O(1 / d) term that vanishes for near-uniform
attention (t large).

With position_covariance (positions.PositionCovariance: the covariance of q, k, v across positions, and of the
output gradient), the scales are instead those of correlated positions (positions.attention_covariances: the
mean attention weights 1 / n_i with each row's exact spread); without it, positions are independent as above.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import MomentcalcError
from . import checks, positions, unit_scales


@lru_cache(maxsize=4096)
def softmax_law(n: int, t: float) -> tuple[float, float]:
    """(E[p_1^2], backward constant) of softmax(x / t) over n iid N(0, 1) logits, by momentcalc's exact methods."""
    if n == 1:
        return 1.0, 0.0  # softmax over one logit is the constant 1: no spread, no gradient
    with warnings.catch_warnings():  # scipy's quad warnings: the exact methods must agree, or moments refuses
        warnings.simplefilter("ignore")
        m = unit_scales.softmax_moments(n, t)
    if m.grad_sq is None or not math.isfinite(m.grad_sq) or m.grad_sq <= 0:
        raise MomentcalcError(f"the exact methods give no backward constant for softmax(n={n}, t={t!r})")
    return m.second_moment, m.grad_sq


def temperature(head_size: int, mult: float) -> float:
    """t with mult q k^T / d = (q k^T / sqrt(d)) / t: t = sqrt(d) / mult."""
    t = math.sqrt(head_size) / checks.real("mult", mult)
    if not 1e-3 <= t <= 1e3:
        raise MomentcalcError(f"mult must give sqrt(head size) / mult in [0.001, 1000], not {mult!r} at d={head_size}")
    return t


def allowed_keys(query: Tensor, key: Tensor, attn_mask: Tensor | None, is_causal: bool) -> Tensor:
    """Boolean (..., S_q, S_k): which keys each query row attends to (torch's rules for masks)."""
    s_q, s_k = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise MomentcalcError("give attn_mask or is_causal=True, not both (as torch)")
        return torch.ones(s_q, s_k, dtype=torch.bool, device=query.device).tril()
    if attn_mask is None:
        return torch.ones(s_q, s_k, dtype=torch.bool, device=query.device)
    if attn_mask.dtype == torch.bool:
        return attn_mask
    blocked = attn_mask == -math.inf
    if not torch.all(blocked | (attn_mask == 0)):
        raise MomentcalcError("a float attn_mask must hold only 0 and -inf: other biases change the softmax's law")
    return ~blocked


def lookup(counts: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """(m2, g) at each entry of counts, each distinct count computed once (softmax_law caches it)."""
    top = int(counts.max())
    m2 = torch.ones(top + 1, dtype=torch.float64)
    g = torch.zeros(top + 1, dtype=torch.float64)
    for n in torch.unique(counts).tolist():
        m2[n], g[n] = softmax_law(int(n), t)
    return m2[counts.cpu()], g[counts.cpu()]


def _inverse_sqrt(var: Tensor) -> Tensor:
    """1 / sqrt(var), and 1 where var is 0 (nothing flows there: any scale keeps it 0)."""
    return torch.where(var > 0, var, torch.ones_like(var)).rsqrt()


def attention_scales(
    allowed: Tensor,
    head_size: int,
    value_size: int,
    mult: float = 1.0,
    dropout_p: float = 0.0,
    position_covariance: positions.PositionCovariance | None = None,
) -> dict[str, Tensor]:
    """Float64 scales: "output" and "query" of shape (..., S_q, 1), "key" and "value" of shape (..., S_k, 1)."""
    keep = 1.0 - checks.real("dropout_p", dropout_p)
    if not 0.0 < keep <= 1.0:
        raise MomentcalcError(f"dropout_p is a drop probability in [0, 1), not {dropout_p!r}")
    counts = allowed.sum(-1)
    if int(counts.min()) == 0:
        raise MomentcalcError("a query row attends to no key: its softmax is undefined")
    t = temperature(head_size, mult)
    if position_covariance is not None:  # refused before the softmax constants are computed (seconds each)
        if keep < 1.0:
            raise MomentcalcError("position_covariance is for dropout_p = 0: dropout's spread is not propagated")
        positions.check_shapes(position_covariance, allowed)
    m2, g = lookup(counts, t)
    if position_covariance is not None:
        cov = positions.attention_covariances(position_covariance, allowed, m2, g, t, value_size / head_size)
        return {name: _inverse_sqrt(c.diagonal()).unsqueeze(-1) for name, c in cov.items()}
    weights = allowed.cpu().to(torch.float64)
    n = counts.cpu().to(torch.float64)
    ratio = value_size / head_size
    return {
        "output": _inverse_sqrt(n * m2 / keep).unsqueeze(-1),
        "query": _inverse_sqrt(n * ratio * g / keep).unsqueeze(-1),
        "key": _inverse_sqrt(ratio * (weights * g.unsqueeze(-1)).sum(-2) / keep).unsqueeze(-1),
        "value": _inverse_sqrt((weights * m2.unsqueeze(-1)).sum(-2) / keep).unsqueeze(-1),
    }


@lru_cache(maxsize=256)
def _unmasked_scales(s_q: int, s_k: int, is_causal: bool, head_size: int, value_size: int, mult, dropout_p, cov):
    allowed = torch.ones(s_q, s_k, dtype=torch.bool)
    allowed = allowed.tril() if is_causal else allowed
    return attention_scales(allowed, head_size, value_size, mult, dropout_p, cov)


class _Scale(torch.autograd.Function):
    """x * forward in the forward pass, the incoming gradient * backward in the backward pass (tensors broadcast)."""

    @staticmethod
    def forward(ctx, x: Tensor, forward: Tensor | float, backward: Tensor | float) -> Tensor:
        ctx.backward_scale = backward
        return x * (forward.to(x.dtype) if isinstance(forward, Tensor) else forward)

    @staticmethod
    def backward(ctx, grad: Tensor):
        scale = ctx.backward_scale
        return grad * (scale.to(grad.dtype) if isinstance(scale, Tensor) else scale), None, None


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    mult: float = 1.0,
    position_covariance: positions.PositionCovariance | None = None,
) -> Tensor:
    """Unit-scaled softmax(mult q k^T / d) v: unit output and unit q, k, v gradients, per row and key position.

    position_covariance (momentcalc's addition) gives the scales for positions so correlated; by default they
    are independent."""
    checks.flag("is_causal", is_causal)
    if position_covariance is not None and not isinstance(position_covariance, positions.PositionCovariance):
        raise MomentcalcError("position_covariance must be a momentcalc.torch.positions.PositionCovariance")
    sizes = (query.shape[-1], value.shape[-1], mult, dropout_p, position_covariance)
    if attn_mask is None:  # the scales depend on the shapes (and the covariance object) alone: computed once
        found = _unmasked_scales(query.shape[-2], key.shape[-2], is_causal, *sizes)
    else:
        found = attention_scales(allowed_keys(query, key, attn_mask, is_causal), *sizes)
    scales = {name: s.to(query.device) for name, s in found.items()}
    q, k, v = (_Scale.apply(x, 1.0, scales[name]) for x, name in ((query, "query"), (key, "key"), (value, "value")))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=mult / query.shape[-1]
    )
    return _Scale.apply(out, scales["output"], 1.0)

"""predict()'s rules for attention: softmax over a dim, the product of two data tensors (q @ k^T, p @ v) and
F.scaled_dot_product_attention (causal, masked or not) as one rule composed of those.

Softmax over n logits: the exact moments of momentcalc's softmax(n, t) (certified, closed form, quadrature, which
must agree) at t = 1 / (the logits' std), cached per distinct (n, t). t is taken on a grid of 0.5 % steps in
log t (a relative error in E[p^2] of at most 0.5 % of 2 / t^2, 1e-3 at t = 3), and in a causal attention the
per-row counts n beyond 8 are looked up on a grid of ratio 1.5 (every n up to 8, then 12, 18, 27, ..., and the
largest count), n^2 E[p^2] and n^2 E[sum_j J_j1^2] interpolated linearly in 1 / n between: for near-uniform
weights n^2 E[p^2] = 1 + (1 - 1/n) / t^2 + O(t^-4) is linear in 1 / n, so the interpolation's error is of order
t^-4 (1 / n)^2. Each exact softmax costs seconds; the grids keep a 128-row causal attention to 14 of them.

Assumptions: the two factors of a product independent, each with iid entries (per channel where the law has
them); within an attention row, the logits q_i . k_j s iid given q_i, of variance tau^2 = s^2 sum_c E[q_c^2]
var(k_c) (the spread of |q_i|^2 over rows, relative sqrt(2 / d) for Gaussian q, is neglected; k's mean is
common to a row and cancels); the values v_j independent across positions and of the weights. A causal row i
averages values 0..i, so the output's positions are correlated, which no law here carries: the next attention
meets values correlated across positions and its output variance is larger than this rule's (the note says so).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .. import unit_scales
from ..unit_attention import allowed_keys
from .law import Law, uniform
from .ops import Out, Unmodeled

T_STEP = 0.005  # the grid of log t
EXACT_UP_TO = 8  # every count up to this is exact; beyond, the grid of GROWTH
GROWTH = 1.5


def _grid_t(t: float) -> float:
    return math.exp(round(math.log(t) / T_STEP) * T_STEP)


@lru_cache(maxsize=8192)
def _exact(n: int, t: float) -> tuple[float, float]:
    """(E[p_1^2], E[sum_j (dp_j / dx_1)^2]) of softmax(x) over n iid logits of std 1 / t (gradient in x itself)."""
    if n == 1:
        return 1.0, 0.0  # the constant 1: no spread, no gradient
    m = unit_scales.softmax_moments(n, t)  # softmax(z / t), z ~ N(0, 1): x = z / t, so dp/dx = t dp/dz
    if m.grad_sq is None:
        raise Unmodeled(f"a backward constant of softmax(n={n}, t={t!r})")
    return m.second_moment, m.grad_sq * t * t


def _nodes(top: int) -> list[int]:
    nodes = list(range(1, min(top, EXACT_UP_TO) + 1))
    while nodes[-1] < top:
        nodes.append(min(top, math.ceil(nodes[-1] * GROWTH)))
    return nodes


def softmax_law(counts: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[p^2], E[sum_j J_j1^2]) for each entry of counts (attended keys per row), logits of std `std`."""
    if not std > 1e-12:
        return 1.0 / counts.double() ** 2, torch.zeros(counts.shape, dtype=torch.float64)
    t = _grid_t(1.0 / std)
    top = int(counts.max())
    nodes = _nodes(top)
    values = torch.tensor([_exact(n, t) for n in nodes], dtype=torch.float64)
    at = torch.tensor(nodes, dtype=torch.float64)
    scaled = values * (at * at)[:, None]  # n^2 E[p^2] and n^2 G: near constants, linear in 1 / n
    n = counts.double().reshape(-1)
    u, grid = 1.0 / n, 1.0 / at
    hi = torch.searchsorted(-grid, -u).clamp(1, len(nodes) - 1)  # grid decreasing in u
    lo = hi - 1
    frac = ((grid[lo] - u) / (grid[lo] - grid[hi])).clamp(0, 1)
    inner = scaled[lo] + frac[:, None] * (scaled[hi] - scaled[lo])
    out = inner / (n * n)[:, None]
    exact = torch.isin(n, at)
    out[exact] = values[torch.searchsorted(at, n[exact])]
    return out[:, 0].reshape(counts.shape), out[:, 1].reshape(counts.shape)


# ---- softmax over a dim
def softmax(law: Law, dim: int, shape, mult: float = 1.0) -> Out:
    """softmax(mult x) over dim: every output has mean 1 / n and the exact E[p^2] at the logits' pooled variance."""
    n = int(shape[dim])
    std = abs(mult) * math.sqrt(law.pooled_var)
    m2, g = softmax_law(torch.tensor([n]), std)
    out = uniform(1.0 / n, float(m2[0]) - 1.0 / n**2, shape, law.axis if len(shape) > 1 else -1)
    return Out(out, (mult * mult * float(g[0]),), f"softmax(n={n}) of logits of std {std:.4g}")


# ---- products of two data tensors
def _moments(law: Law) -> tuple[float, float]:
    return law.pooled_mean, law.second_moment


def matmul(a: Law, b: Law, shape) -> Out:
    """a @ b of independent factors with iid entries: K products per entry."""
    inner = int(a.shape[-1])
    if len(b.shape) >= 2 and int(b.shape[-2]) != inner:
        raise Unmodeled("a rule for a matmul whose inner sizes differ")
    (ma, sa), (mb, sb) = _moments(a), _moments(b)
    mean = inner * ma * mb
    var = inner * (sa * sb - ma * ma * mb * mb)
    rows, cols = int(a.shape[-2]) if len(a.shape) > 1 else 1, int(b.shape[-1]) if len(b.shape) > 1 else 1
    # a's gradient sums cols products g * b, b's sums rows products g * a (independent unit gradients)
    return Out(uniform(mean, var, shape, -1), (cols * sb, rows * sa), "independent factors, iid entries")


# ---- attention
def _channels(law: Law, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and variance along the last axis where the law has them, else the pooled values."""
    if law.axis % len(law.shape) == len(law.shape) - 1 and law.channels == size:
        return law.mean, law.var
    ones = torch.ones(size, dtype=torch.float64)
    return ones * law.pooled_mean, ones * law.pooled_var


def attention_rows(q: Law, k: Law, v: Law, allowed: torch.Tensor, scale: float) -> dict:
    """Per query row and per key position, what the attention's output variance and gradients are made of."""
    d, d_v = int(q.shape[-1]), int(v.shape[-1])
    mq, vq = _channels(q, d)
    _, vk = _channels(k, d)
    mv, vv = _channels(v, d_v)
    tau = scale * math.sqrt(float(((vq + mq * mq) * vk).sum()))
    allowed = allowed.reshape(-1, *allowed.shape[-2:]).cpu()
    counts = allowed.sum(-1)
    if int(counts.min()) == 0:
        raise Unmodeled("a rule for a query row that attends to no key (its softmax is undefined)")
    m2, g = softmax_law(counts, tau)
    weights = allowed.double()
    flow = float(d_v * vv.mean())  # the logits' gradient: g_i . v_j, v's mean cancels in the softmax's Jacobian
    return {
        "tau": tau,
        "out": (counts * m2).mean(0),  # per row: sum_j E[p_ij^2], times var(v)
        "query": scale * scale * flow * float(vk.mean()) * (counts * g).mean(0),
        "key": scale * scale * flow * float((vq + mq * mq).mean()) * (weights * g.unsqueeze(-1)).sum(-2).mean(0),
        "value": (weights * m2.unsqueeze(-1)).sum(-2).mean(0),
        "mean": mv,
        "var": vv,
    }


def _sdpa_arguments(args: list, kwargs: dict):
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    given = dict(zip(names, args)) | kwargs
    q, k, v = (given.get(name) for name in names[:3])
    if not all(isinstance(x, Law) for x in (q, k, v)):
        raise Unmodeled("a rule for attention of a query, key or value that is not data")
    if float(given.get("dropout_p", 0.0) or 0.0) > 0:
        raise Unmodeled("a rule for attention with dropout")
    if given.get("enable_gqa") or q.shape[-3:-2] != k.shape[-3:-2]:
        raise Unmodeled("a rule for grouped-query attention")
    mask = given.get("attn_mask")
    if isinstance(mask, Law):
        raise Unmodeled("a rule for an attention mask that is data")
    return q, k, v, mask, bool(given.get("is_causal", False)), given.get("scale")


def _allowed(q: Law, k: Law, mask, causal: bool) -> torch.Tensor:
    query = torch.empty(q.shape[-2], 0)
    key = torch.empty(k.shape[-2], 0)
    try:
        return allowed_keys(query, key, mask, causal)
    except Exception as why:  # allowed_keys refuses a float mask other than 0 / -inf, and a mask with is_causal
        raise Unmodeled(f"a rule for this mask ({str(why).splitlines()[0]})") from None


def scaled_dot_product_attention(args: list, kwargs: dict, shape, row_scale=None, input_scales=None) -> Out:
    """softmax(s q k^T + mask) v. row_scale: a (S_q,) forward scale per output row (momentcalc's unit attention);
    input_scales: (query (S_q,), key (S_k,), value (S_k,)) backward scales."""
    q, k, v, mask, causal, scale = _sdpa_arguments(args, kwargs)
    s = float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    rows = attention_rows(q, k, v, _allowed(q, k, mask, causal), s)
    out_w = rows["out"] * (row_scale**2 if row_scale is not None else 1.0)
    law = Law(rows["mean"].clone(), rows["var"] * float(out_w.mean()), -1, tuple(shape))
    if row_scale is not None:  # rows scaled apart: their means too, pooled as a spread between rows
        mean_scale = float(row_scale.mean())
        spread = float((row_scale * row_scale).mean()) - mean_scale**2
        law = Law(law.mean * mean_scale, law.var + law.mean**2 * spread, -1, tuple(shape))
    per = [rows[name] for name in ("query", "key", "value")]
    if input_scales is not None:
        per = [p * b**2 for p, b in zip(per, input_scales)]
    note = f"attention of logits of std {rows['tau']:.4g}, positions independent"
    return Out(law, tuple(float(p.mean()) for p in per), note)

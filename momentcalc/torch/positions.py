"""Covariance across sequence positions: how attention, gated units and residual sums carry it, at init.

    from momentcalc.torch.positions import attention_forward, causal, dual_kernel

Unit-scaled attention assumes its inputs independent across positions. A causal row i at init averages the
values 0..i almost uniformly (logit std 1 / t, t = sqrt(d) / mult), so the rows it puts out are correlated, by
sqrt((i + 1) / (k + 1)) between rows i < k for independent values, and a residual stream carries that to every
later block. Here one position's statistics are its covariance with every other position, per channel (the
channels are exchangeable at init: a (seq, seq) matrix C describes the stream). The rules, all at init:
- a linear of unit-variance weights (scaled by 1 / sqrt(fan_in)) and an RMS norm keep the correlation: the
  q, k, v of a normalized stream have covariance corr(C), mutually independent;
- attention: row i's weights P_i have mean 1 / n_i on the n_i keys it attends to (exchangeable logits), and
  E[P_ik P_il] is m2(n_i) for k = l and c_i = (1 - n_i m2(n_i)) / (n_i (n_i - 1)) otherwise (the weights sum to
  1), m2 the exact E[p^2] of softmax(n, t) over iid logits; rows are taken independent of each other and of
  the values, so Cov(out)_ij = sum_kl E[P_ik P_jl] R_kl (forward) and Cov(dv)_kl = sum_ij E[P_ik P_jl] G_ij
  (backward, G the output gradient's covariance). The logit gradient dz_ik = P_ik g_i . (v_k - sum_l P_il v_l)
  is taken at uniform P, which gives the query's and key's gradient covariance; each row's is then weighted
  by the ratio of its exact backward constant g(n) to the uniform one, so that both are exact where positions
  are independent (C = G = I), as the op's scales without covariance are;
- a gated unit x * h(gate), x and gate independent with position correlation rho: the product's correlation
  is rho K_h(rho) / K_h(1), K_h(rho) = E[h(X) h(Y)] for a standard bivariate normal of correlation rho (the
  dual kernel, Daniely et al. 2016), by Gauss-Legendre quadrature split at the kink.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.special import expit
from torch import Tensor

from ..errors import MomentcalcError

GRID = 1025  # correlations at which a dual kernel is tabulated; linear interpolation between them
NODES = 32  # Gauss-Legendre nodes per piece of [-LIMIT, LIMIT], in each dimension
LIMIT = 9.0  # the normal's mass beyond 9 is 2e-19


@dataclass(frozen=True, eq=False)
class PositionCovariance:
    """What scaled_dot_product_attention may be told about its positions (hashed by identity: one per block).

    values: (S, S), the covariance across positions of each entry of q, k and v (unit diagonal: the logits'
    temperature assumes unit-variance q and k); output_grad: (S, S), that of the output's gradient, or None for
    independent unit gradients; width: the features of the one input that q, k and v are linear maps of (unit-
    variance weights, fixed), or None for q, k, v independent of each other. At a finite width the fixed weights
    correlate a position's key and value (cross-covariance W_v W_k^T / width): each query row's weighted sum
    over its keys then adds a coherent term, relative n_i / width to the query's gradient (positions.py)."""

    values: Tensor
    output_grad: Tensor | None = None
    width: int | None = None

    def __post_init__(self):
        for name in ("values", "output_grad"):
            m = getattr(self, name)
            if m is None:
                continue
            if m.ndim != 2 or m.shape[0] != m.shape[1] or not torch.isfinite(m).all():
                raise MomentcalcError(f"position covariance {name} must be a finite square matrix")
            if not torch.allclose(m, m.T) or bool((m.diagonal() < 0).any()):
                raise MomentcalcError(f"position covariance {name} must be symmetric with a nonnegative diagonal")
        if self.width is not None and (isinstance(self.width, bool) or not isinstance(self.width, int)):
            raise MomentcalcError(f"position covariance width must be a whole number of features, not {self.width!r}")
        if self.width is not None and self.width < 1:
            raise MomentcalcError(f"position covariance width must be at least 1, not {self.width}")


def correlation(cov: Tensor) -> Tensor:
    """cov / sqrt(diag diag^T): what an RMS norm of every position leaves (its entries per channel)."""
    d = cov.diagonal().clamp_min(1e-300).rsqrt()
    return cov * d.unsqueeze(-1) * d.unsqueeze(-2)


def causal(seq: int) -> Tensor:
    """The (seq, seq) boolean matrix of keys each causal row attends to."""
    return torch.ones(seq, seq, dtype=torch.bool).tril()


def averaging(allowed: Tensor) -> Tensor:
    """A_ik = 1 / n_i on the keys row i attends to: the mean of the attention weights at init."""
    weights = allowed.to(torch.float64)
    return weights / weights.sum(-1, keepdim=True)


def _pair_moments(allowed: Tensor, m2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(n, E[P_ik P_il] at k != l, at k = l) per row; one-key rows have no spread (c = m2 = 1)."""
    n = allowed.sum(-1).to(torch.float64)
    pairs = (n * (n - 1)).clamp_min(1.0)
    c = torch.where(n > 1, (1.0 - n * m2) / pairs, torch.ones_like(n))
    return n, c, m2


def attention_forward(cov: Tensor, allowed: Tensor, m2: Tensor) -> Tensor:
    """Covariance across query rows of softmax(logits) v for values of covariance cov (per channel)."""
    a = averaging(allowed)
    n, c, second = _pair_moments(allowed, m2)
    w = allowed.to(torch.float64)
    out = a @ cov @ a.T
    # row i's own spread: sum_kl (E[P_ik P_il] - 1 / n^2) R_kl over its keys
    spread = (c - 1.0 / n**2) * ((w @ cov) * w).sum(-1) + (second - c) * (w * cov.diagonal()).sum(-1)
    return out + torch.diag(spread)


def value_backward(grad_cov: Tensor, allowed: Tensor, m2: Tensor) -> Tensor:
    """Covariance across key positions of P^T g, for output gradients g of covariance grad_cov."""
    a = averaging(allowed)
    n, c, second = _pair_moments(allowed, m2)
    w = allowed.to(torch.float64)
    g = grad_cov.diagonal()
    out = a.T @ grad_cov @ a + w.T @ ((g * (c - 1.0 / n**2)).unsqueeze(-1) * w)
    return out + torch.diag(w.T @ (g * (second - c)))


def row_weights(allowed: Tensor, grad_sq: Tensor, t: float) -> Tensor:
    """kappa_i = g(n_i) / its uniform-attention value (n - 1) / (n^3 t^2): 1 for one-key rows."""
    n = allowed.sum(-1).to(torch.float64)
    uniform = (n - 1) / (n**3 * t**2)
    return torch.where(n > 1, grad_sq / uniform.clamp_min(1e-300), torch.ones_like(n))


def logit_backward(cov: Tensor, grad_cov: Tensor, allowed: Tensor, kappa: Tensor) -> tuple[Tensor, Tensor]:
    """(query's, key's) gradient covariance across positions, in units of d_v / (d t^2).

    At uniform P, dz_ik = g_i . (v_k - vbar_i) / n_i, and E[dz_ik dz_jl] = d_v G_ij D_ij,kl / (n_i n_j) with
    D_ij,kl = R_kl - M_jk - M_il + B_ij, M = A R, B = A R A^T; dq_i = (mult / d) sum_k dz_ik k_k and
    dk_k = (mult / d) sum_i dz_ik q_i, with q, k of covariance R. Self-attention: one R for q, k and v.
    """
    if cov.shape[-1] != allowed.shape[-1] or allowed.shape[-1] != allowed.shape[-2]:
        raise MomentcalcError("position covariance needs self-attention: as many queries as keys")
    a = averaging(allowed)
    root = kappa.sqrt()
    g = grad_cov * root.unsqueeze(-1) * root.unsqueeze(-2)  # each row's logit gradient at its exact constant
    m = a @ cov
    b = m @ a.T
    t2 = a @ (m * m).T  # t2_ij = sum_k A_ik M_jk^2
    query = g * (a @ (cov * cov) @ a.T - t2 - t2.T + b * b)
    h = g * cov
    key = cov * (a.T @ h @ a) - ((a.T @ h) * m.T) @ a - a.T @ ((h @ a) * m) + a.T @ (h * b) @ a
    return query, key


def check_shapes(positions: PositionCovariance, allowed: Tensor) -> None:
    """One (S, S) mask of self-attention and (S, S) covariances, or one line saying what is wrong."""
    s = allowed.shape[-1]
    if allowed.ndim != 2 or allowed.shape[-2] != s:
        raise MomentcalcError("position covariance needs self-attention (as many queries as keys), one mask for all")
    for name in ("values", "output_grad"):
        m = getattr(positions, name)
        if m is not None and m.shape != (s, s):
            raise MomentcalcError(
                f"position covariance {name} must be ({s}, {s}) for {s} positions, not {tuple(m.shape)}"
            )


def attention_covariances(
    positions: PositionCovariance, allowed: Tensor, m2: Tensor, grad_sq: Tensor, t: float, ratio: float
) -> dict[str, Tensor]:
    """Unscaled covariance across positions of the output and of the q, k, v gradients (ratio = d_v / d)."""
    check_shapes(positions, allowed)
    s = allowed.shape[-1]
    values = positions.values.detach().to(torch.float64).cpu()
    grad = positions.output_grad
    grad = torch.eye(s, dtype=torch.float64) if grad is None else grad.detach().to(torch.float64).cpu()
    allowed = allowed.cpu()
    query, key = logit_backward(values, grad, allowed, row_weights(allowed, grad_sq, t))
    output = attention_forward(values, allowed, m2)
    if positions.width is not None:
        forward, backward = shared_input_terms(values, grad, allowed)
        output, query = output + forward / (t**2 * positions.width), query + backward / positions.width
    return {
        "output": output,
        "query": query * ratio / t**2,
        "key": key * ratio / t**2,
        "value": value_backward(grad, allowed, m2),
    }


def shared_input_terms(cov: Tensor, grad_cov: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
    """The coherent terms of k and v made from one input by fixed weights, v = C k + (independent of k).

    With z_ik = mult q_i . k_k / d and P_ik = (1 + z_ik - zbar_i) / n_i to first order, row i's output gains
    sum_k P_ik v_k -> (mult / d) s_i C q_i and its query gradient (mult / d) s_i C^T g_i, where
    s_i = mean over its keys of Var(k_k - kbar_i) = (A diag R)_i - (A R A^T)_ii; C's entries have variance
    1 / width. Per channel, across rows i, j: s_i s_j R_ij / (t^2 width) forward, and s_i s_j G_ij d_v / (d t^2
    width) backward: returned without the 1 / (t^2 width) and the d_v / (d t^2 width).
    """
    a = averaging(allowed)
    s = a @ cov.diagonal() - (a @ cov @ a.T).diagonal()
    outer = s.unsqueeze(-1) * s.unsqueeze(-2)
    return outer * cov, outer * grad_cov


@lru_cache(maxsize=16)
def _kernel_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    rho = np.linspace(-1.0, 1.0, GRID)
    return rho, np.concatenate([_pair_expectation(_FUNCTIONS[name], r) for r in np.array_split(rho, 64)])


def _pair_expectation(f, rho: np.ndarray) -> np.ndarray:
    """E[f(X) f(rho X + s Z)], s = sqrt(1 - rho^2), by Gauss-Legendre on [-L, L] in x and z, each split where
    an argument crosses 0, the kink of relu and the step: the rule is then exact to rounding for functions
    smooth away from 0 (Gauss-Hermite over a kink errs by 1e-3 at a hundred nodes)."""
    t, w = np.polynomial.legendre.leggauss(NODES)
    x, wx = _split_nodes(t, w, np.zeros(1))  # (1, 2 NODES)
    x, wx = x[0], wx[0] * np.exp(-0.5 * x[0] ** 2) / np.sqrt(2 * np.pi)
    s = np.sqrt(np.clip(1.0 - rho**2, 0.0, None))
    # the inner argument rho x + s z crosses 0 at z = -rho x / s; clipped to the ends where s is 0 or small
    cut = np.clip(-rho[:, None] * x[None, :] / np.maximum(s, 1e-300)[:, None], -LIMIT, LIMIT)
    z, wz = _split_nodes(t, w, cut)  # (rows, x, 2 NODES)
    wz = wz * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    inner = (f(rho[:, None, None] * x[None, :, None] + s[:, None, None] * z) * wz).sum(-1)
    return inner @ (wx * f(x))


def _split_nodes(t: np.ndarray, w: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-L, cut] and [cut, L], for every cut (a zero-length piece weighs 0)."""
    c = cut[..., None]
    lo_mid, lo_half = (c - LIMIT) / 2, (c + LIMIT) / 2
    hi_mid, hi_half = (c + LIMIT) / 2, (LIMIT - c) / 2
    nodes = np.concatenate([lo_mid + lo_half * t, hi_mid + hi_half * t], axis=-1)
    weights = np.concatenate([lo_half * w + 0 * c, hi_half * w + 0 * c], axis=-1)
    return nodes, weights


def _silu(x):
    return x * expit(x)


def _silu_grad(x):
    s = expit(x)
    return s * (1.0 + x * (1.0 - s))


_FUNCTIONS = {
    "silu": _silu,
    "silu_grad": _silu_grad,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu_grad": lambda x: (x > 0).astype(float),
}


def dual_kernel(name: str, rho: Tensor) -> Tensor:
    """E[f(X) f(Y)] for X, Y standard normal of correlation rho, f one of silu, silu_grad (its derivative), relu."""
    if name not in _FUNCTIONS:
        raise MomentcalcError(f"a dual kernel is known for {', '.join(_FUNCTIONS)}, not {name!r}")
    grid, values = _kernel_table(name)
    r = rho.detach().to(torch.float64).clamp(-1.0, 1.0).cpu().numpy()
    return torch.from_numpy(np.asarray(np.interp(r, grid, values))).reshape(rho.shape)


def gated_forward(cov: Tensor, gate: str = "silu") -> Tensor:
    """Correlation of x * h(gate) / std across positions, x and gate independent, each of correlation cov."""
    rho = correlation(cov)
    one = dual_kernel(gate, torch.ones(()))
    return rho * dual_kernel(gate, rho) / one


def gated_backward(cov: Tensor, grad_cov: Tensor, gate: str = "silu") -> tuple[Tensor, Tensor]:
    """(value's, gate's) unit-scaled gradient covariance across positions of x * h(gate)."""
    rho = correlation(cov)
    h, dh = gate, f"{gate}_grad"
    value = grad_cov * dual_kernel(h, rho) / dual_kernel(h, torch.ones(()))
    return value, grad_cov * rho * dual_kernel(dh, rho) / dual_kernel(dh, torch.ones(()))

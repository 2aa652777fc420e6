"""Spatial correlation through the layers of a 2-D map: what a convolution, an average pool and an activation do
to the correlation of a channel's neighbouring values, and what it does to their variance.

A correlation c_i(e) of input channel i at offset e (law.acf, |e| <= RADIUS per axis, 0 beyond) enters a
convolution through its filters' autocorrelation A_ji(e) = sum_a w_ji(a) w_ji(a + e): output channel j's
covariance at an output offset t is sum_i v_i sum_e A_ji(e) c_i(s t + d e) (stride s, dilation d), its variance
that at t = 0; borders are left out (interior windows). An average pool is the depthwise convolution of 1 / k^2
filters: on uncorrelated input it divides the variance by k^2, on correlated input by less.
An activation f of X ~ N(mu, sigma^2) maps a correlation c to Cov(f(X), f(Y)) / Var f(X) =
sum_n b_n c^n / Var f(X) (Mehler's formula, b_n = n! a_n^2, a_n f's Hermite coefficients at that law, terms up to
HERMITE_TERMS), computed by a fine trapezoid rule, which a kink costs a few 1e-6 (element_moments). The same rule
gives an activation of a map its moments element by element (position by position, channel by channel), each less
the rule's own error at the pooled law, where momentcalc's exact constant is known (ops.activation).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .law import RADIUS

HERMITE_TERMS = 40


def filter_autocorrelation(weight: torch.Tensor) -> torch.Tensor:
    """A_ji(e) = sum_a w_ji(a) w_ji(a + e): (C_out, C_in / groups, 2 kh - 1, 2 kw - 1)."""
    w = weight.detach().double()
    c_out, c_in_group, kh, kw = w.shape
    auto = torch.zeros(c_out, c_in_group, 2 * kh - 1, 2 * kw - 1, dtype=torch.float64)
    for ey in range(-(kh - 1), kh):
        for ex in range(-(kw - 1), kw):
            a = w[:, :, max(0, -ey) : kh - max(0, ey), max(0, -ex) : kw - max(0, ex)]
            b = w[:, :, max(0, ey) : kh + min(0, ey), max(0, ex) : kw + min(0, ex)]
            auto[:, :, ey + kh - 1, ex + kw - 1] = (a * b).sum((2, 3))
    return auto


def conv_covariance(weight, var_in: torch.Tensor, acf: torch.Tensor, groups: int, stride, dilation):
    """Each output channel's interior variance (no bias, no input mean) and its correlation at offsets
    (C_out, 2R+1, 2R+1): one grouped convolution of the input correlations with the weighted A_ji."""
    auto = filter_autocorrelation(weight)
    c_out, c_in_group, eh, ew = auto.shape
    group_of = torch.arange(c_out) // (c_out // groups)
    channel = group_of[:, None] * c_in_group + torch.arange(c_in_group)[None, :]
    kernel = auto * var_in[channel][:, :, None, None]
    sy, sx = stride
    dy, dx = dilation
    pad_y, pad_x = sy * RADIUS + dy * (eh // 2), sx * RADIUS + dx * (ew // 2)
    side = 2 * RADIUS + 1
    grid = torch.zeros(1, acf.shape[0], 2 * pad_y + 1, 2 * pad_x + 1, dtype=torch.float64)
    ry, rx = min(RADIUS, pad_y), min(RADIUS, pad_x)
    grid[0, :, pad_y - ry : pad_y + ry + 1, pad_x - rx : pad_x + rx + 1] = acf[
        :, RADIUS - ry : RADIUS + ry + 1, RADIUS - rx : RADIUS + rx + 1
    ]
    cov = F.conv2d(grid, kernel, dilation=(dy, dx), groups=groups)[0]  # offsets -s R .. s R
    cov = cov[:, ::sy, ::sx][:, :side, :side]
    var = cov[:, RADIUS, RADIUS]
    return var, cov / var.clamp(min=1e-300)[:, None, None]


def global_average_factor(acf: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Var of the mean of an H x W map over the variance of one value, per channel:
    sum_e (H - |ey|)(W - |ex|) c(e) / (HW)^2."""
    offsets = torch.arange(-RADIUS, RADIUS + 1)
    counts = (height - offsets.abs()).clamp(min=0)[:, None] * (width - offsets.abs()).clamp(min=0)[None, :]
    return (acf * counts.double()).sum((1, 2)) / (height * width) ** 2


def mean_slope(fn, mu: float, sigma: float) -> float:
    """E[f'(X)] for X ~ N(mu, sigma^2), as E[f(X) (X - mu)] / sigma^2 (Stein), by Gauss-Hermite quadrature: how a
    channel's output mean follows its input mean."""
    z, w = _grid()
    with torch.no_grad():
        values = fn(mu + sigma * z).double()
    return float((w * values * z).sum()) / sigma


def _hermite_weights(fn, mu, sigma) -> np.ndarray:
    """b_n = E[f(mu + sigma Z) h_n(Z)]^2, n = 1..HERMITE_TERMS, h_n = He_n / sqrt(n!) the orthonormal Hermite
    polynomials: the terms of Cov(f(X), f(Y)) in powers of c. mu, sigma: numbers, or (C,) arrays for one law per
    channel (then b is (HERMITE_TERMS, C)). By the trapezoid rule of element_moments: Gauss-Hermite nodes miss a
    kink's coefficients (relu's correlation at c = 0.8 by 2e-3)."""
    z, w = _grid()
    mu = torch.as_tensor(np.asarray(mu, dtype=float))[..., None]
    sigma = torch.as_tensor(np.asarray(sigma, dtype=float))[..., None]
    with torch.no_grad():
        values = fn(mu + sigma * z).double() * w
    b, h_prev, h = [], torch.ones_like(z), z.clone()
    for n in range(1, HERMITE_TERMS + 1):
        b.append(((values * h).sum(-1) ** 2).numpy())
        h_prev, h = h, (z * h - math.sqrt(n) * h_prev) / math.sqrt(n + 1)
    return np.array(b)


def activation_acf(fn, mu, sigma, acf: torch.Tensor | None) -> torch.Tensor | None:
    """The correlation of f's output at each offset, from its input's (None stays None: uncorrelated). mu, sigma:
    one law for all channels (numbers), or each channel's own ((C,) tensors, the channel mean and the root of its
    mean variance within positions)."""
    if acf is None:
        return None
    per_channel = isinstance(mu, torch.Tensor)
    b = _hermite_weights(fn, mu.numpy() if per_channel else mu, sigma.numpy() if per_channel else sigma)
    # normalized by f's variance, not by the truncated series' sum (at c = 1 the series misses its tail, n > 40:
    # 0.1 % of relu's variance, which would put every correlation up by as much)
    mu_t, sigma_t = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
    first, second = element_moments(fn, mu_t, sigma_t * sigma_t)
    total_b = (second - first * first).numpy()
    if not np.all(total_b > 0):
        return None
    c = acf.numpy()
    shape = (-1,) + (1,) * (c.ndim - 1) if per_channel else ()
    total, power = np.zeros_like(c), np.ones_like(c)
    for bn in b:
        power = power * c
        total += np.reshape(bn, shape) * power
    out = torch.as_tensor(total / np.reshape(total_b, shape))
    out[..., RADIUS, RADIUS] = 1.0  # a value with itself
    return out


GRID_STEP, GRID_HALF = 0.005, 9.0  # the trapezoid rule's step and half-width in standard units of each element's law


@functools.lru_cache(maxsize=1)
def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.arange(-GRID_HALF, GRID_HALF + GRID_STEP / 2, GRID_STEP, dtype=torch.float64)
    w = torch.exp(-0.5 * z * z) * GRID_STEP / math.sqrt(2 * math.pi)
    w[0] = w[-1] = w[0] / 2
    return z, w / w.sum()  # the rule's own mass: a constant has its own mean exactly


def element_moments(fn, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E f(X) and E f(X)^2 for X ~ N(mean, var), element by element (maps of any shape): the trapezoid rule on a
    grid of step GRID_STEP over +-GRID_HALF standard deviations, which a kink (relu's, at any place) costs about
    step^2 / 12 of the density there, a few 1e-6 (a Gauss-Hermite rule of 120 nodes misses relu's mean by 1e-3)."""
    z, w = _grid()
    flat_m, flat_s = mean.reshape(-1).double(), var.reshape(-1).double().clamp(min=0).sqrt()
    # one evaluation per distinct law: a channel's interior positions share theirs, only borders differ (the laws
    # are matched as float32 numbers, 6e-8 apart at most, far below anything predict() resolves)
    bits = torch.stack([flat_m, flat_s], 1).float().view(torch.int32).long()
    keys, inverse = torch.unique((bits[:, 0] << 32) | (bits[:, 1] & 0xFFFFFFFF), return_inverse=True)
    laws = torch.stack([(keys >> 32).int(), (keys & 0xFFFFFFFF).int()], 1).view(torch.float32).double()
    first, second = torch.empty(len(laws), dtype=torch.float64), torch.empty(len(laws), dtype=torch.float64)
    chunk = max(1, 2**22 // z.numel())
    with torch.no_grad():
        for start in range(0, len(laws), chunk):
            part = slice(start, start + chunk)
            values = fn(laws[part, :1] + laws[part, 1:] * z).double()
            first[part], second[part] = values @ w, (values * values) @ w
    return first[inverse].reshape(mean.shape), second[inverse].reshape(mean.shape)


def overlapping_max_correlation(fn, mu: float, sigma: float, n: int, shared: int) -> float:
    """The correlation of f(max of window A) and f(max of window B), two windows of n iid N(mu, sigma^2) values
    that share `shared` of them, for a nondecreasing f (max f(X_i) = f(max X_i)). With S the max of the shared
    values, U and V of the others, independent: E[f(max(S, U)) f(max(S, V))] = E[g(S)^2], g(s) = E f(max(s, U)) =
    f(s) F(s)^m + int_s^inf f(u) dF^m(u), m = n - shared; one-dimensional integrals by the trapezoid rule."""
    if shared >= n:
        return 1.0
    z, w = _grid()
    cdf = torch.special.ndtr(z)
    with torch.no_grad():
        f = fn(mu + sigma * z).double()
    m = n - shared
    tail = f * m * cdf ** (m - 1) * w  # f(u) dF^m(u) on the grid (w holds the density and the step)
    above = tail.flip(0).cumsum(0).flip(0) - tail / 2  # int_s^inf, the trapezoid's half weight at s itself
    g = f * cdf**m + above
    both = (g * g * shared * cdf ** (shared - 1) * w).sum()
    density = n * cdf ** (n - 1) * w
    mean, second = (f * density).sum(), (f * f * density).sum()
    var = second - mean * mean
    return float((both - mean * mean) / var) if var > 0 else 0.0

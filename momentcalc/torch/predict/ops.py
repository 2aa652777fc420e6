"""The rules of predict(): for each kind of layer, the law of its output from the laws of its inputs, and the
factor by which it multiplies the mean squared gradient on its way back (per input, pooled over elements).

Assumptions, stated once: values are independent across the batch and, within a channel, identically
distributed across positions; the inputs of a linear map or convolution are independent of each other except for
the spatial correlation law.acf carries (correlation.py); the two inputs of an addition or a product are
independent; the input of an activation is Gaussian (a sum of many weighted inputs), with one mean and variance
for all its channels (the law of one value drawn from the whole tensor: exact where the channel means are
themselves Gaussian, as random weights make them), unless it is an elementwise function of such a Gaussian
(law.chain), which is then followed exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..moments import moments
from . import correlation
from .law import Law, uniform


class Unmodeled(Exception):
    """A node predict() cannot model: the message says what it would need."""


@dataclass(frozen=True)
class Out:
    law: object  # a Law, or a tuple of them (chunk, split)
    back: tuple[float, ...]  # the gradient's factor for each input that is data, in argument order
    note: str = ""


# ---- maps: a law as per-element mean and variance tensors of batch 1, for ops that move values around
def maps(law: Law) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1,) + tuple(law.shape[1:])
    view = [1] * len(shape)
    view[law.axis] = law.channels
    mean = law.mean.reshape(view).expand(shape).clone()
    var = law.var.reshape(view).expand(shape).clone()
    spatial = law.axis % len(shape) == 1
    if law.offset is not None and spatial and tuple(law.offset.shape) == shape[1:]:
        # the channel's variance holds the spread of its position means: what is left is within positions
        spread = law.offset.reshape(law.channels, -1).pow(2).mean(1)
        mean = mean + law.offset[None]
        var = (var - spread.reshape(view)).clamp(min=0)
    if law.profile is not None and spatial and tuple(law.profile.shape) == shape[1:]:
        var = var * law.profile[None]
    return mean, var


def profile_of(var_map: torch.Tensor) -> torch.Tensor | None:
    """Each position's variance over its channel's mean, for (1, C, *spatial) maps of 2 or 3 spatial axes."""
    if var_map.dim() < 4:
        return None
    flat = var_map[0].reshape(var_map.shape[1], -1)
    mean = flat.mean(1).clamp(min=1e-300)
    return var_map[0] / mean.reshape((-1,) + (1,) * (var_map.dim() - 2))


def offset_of(mean_map: torch.Tensor) -> torch.Tensor | None:
    """Each position's mean less its channel's, for (1, C, *spatial) maps of 2 or 3 spatial axes."""
    if mean_map.dim() < 4:
        return None
    flat = mean_map[0].reshape(mean_map.shape[1], -1)
    return mean_map[0] - flat.mean(1).reshape((-1,) + (1,) * (mean_map.dim() - 2))


def from_maps(mean: torch.Tensor, var: torch.Tensor, shape, axis: int, acf=None) -> Law:
    """The per-channel law of per-element maps: channel means, and within-channel variance plus the spread of
    the element means around them; for maps, each position's variance and mean relative to its channel's."""
    if mean.dim() < 2:
        mean, var, axis = mean.reshape(1, -1), var.reshape(1, -1), -1
    m = mean.movedim(axis, 0).reshape(mean.shape[axis], -1)
    v = var.movedim(axis, 0).reshape(var.shape[axis], -1)
    spatial = axis % var.dim() == 1
    profile = profile_of(var) if spatial else None
    offset = offset_of(mean) if spatial else None
    return Law(m.mean(1), v.mean(1) + m.var(1, unbiased=False), axis, tuple(shape), None, acf, profile, offset)


# ---- linear maps
def linear(law: Law, weight: torch.Tensor, bias, shape) -> Out:
    law = law.on_axis(-1)
    w = weight.detach().double()
    mean = w @ law.mean + (0.0 if bias is None else bias.detach().double())
    var = (w * w) @ law.var
    return Out(Law(mean, var, -1, tuple(shape)), ((w * w).sum().item() / w.shape[1],))


def conv(law: Law, weight, bias, run, groups: int, stride, dilation, shape) -> Out:
    """A convolution run(x, w, b) (the module's own, so padding modes are its own) on the mean and variance maps:
    exact borders for uncorrelated input; with law.acf, the interior variance from the filters' autocorrelation,
    scaled by the same border share."""
    law = law.on_axis(1)
    w = weight.detach().double()
    m_map, v_map = maps(law)
    mean_map = run(m_map, w, None if bias is None else bias.detach().double())
    var_map = run(v_map, w * w, None)
    note = ""
    c_out = mean_map.shape[1]
    flat_mean = mean_map[0].reshape(c_out, -1)
    var_c = var_map[0].reshape(c_out, -1).mean(1)
    acf = None
    if law.acf is not None and w.dim() == 4:
        iid = _iid_interior(w, law.var, groups)
        corr, acf = correlation.conv_covariance(w, law.var, law.acf, groups, stride, dilation)
        var_c = corr * torch.where(iid > 0, var_c / iid, torch.ones_like(iid))  # the borders' share kept
        if _off_centre(law.acf) > 0.05:
            note = "spatially correlated input (the filters' autocorrelation meets it)"
    out = Law(flat_mean.mean(1), var_c + flat_mean.var(1, unbiased=False), 1, tuple(shape), None, acf)
    out = replace(out, profile=profile_of(var_map), offset=offset_of(mean_map))
    return Out(out, (_conv_back(w, run, law.shape),), note)


def _off_centre(acf: torch.Tensor) -> float:
    """The largest correlation at an offset other than 0, over channels."""
    off = acf.clone()
    off[:, off.shape[1] // 2, off.shape[2] // 2] = 0.0
    return float(off.abs().max())


def _iid_interior(w: torch.Tensor, var_in: torch.Tensor, groups: int) -> torch.Tensor:
    c_out, c_in_group = w.shape[:2]
    group_of = torch.arange(c_out) // (c_out // groups)
    channel = group_of[:, None] * c_in_group + torch.arange(c_in_group)[None, :]
    return ((w * w).flatten(2).sum(2) * var_in[channel]).sum(1)


def _conv_back(w: torch.Tensor, run, in_shape) -> float:
    """Mean squared gradient at the input for unit mean squared gradient at the output: the transposed
    convolution of squared filters, stride included (iid gradients), at an interior position."""
    x = torch.ones((1,) + tuple(in_shape[1:]), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        y = run(x, w * w, None)
        (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    # the interior, at least a kernel from every border, so that every stride phase counts: a border's smaller
    # share stays at the border, it does not compound layer by layer
    index = [0, slice(None)]
    for side, k in zip(g.shape[2:], w.shape[2:]):
        index.append(slice(k, side - k) if side > 2 * k + 1 else slice(None))
    return g[tuple(index)].mean().item()


def avgpool(law: Law, kernel, stride, padding, shape) -> Out:
    """Average pooling as the depthwise convolution of 1 / k^2 filters (padding zeros counted)."""
    law = law.on_axis(1)
    dims = len(law.shape) - 2
    kernel, stride, padding = (_tuple(v, dims) for v in (kernel, stride, padding))
    channels = law.channels
    w = torch.ones((channels, 1) + kernel, dtype=torch.float64) / math.prod(kernel)
    conv_fn = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    run = lambda x, weight, b: conv_fn(x, weight, b, stride, padding, 1, channels)  # noqa: E731
    return conv(law, w, None, run, channels, stride, (1,) * dims, shape)


def global_average(law: Law, shape) -> Out:
    """The mean over every position of a map: variance by the positions' count, less where they correlate."""
    law = law.on_axis(1)
    spatial = law.shape[2:]
    count = math.prod(spatial)
    if len(spatial) == 2 and law.acf is not None:
        factor = correlation.global_average_factor(law.acf, *spatial)
    else:
        factor = torch.full_like(law.var, 1.0 / count)
    out = Law(law.mean.clone(), law.var * factor, 1 if len(shape) > 1 else -1, tuple(shape))
    return Out(out, (1.0 / count**2,))


def maxpool(law: Law, kernel, stride, out_shape) -> Out:
    """The max of n = prod(kernel) values: per channel m + sqrt(v) (max of n N(0, 1)) for Gaussian input, the
    exact pipeline 'f | maxpool(n=N)' after an activation f; interior windows of independent values."""
    dims = len(law.shape) - 2
    n = math.prod(_tuple(kernel, dims))
    law = law.on_axis(1)
    if law.chain is not None:
        spec, mu, sigma = law.chain
        m = moments(f"{spec} | maxpool(n={n})", mu, sigma)
        out = uniform(m.mean, m.std**2, out_shape, 1)
        means = m.mean + (law.mean - law.pooled_mean)  # a max moves with its channel's shift
        between = float(means.var(unbiased=False))
        if 0 < between < m.std**2:
            out = replace(out, mean=means, var=torch.full_like(means, m.std**2 - between))
    else:
        m = moments(f"maxpool(n={n})")
        std = law.var.clamp(min=0).sqrt()
        out = Law(law.mean + std * m.mean, law.var * m.std**2, 1, tuple(out_shape))
    if law.profile is not None and len(out_shape) == 4:
        pooled = F.adaptive_avg_pool2d(law.profile[None], tuple(out_shape[2:]))
        out = replace(out, profile=profile_of(pooled))
    note = ""
    if law.acf is not None and len(out_shape) == 4:
        out = replace(out, acf=_maxpool_acf(law, _tuple(kernel, 2), _tuple(stride, 2), out.channels))
        if _off_centre(law.acf) > 0.05:
            note = "correlated input: the window constants are those of independent values"
    return Out(out, (math.prod(out_shape) / math.prod(law.shape),), note)


def _maxpool_acf(law: Law, kernel, stride, channels: int) -> torch.Tensor:
    """The correlation of window maxima t windows apart: where the windows overlap (a 3x3 pool of stride 2 shares 3
    of 9 values), that of maxima of independent values sharing some (correlation.overlapping_max_correlation, for
    the Gaussian before a relu, else the law's own Gaussian: other activations approximately); where they do not,
    about what their inputs s t apart have."""
    fn, mu, sigma = (lambda t: t), law.pooled_mean, math.sqrt(max(law.pooled_var, 1e-300))
    if law.chain is not None:
        spec, mu, sigma = law.chain
        fn = torch.relu if spec == "relu" else fn
    centre = law.acf.shape[1] // 2
    acf = torch.zeros_like(law.acf)
    (ky, kx), (sy, sx) = kernel, stride
    n = ky * kx
    for ty in range(-centre, centre + 1):
        for tx in range(-centre, centre + 1):
            shared = max(0, ky - sy * abs(ty)) * max(0, kx - sx * abs(tx))
            if shared:
                acf[:, centre + ty, centre + tx] = correlation.overlapping_max_correlation(fn, mu, sigma, n, shared)
            elif abs(sy * ty) <= centre and abs(sx * tx) <= centre:
                acf[:, centre + ty, centre + tx] = law.acf[:, centre + sy * ty, centre + sx * tx]
    return acf[:1].expand(channels, -1, -1).clone() if channels != acf.shape[0] else acf


def _tuple(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


# ---- activations
def activation(law: Law, spec: str, fn, shape) -> Out:
    """f at the Gaussian it sees, by momentcalc's exact constants; backward E[f'(X)^2] at that law."""
    mu, var = law.pooled_mean, law.pooled_var
    if not var > 1e-300:
        raise Unmodeled("an input with variance > 0 (this one is constant)")
    sigma = math.sqrt(var)
    here = moments(spec, mu, sigma)
    if law.chain is not None:
        inner, mu0, sigma0 = law.chain
        chained = f"{inner} | {spec}"
        m = moments(chained, mu0, sigma0)
        chain, note = (chained, mu0, sigma0), f"{chained} at N({mu0:.4g}, {sigma0:.4g}^2)"
    else:
        m, chain, note = here, (spec, mu, sigma), f"{spec} at N({mu:.4g}, {sigma:.4g}^2)"
    if here.grad_sq is None:
        raise Unmodeled(f"a backward constant E[f'(X)^2] for {spec!r}")
    if law.chain is None and _is_map(law, shape):
        return Out(_activation_map(law, fn, here, shape, (spec, mu, sigma)), (here.grad_sq,), note)
    within = math.sqrt(max(float(law.var.mean()), 1e-300))
    acf = correlation.activation_acf(fn, mu, within, law.acf)
    out = replace(uniform(m.mean, m.std**2, shape, law.axis, chain, acf), profile=law.profile)
    spread = float(law.mean.var(unbiased=False))
    if spread > 0 and law.chain is None:
        # the total is exact; the channels keep their order: each output mean follows its input mean by E[f']
        slope = correlation.mean_slope(fn, mu, sigma)
        means = m.mean + slope * (law.mean - mu)
        between = float(means.var(unbiased=False))
        if between < m.std**2:
            out = replace(out, mean=means, var=torch.full_like(means, m.std**2 - between))
    return Out(out, (here.grad_sq,), note)


def _is_map(law: Law, shape) -> bool:
    return len(shape) >= 4 and law.axis % len(shape) == 1 and tuple(law.shape) == tuple(shape)


def _activation_map(law: Law, fn, here, shape, chain) -> Law:
    """f of a map, position by position and channel by channel: each element is Gaussian (a sum of many weighted
    inputs) with its own mean and variance (a channel's mean, a border's smaller variance and its own mean), and its
    moments are the trapezoid rule's, less that rule's error at the pooled law, where momentcalc's exact constant
    `here` is known. The pooled law of a channel's values is not Gaussian: the channel means and the borders make
    it a mixture, which one exact constant at the pooled law misses (by 10-20 % in a channel's variance, 3-8 % in
    the next layer's, compounding over a deep plain CNN)."""
    m_map, v_map = maps(law)
    first, second = correlation.element_moments(fn, m_map, v_map)
    _, mu, sigma = chain
    q1, q2 = correlation.element_moments(fn, torch.tensor(mu), torch.tensor(sigma * sigma))
    exact_second = here.std**2 + here.mean**2
    first = first + (here.mean - q1)
    second = second * (exact_second / q2 if q2 > 0 else 1.0)
    within = v_map[0].reshape(law.channels, -1).mean(1).clamp(min=1e-300).sqrt()
    acf = correlation.activation_acf(fn, law.mean, within, law.acf)
    out = from_maps(first, (second - first * first).clamp(min=0), shape, 1, acf)
    return replace(out, chain=chain)


# ---- dropout, affine, norms
def dropout(law: Law, p: float, training: bool) -> Out:
    if not training or p == 0:
        return Out(law, (1.0,))
    keep = 1.0 - p
    var = (law.var + law.mean**2) / keep - law.mean**2
    acf = None
    if law.acf is not None:  # independent masks: the covariance at other offsets stays, the variance grows
        acf = law.acf * (law.var / var.clamp(min=1e-300))[:, None, None]
        acf[:, acf.shape[1] // 2, acf.shape[2] // 2] = 1.0
    return Out(replace(law, var=var, chain=None, acf=acf), (1.0 / keep,))


def channel_affine(law: Law, scale: torch.Tensor, shift: torch.Tensor, axis: int) -> Law:
    law = law.on_axis(axis)
    offset = None
    if law.offset is not None:
        offset = law.offset * scale.reshape((-1,) + (1,) * (law.offset.dim() - 1))
    return replace(law, mean=law.mean * scale + shift, var=law.var * scale * scale, chain=None, offset=offset)


def batchnorm(law: Law, weight, bias, running_mean, running_var, eps: float, use_batch: bool) -> Out:
    """Eval: the affine map of the running statistics; train: each channel to mean 0, variance v / (v + eps)."""
    law = law.on_axis(1)
    c = law.channels
    w = torch.ones(c, dtype=torch.float64) if weight is None else weight.detach().double()
    b = torch.zeros(c, dtype=torch.float64) if bias is None else bias.detach().double()
    if use_batch:
        centre, var = law.mean, law.var
    else:
        centre, var = running_mean.detach().double(), running_var.detach().double()
    scale = w / (var + eps).sqrt()
    return Out(channel_affine(law, scale, b - centre * scale, 1), ((scale * scale).mean().item(),))


def feature_norm(law: Law, weight, bias, eps: float, centred: bool, shape) -> Out:
    """LayerNorm (centred) and RMSNorm over the last axis, for many features: each value divided by the root of the
    features' mean square (about their mean for LayerNorm), which is close to its expectation."""
    law = law.on_axis(-1)
    centre = law.pooled_mean if centred else 0.0
    spread = law.pooled_var if centred else law.second_moment
    s = math.sqrt(spread + eps)
    n = law.channels
    w = torch.ones(n, dtype=torch.float64) if weight is None else weight.detach().double().reshape(-1)[:n]
    b = torch.zeros(n, dtype=torch.float64) if bias is None else bias.detach().double().reshape(-1)[:n]
    out = channel_affine(replace(law, mean=law.mean - centre), w / s, b, -1)
    return Out(replace(out, shape=tuple(shape)), ((w * w).mean().item() / (s * s),))


def groupnorm(law: Law, groups: int, weight, bias, eps: float) -> Out:
    """GroupNorm: each group of channels (all its positions) to mean 0 and unit mean square, then the affine."""
    law = law.on_axis(1)
    c = law.channels
    m, v = law.mean.reshape(groups, -1), law.var.reshape(groups, -1)
    gm = m.mean(1, keepdim=True)
    gv = v.mean(1, keepdim=True) + m.var(1, unbiased=False, keepdim=True)
    s = (gv + eps).sqrt()
    w = torch.ones(c, dtype=torch.float64) if weight is None else weight.detach().double()
    b = torch.zeros(c, dtype=torch.float64) if bias is None else bias.detach().double()
    per_channel = s.expand(-1, c // groups).reshape(-1)
    offset = None if law.offset is None else law.offset / per_channel.reshape((-1,) + (1,) * (law.offset.dim() - 1))
    normed = replace(law, mean=((m - gm) / s).reshape(-1), var=(v / s / s).reshape(-1), chain=None, offset=offset)
    out = channel_affine(normed, w, b, 1)
    return Out(out, ((w * w / (s * s).expand(-1, c // groups).reshape(-1)).mean().item(),))


# ---- several inputs
def add(a: Law, b: Law, alpha: float, shape) -> Out:
    """a + alpha b of independent inputs (a residual branch and its shortcut)."""
    for law, other, factor in ((b, a, 1.0), (a, b, alpha)):
        if not law.var.any() and not law.mean.any() and tuple(other.shape) == tuple(shape):
            # a branch that is exactly 0 (a zero-initialised last BatchNorm): the sum is the other input, which keeps
            # its chain (a relu of a relu output is that output)
            return Out(other.scaled(factor) if factor != 1.0 else other, (1.0, alpha * alpha))
    axis = a.axis if a.channels >= b.channels else b.axis
    a, b = a.on_axis(axis), b.on_axis(axis)
    acf = _mix_acf(a, b, alpha)
    law = Law(a.mean + alpha * b.mean, a.var + alpha * alpha * b.var, axis, tuple(shape), None, acf)
    if any(x.profile is not None or x.offset is not None for x in (a, b)) and axis % len(shape) == 1:
        # position by position: the means add (a pattern of border means in both adds up, not in quadrature)
        (ma, va), (mb, vb) = maps(a), maps(b)
        if ma.shape == mb.shape:
            law = from_maps(ma + alpha * mb, va + alpha * alpha * vb, shape, axis, acf)
    return Out(law, (1.0, alpha * alpha))


def _mix_acf(a: Law, b: Law, alpha: float):
    """The correlation of a sum of independent maps: their covariances add, channel by channel."""
    if a.acf is None or b.acf is None or a.acf.shape != b.acf.shape:
        return None
    va, vb = a.var[:, None, None], alpha * alpha * b.var[:, None, None]
    return (va * a.acf + vb * b.acf) / (va + vb).clamp(min=1e-300)


def multiply(a: Law, b: Law, shape) -> Out:
    """a * b of independent inputs (a gated unit x * silu(g), a squeeze-excitation gate): per channel
    E[ab] = E[a] E[b], E[(ab)^2] = E[a^2] E[b^2]."""
    axis = a.axis if a.channels >= b.channels else b.axis
    a, b = a.on_axis(axis), b.on_axis(axis)
    back = (b.second_moment, a.second_moment)
    if math.prod(a.shape[2:]) < math.prod(b.shape[2:]):
        a, b = b, a  # the map first, a gate of fewer positions second
    mean = a.mean * b.mean
    var = (a.var + a.mean**2) * (b.var + b.mean**2) - mean**2
    acf = _product_acf(a, b)
    return Out(Law(mean, var, axis, tuple(shape), None, acf), back)


def _product_acf(a: Law, b: Law):
    """Cov(a_p b_p, a_q b_q) = E[a_p a_q] E[b_p b_q] - E[a]^2 E[b]^2 for independent a, b; a gate of one
    position per channel (b of spatial size 1) has E[b_p b_q] = E[b^2]."""
    if a.acf is None or len(a.shape) != 4:
        return None
    var = (a.var + a.mean**2) * (b.var + b.mean**2) - (a.mean * b.mean) ** 2
    ea = a.var[:, None, None] * a.acf + (a.mean**2)[:, None, None]
    if b.acf is not None and b.acf.shape == a.acf.shape and b.shape[2:] == a.shape[2:]:
        eb = b.var[:, None, None] * b.acf + (b.mean**2)[:, None, None]
    else:
        eb = (b.var + b.mean**2)[:, None, None].expand_as(ea)
    cov = ea * eb - ((a.mean * b.mean) ** 2)[:, None, None]
    return cov / var.clamp(min=1e-300)[:, None, None]


def constant_times(law: Law, c: torch.Tensor, shape) -> Out:
    """law * c for a tensor c that is not data (a layer scale, a mask): per channel, its mean and mean square."""
    cbar, c2 = _per_channel(law, c, shape)
    mean = law.mean * cbar
    var = (law.var + law.mean**2) * c2 - mean**2
    return Out(Law(mean, var, law.axis, tuple(shape), None, law.acf, law.profile), (float(c2.mean()),))


def constant_plus(law: Law, c: torch.Tensor, shape) -> Out:
    cbar, c2 = _per_channel(law, c, shape)
    law = Law(law.mean + cbar, law.var + (c2 - cbar**2), law.axis, tuple(shape), None, law.acf, law.profile)
    return Out(law, (1.0,))


def _per_channel(law: Law, c: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor]:
    full = c.detach().double().expand(tuple(shape)) if c.dim() else c.detach().double().expand(tuple(shape))
    moved = full.movedim(law.axis, 0).reshape(full.shape[law.axis], -1)
    return moved.mean(1), moved.pow(2).mean(1)


def concatenate(laws: list[Law], dim: int, shape) -> Out:
    """Along the channel axis: the channels side by side; along another: a mixture, channel by channel."""
    axis = laws[0].axis
    ndim = len(shape)
    if dim % ndim == axis % ndim:
        acfs = [x.acf for x in laws]
        acf = torch.cat(acfs) if all(c is not None for c in acfs) else None
        law = Law(torch.cat([x.mean for x in laws]), torch.cat([x.var for x in laws]), axis, tuple(shape), None, acf)
        return Out(law, (1.0,) * len(laws))
    laws = [x.on_axis(axis) for x in laws]
    sizes = torch.tensor([float(x.shape[dim]) for x in laws], dtype=torch.float64)
    share = sizes / sizes.sum()
    mean = sum(s * x.mean for s, x in zip(share, laws))
    second = sum(s * (x.var + x.mean**2) for s, x in zip(share, laws))
    return Out(Law(mean, second - mean**2, axis, tuple(shape)), (1.0,) * len(laws))

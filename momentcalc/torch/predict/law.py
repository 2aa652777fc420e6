"""The law of one tensor as predict() carries it: per-channel mean and variance, what it is a function of, and
its spatial correlation.

A tensor of shape (N, C, ...) (or (N, ..., F) on the last axis) is taken as iid across the batch and, within a
channel, identically distributed across positions. Its law is the channel means m_c and within-channel variances
v_c; over the whole tensor (what a hook measures) the mean is avg m_c and the variance avg v_c + var_c(m_c).
`chain` says the tensor is spec(X) elementwise of an iid Gaussian X ~ N(mu, sigma^2), so that a pool or another
activation after it is one exact momentcalc pipeline. `acf` (maps of 2 spatial axes only) is each channel's
correlation of two of its values at an offset (dy, dx), |dy|, |dx| <= RADIUS (0 beyond); None: uncorrelated.
`profile` and `offset` (maps) are each position's variance and mean relative to its channel's (zero-padded borders).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

RADIUS = 3  # offsets of the correlation kept, per axis


@dataclass(frozen=True)
class Law:
    mean: torch.Tensor  # (C,) float64
    var: torch.Tensor  # (C,) float64, within-channel
    axis: int  # the channel axis: 1, or -1 (features last)
    shape: tuple[int, ...]  # the real tensor's shape, batch first
    chain: tuple[str, float, float] | None = None  # (spec, mu, sigma): the tensor is spec(X), X ~ N(mu, sigma^2)
    acf: torch.Tensor | None = None  # (C, 2R+1, 2R+1) correlation at offsets; None: uncorrelated positions
    # (C, *spatial) each position's within-channel variance over the channel's (mean 1); None: alike. Zero-padded
    # borders hold less variance, and that stays at the borders: pooled into the channel it would compound
    profile: torch.Tensor | None = None
    # (C, *spatial) each position's mean less its channel's (the expectation over inputs, not a batch's), None: alike.
    # Zero padding gives the borders their own means; a convolution of that pattern is not one of iid values, and
    # the variance it puts into the next layer is missed by a law that pools it into the channel's variance (5 %
    # per 3x3 layer on a 16x16 map, compounding)
    offset: torch.Tensor | None = None

    @property
    def pooled_mean(self) -> float:
        return float(self.mean.mean())

    @property
    def pooled_var(self) -> float:
        """Variance of one value drawn from the whole tensor: within channels plus between channel means."""
        return float(self.var.mean() + self.mean.var(unbiased=False))

    @property
    def second_moment(self) -> float:
        return self.pooled_var + self.pooled_mean**2

    @property
    def channels(self) -> int:
        return self.mean.numel()

    def on_axis(self, axis: int) -> Law:
        """The law with channels along axis: itself, or its pooled value repeated along the new axis."""
        if _same_axis(self.axis, axis, len(self.shape)) and self.mean.numel() == self.shape[axis]:
            return self
        acf = None
        if self.acf is not None and len(self.shape) == 4 and axis % 4 == 1:
            weights = self.var / self.var.sum() if self.var.sum() > 0 else torch.full_like(self.var, 1 / self.channels)
            acf = (weights[:, None, None] * self.acf).sum(0, keepdim=True).expand(self.shape[1], -1, -1).clone()
        return uniform(self.pooled_mean, self.pooled_var, self.shape, axis, self.chain, acf)

    def scaled(self, a: float, b: float = 0.0) -> Law:
        """The law of a x + b (a, b numbers)."""
        offset = None if self.offset is None else a * self.offset
        return replace(self, mean=a * self.mean + b, var=a * a * self.var, chain=None, offset=offset)


def _same_axis(a: int, b: int, ndim: int) -> bool:
    return a % ndim == b % ndim


def uniform(mean: float, var: float, shape, axis: int, chain=None, acf=None) -> Law:
    """A law with every channel alike."""
    channels = shape[axis] if len(shape) > 1 else 1
    ones = torch.ones(channels, dtype=torch.float64)
    return Law(ones * mean, ones * max(var, 0.0), axis if len(shape) > 1 else -1, tuple(shape), chain, acf)


def channel_axis(t: torch.Tensor, features_last: bool = False) -> int:
    """1 for (N, C, ...) maps and (N, F) vectors; -1 for (N, T, F) sequences (features_last)."""
    return -1 if t.dim() <= 2 or features_last else 1


def measured(t: torch.Tensor, axis: int) -> Law:
    """The law of a real tensor: its channel means and variances, and its spatial correlation (4-D maps)."""
    x = t.detach().double()
    if x.dim() < 2:
        x = x.reshape(-1, 1)
        axis = -1
    moved = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    mean, var = moved.mean(1), moved.var(1, unbiased=False)
    acf = measured_acf(x) if x.dim() == 4 and axis % 4 == 1 else None
    return Law(mean, var, axis, tuple(t.shape), None, acf)


def delta(channels: int) -> torch.Tensor:
    """The correlation of uncorrelated positions: 1 at offset 0, 0 elsewhere, for each channel."""
    side = 2 * RADIUS + 1
    acf = torch.zeros(channels, side, side, dtype=torch.float64)
    acf[:, RADIUS, RADIUS] = 1.0
    return acf


def measured_acf(x: torch.Tensor) -> torch.Tensor:
    """Each channel's correlation of a (N, C, H, W) map's channel-centred values at offsets up to RADIUS."""
    xc = x - x.mean(dim=(0, 2, 3), keepdim=True)
    var = xc.pow(2).mean(dim=(0, 2, 3))
    acf = delta(x.shape[1])
    height, width = x.shape[2], x.shape[3]
    for dy in range(-RADIUS, RADIUS + 1):
        for dx in range(-RADIUS, RADIUS + 1):
            if abs(dy) >= height or abs(dx) >= width or dy == dx == 0:
                continue
            a = xc[:, :, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)]
            b = xc[:, :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
            acf[:, dy + RADIUS, dx + RADIUS] = (a * b).mean(dim=(0, 2, 3)) / var.clamp(min=1e-300)
    return acf

"""The input gradients of 2-D conv and pooling layers, in plain numpy: what backward's simulation runs.

The backward simulation (``backward.simulate_map``, the "simulation ... agrees"
line of ``momentcalc backward``) computes its gradients with these: the conv's
two ways (the scatter adjoint of conv2d, and the full correlation with the
rotated kernel), max pooling's routing to the argmax and average pooling's
even spread. The tests use them as a slow reference too, together with the
forward pools that only they need (tests/reference_conv.py).

"Convolution" is cross-correlation, as in deep learning frameworks:
out[o, y, x] = sum_{c, a, b} w[o, c, a, b] * xpad[c, y*s + a*d, x*s + b*d].

Shapes: conv input (..., Cin, H, W), weight (..., Cout, Cin, K, K) (a weight
without leading dims is shared by the whole batch), output (..., Cout, OH, OW).
A 2-D input and a 2-D kernel are taken as one channel. Pool inputs and
gradients are (..., H, W). Every function loops over the K*K kernel taps and
slices the padded input with the stride, so each tap's contribution is one
strided view.
"""

from __future__ import annotations

import numpy as np

from .convshape import conv_shape


def pad2d(x: np.ndarray, p: int, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of x with p copies of value on each side."""
    width = [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]
    return np.pad(x, width, constant_values=value)


def _tap(a: int, b: int, o: int, s: int, d: int) -> tuple:
    """Index of the padded inputs that kernel tap (a, b) reads, for all o x o outputs."""
    return (..., slice(a * d, a * d + s * (o - 1) + 1, s), slice(b * d, b * d + s * (o - 1) + 1, s))


def _as_channels(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Promote a 2-D input and 2-D kernel to one channel each; say if we did."""
    if w.ndim == 2:
        return x[..., None, :, :], w[None, None], True
    return x, w, False


def _side(n: int, k: int, s: int, p: int, d: int, pool: bool = False) -> int:
    return conv_shape(n, k, s, p, d, pool=pool).output


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1) -> np.ndarray:
    """Cross-correlate x with w (square input and kernel), zero padding."""
    x, w, squeeze = _as_channels(np.asarray(x, float), np.asarray(w, float))
    k = w.shape[-1]
    o = _side(x.shape[-1], k, stride, padding, dilation)
    xp = pad2d(x, padding)
    out = 0.0
    for a in range(k):
        for b in range(k):
            out = out + np.einsum("...oc,...chw->...ohw", w[..., a, b], xp[_tap(a, b, o, stride, dilation)])
    return out[..., 0, :, :] if squeeze else out


def conv2d_input_grad_scatter(
    g: np.ndarray, w: np.ndarray, size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """Gradient w.r.t. the conv input as the plain adjoint of conv2d.

    Each upstream gradient g[o, y, x] is scattered back, times w[o, c, a, b],
    onto the input position that tap (a, b) of output (y, x) read.
    """
    g, w, squeeze = _as_channels(np.asarray(g, float), np.asarray(w, float))
    k, o = w.shape[-1], g.shape[-1]
    batch = np.broadcast_shapes(g.shape[:-3], w.shape[:-4])
    gxp = np.zeros(batch + (w.shape[-3], size + 2 * padding, size + 2 * padding))
    for a in range(k):
        for b in range(k):
            gxp[_tap(a, b, o, stride, dilation)] += np.einsum("...oc,...ohw->...chw", w[..., a, b], g)
    gx = gxp[..., padding : padding + size, padding : padding + size]
    return gx[..., 0, :, :] if squeeze else gx


def dilate2d(g: np.ndarray, s: int) -> np.ndarray:
    """Insert s - 1 zeros between neighbouring entries of the last two axes."""
    o = g.shape[-1]
    out = np.zeros(g.shape[:-2] + ((o - 1) * s + 1,) * 2)
    out[..., ::s, ::s] = g
    return out


def conv2d_input_grad_rot180(
    g: np.ndarray, w: np.ndarray, size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """Gradient w.r.t. the conv input as a full correlation with the rotated kernel.

    Dilate g with stride - 1 zeros, pad it with k_eff - 1 zeros (full padding),
    and cross-correlate at stride 1 with the kernel rotated 180 degrees, its
    input and output channels swapped (and its taps dilated). That covers the
    padded input up to the last position any window reads; the rest (rows the
    floor skipped) gets zero, and the padding is cropped off.
    """
    g, w, squeeze = _as_channels(np.asarray(g, float), np.asarray(w, float))
    k = w.shape[-1]
    k_eff = dilation * (k - 1) + 1
    w_rot = np.swapaxes(w, -4, -3)[..., ::-1, ::-1]
    covered = conv2d(dilate2d(g, stride), w_rot, stride=1, padding=k_eff - 1, dilation=dilation)
    n = size + 2 * padding
    rest = n - covered.shape[-1]
    gxp = np.pad(covered, [(0, 0)] * (covered.ndim - 2) + [(0, rest), (0, rest)])
    gx = gxp[..., padding : padding + size, padding : padding + size]
    return gx[..., 0, :, :] if squeeze else gx


def windows(xp: np.ndarray, k: int, o: int, s: int) -> np.ndarray:
    """Stack the k*k taps of every window on a new last axis: (..., o, o, k*k)."""
    return np.stack([xp[_tap(a, b, o, s, 1)] for a in range(k) for b in range(k)], axis=-1)


def maxpool2d_input_grad(
    x: np.ndarray, g: np.ndarray, k: int, stride: int | None = None, padding: int = 0
) -> np.ndarray:
    """Route each upstream gradient to the (first) argmax of its window."""
    x, g = np.asarray(x, float), np.asarray(g, float)
    s = k if stride is None else stride
    o = g.shape[-1]
    winner = windows(pad2d(x, padding, -np.inf), k, o, s).argmax(axis=-1)
    gxp = np.zeros(pad2d(x, padding).shape)
    for a in range(k):
        for b in range(k):
            gxp[_tap(a, b, o, s, 1)] += np.where(winner == a * k + b, g, 0.0)
    n = x.shape[-1]
    return gxp[..., padding : padding + n, padding : padding + n]


def avg_divisor(n: int, k: int, s: int, p: int, count_include_pad: bool) -> np.ndarray | int:
    """k*k, or the number of real (non-padding) inputs of each window."""
    if count_include_pad:
        return k * k
    o = _side(n, k, s, p, 1, pool=True)
    return windows(pad2d(np.ones((n, n)), p), k, o, s).sum(axis=-1)


def avgpool2d_input_grad(
    g: np.ndarray, size: int, k: int, stride: int | None = None, padding: int = 0, count_include_pad: bool = True
) -> np.ndarray:
    """Spread each upstream gradient evenly (divided by its divisor) over its window."""
    g = np.asarray(g, float)
    s = k if stride is None else stride
    o = g.shape[-1]
    share = g / avg_divisor(size, k, s, padding, count_include_pad)
    gxp = np.zeros(g.shape[:-2] + (size + 2 * padding,) * 2)
    for a in range(k):
        for b in range(k):
            gxp[_tap(a, b, o, s, 1)] += share
    return gxp[..., padding : padding + size, padding : padding + size]

"""The numpy reference conv and pools the tests use: momentcalc.input_grads plus the forward pools.

The package keeps what `momentcalc backward`'s simulation needs (conv and the input gradients);
the forward max and average pools are only a slow reference for the tests, so they live here.
Import it as `reference_conv` (tests/ is on sys.path, see conftest.py).
"""

from __future__ import annotations

import numpy as np

from momentcalc.convshape import conv_shape
from momentcalc.input_grads import (
    avg_divisor,
    avgpool2d_input_grad,
    conv2d,
    conv2d_input_grad_rot180,
    conv2d_input_grad_scatter,
    dilate2d,
    maxpool2d_input_grad,
    pad2d,
    windows,
)

__all__ = [
    "avgpool2d",
    "avgpool2d_input_grad",
    "conv2d",
    "conv2d_input_grad_rot180",
    "conv2d_input_grad_scatter",
    "dilate2d",
    "maxpool2d",
    "maxpool2d_input_grad",
]


def maxpool2d(x: np.ndarray, k: int, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Max over each k x k window; padding is -inf, so it never wins."""
    x = np.asarray(x, float)
    s = k if stride is None else stride
    o = conv_shape(x.shape[-1], k, s, padding, pool=True).output
    return windows(pad2d(x, padding, -np.inf), k, o, s).max(axis=-1)


def avgpool2d(
    x: np.ndarray, k: int, stride: int | None = None, padding: int = 0, count_include_pad: bool = True
) -> np.ndarray:
    """Mean over each k x k window; padding counts as zeros in the sum."""
    x = np.asarray(x, float)
    s = k if stride is None else stride
    n = x.shape[-1]
    o = conv_shape(n, k, s, padding, pool=True).output
    total = windows(pad2d(x, padding), k, o, s).sum(axis=-1)
    return total / avg_divisor(n, k, s, padding, count_include_pad)

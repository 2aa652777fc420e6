"""LP pooling (torch.nn.LPPool1d/2d/3d): y = (sum_i |x_i|^p)^(1/p) over a window of n iid N(mu, sigma^2) inputs.

For p = 2, y = sigma sqrt(X) with X ~ noncentral chi^2_n(lambda), lambda = n mu^2 / sigma^2 (chi at mu = 0):
E[y] = sigma sqrt(2) Gamma((n+1)/2) / Gamma(n/2) 1F1(-1/2; n/2; -lambda/2), E[y^2] = n (sigma^2 + mu^2), and
dy/dx_1 = x_1 / y, so the backward constant of one window is E[x_1^2 / |x|^2] = 1/n (the n shares sum to 1).
These hold in balls (the certified method); other p are sampled. Stride does not matter for one window.
"""

from __future__ import annotations

import math

from .._lazy import lazy_module
from ..catalog import JOINT, OpInfo, Param, register
from ..settings import PARAM_RANGES, WINDOW_MAX

np = lazy_module("numpy")  # only where the op is sampled: `momentcalc list` and --help load no numpy


def _size(op) -> int:
    n = op.get("n")
    return n if n else op.get("k") ** op.get("dims")


def _window_given(values: dict) -> bool:
    """n=N, or k=K with dims; a window of at most WINDOW_MAX values."""
    n, k = values["n"], values["k"]  # 0: not given
    if (n == 0) == (k == 0):
        return False
    return (n or k ** values["dims"]) <= WINDOW_MAX


def _ball_law(op, mu, sigma, lib):
    if op.get("p") != 2.0:
        return None
    n = _size(op)
    half = lib.arb(n) / 2
    lam = lib.arb(n) * lib.arb(mu) ** 2 / lib.arb(sigma) ** 2
    ratio = ((half + lib.arb(1) / 2).lgamma() - half.lgamma()).exp()
    mean = lib.arb(sigma) * lib.arb(2).sqrt() * ratio * (-lam / 2).hypgeom_1f1(lib.arb(-1) / 2, half)
    second = lib.arb(n) * (lib.arb(sigma) ** 2 + lib.arb(mu) ** 2)
    return mean, second - mean * mean, lib.arb(1) / n


def _sample(op, x: np.ndarray):
    p = op.get("p")
    if p == 2.0:  # no power of a float, no rescaling: squares of normals overflow nowhere near
        y = np.sqrt((x * x).sum(axis=1))
        share = np.divide(x[:, 0], y, out=np.zeros_like(y), where=y > 0)
        return y, share * share
    a = np.abs(x)
    top = a.max(axis=1, keepdims=True)
    top[top == 0] = 1.0
    scaled = a / top  # no overflow for large p
    y = top[:, 0] * (scaled**p).sum(axis=1) ** (1 / p)
    share = np.divide(a[:, 0], y, out=np.zeros_like(y), where=y > 0)
    return y, share ** (2 * (p - 1))  # (dy/dx_1)^2 = (|x_1| / y)^(2 (p - 1))


def _rows(x, count, n, p, b, y, g, exp):
    """_sample's compiled form (catalog.OpInfo.rows), its two cases alike."""
    for r in range(count):
        base = r * n
        a1 = abs(x[base])
        if p == 2.0:
            s = 0.0
            for j in range(base, base + n):
                s += x[j] * x[j]
            out = math.sqrt(s)
            share = a1 / out if out > 0.0 else 0.0
            y[r] = out
            g[r] = share * share
            continue
        top = 0.0
        for j in range(base, base + n):
            top = abs(x[j]) if abs(x[j]) > top else top
        top = 1.0 if top == 0.0 else top
        s = 0.0
        for j in range(base, base + n):
            s += (abs(x[j]) / top) ** p
        out = top * s ** (1.0 / p)
        share = a1 / out if out > 0.0 else 0.0
        y[r] = out
        g[r] = share ** (2.0 * (p - 1.0))


register(
    OpInfo(
        "lppool",
        JOINT,
        "(sum |x|^p)^(1/p) over a window of n iid copies of its input (torch's LPPool; p = 2: an L2 pool)",
        (
            Param("p", float, None, lambda v: 1.0 <= v <= 1000.0, "the norm's power, in [1, 1000]"),
            # k or n, as for pooling (0: not given; the spec parser requires a parameter without a default)
            Param("k", int, 0, accepted="window side", bounds=PARAM_RANGES["count"]),
            Param("dims", int, 2, lambda v: v in (1, 2, 3), "1, 2 or 3"),
            Param("n", int, 0, accepted="window size", bounds=PARAM_RANGES["count"]),
        ),
        _window_given,
        f"a window k=K (with dims) or n=N, not both, of at most {WINDOW_MAX} values",
        size=_size,
        sample=_sample,
        rows=_rows,
        rows_args=lambda op: (op.get("p"), 0.0),
        ball_law=_ball_law,
    )
)

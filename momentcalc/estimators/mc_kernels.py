"""Numba kernels for fused Monte Carlo: draw, transform, accumulate, nothing stored.

A pipeline is compiled (by ``montecarlo.compile_program``) into flat
arrays that one kernel interprets, so a handful of kernels serve every
spec and are cached on disk (cache=True) across processes:

* ``codes``/``params``: the elementwise stages, in order;
* ``seg``: stage index bounds of the segments between window ops;
* ``win_kind``/``win_n``: the window ops.

Each call runs one chunk with its own Generator and returns the chunk's
count, mean and central moment sums M2..M4, accumulated as sums of
deviations from a shift (the chunk's first value): the shifted-data
algorithm, sound when the shift is near the mean.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..ops import activations as act

AFFINE = -1  # y = a + b * x
DROPOUT = -2  # y = b * x with probability a, else 0
MAX, AVG = 0, 1

_jit = njit(cache=True, nogil=True, error_model="numpy")
# Inlined at the numba level: a call that passes arrays costs reference counting per value drawn.
_inline = njit(cache=True, nogil=True, error_model="numpy", inline="always")
_relu = _jit(act.relu)
_sigmoid = _jit(act.sigmoid)
_relu_grad = _jit(act.relu_grad)
_sigmoid_grad = _jit(act.sigmoid_grad)


@_jit
def apply_activation(code, a, b, x):
    # One branch per activation in momentcalc.ops.activations.ACTIVATIONS.
    if code == 1:
        return _relu(x, a, b)
    if code == 2:
        return _sigmoid(x, a, b)
    return np.nan


@_inline
def _apply_segment(gen, codes, params, start, stop, v):
    for i in range(start, stop):
        c = codes[i]
        if c == AFFINE:
            v = params[i, 0] + params[i, 1] * v
        elif c == DROPOUT:
            v = params[i, 1] * v if gen.random() < params[i, 0] else 0.0
        else:
            v = apply_activation(c, params[i, 0], params[i, 1], v)
    return v


@_inline
def _one_output(gen, row, codes, params, seg, win_kind, win_n, acc, cnt):
    """One output from the standard normals in `row`: nested windows are filled level by level.

    Monte Carlo fills `row` from the generator; quasi-Monte Carlo passes Sobol
    points. `gen` still draws the dropout masks.
    """
    levels = win_n.shape[0]
    j = 0
    level = -1
    v = np.nan
    # A single return: numba inlines only such functions, and a real call per output costs refcounts.
    while level < levels:
        v = _apply_segment(gen, codes, params, seg[0], seg[1], row[j])
        j += 1
        level = 0
        while level < levels:
            if cnt[level] == 0:
                acc[level] = v
            elif win_kind[level] == MAX:
                if v > acc[level]:
                    acc[level] = v
            else:
                acc[level] += v
            cnt[level] += 1
            if cnt[level] < win_n[level]:
                break
            v = acc[level] if win_kind[level] == MAX else acc[level] / win_n[level]
            cnt[level] = 0
            v = _apply_segment(gen, codes, params, seg[level + 1], seg[level + 2], v)
            level += 1
    return v


@_inline
def _fill_normals(gen, row, mu, sigma):
    for j in range(row.shape[0]):
        row[j] = mu + sigma * gen.standard_normal()


@_inline
def _max_window(gen, mu, sigma, n):
    m = gen.standard_normal()
    for _ in range(n - 1):
        v = gen.standard_normal()
        if v > m:
            m = v
    return mu + sigma * m


@_inline
def _accumulate(sums, i, y):
    """Shifted power sums [shift, s1, s2, s3, s4]; the first value is the shift."""
    if i == 0:
        sums[0] = y
    d = y - sums[0]
    d2 = d * d
    sums[1] += d
    sums[2] += d2
    sums[3] += d2 * d
    sums[4] += d2 * d2


@_jit
def run_chunk(gen, count, mu, sigma, codes, params, seg, win_kind, win_n):
    """Moments of `count` outputs: array [count, mean, M2, M3, M4]."""
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    row = np.empty(np.prod(win_n))
    sums = np.zeros(5)
    # A bare max pool is the most common spec: give it a loop without interpretation.
    bare_max = codes.shape[0] == 0 and win_n.shape[0] == 1 and win_kind[0] == MAX
    for i in range(count):
        if bare_max:
            y = _max_window(gen, mu, sigma, win_n[0])
        else:
            _fill_normals(gen, row, mu, sigma)
            y = _one_output(gen, row, codes, params, seg, win_kind, win_n, acc, cnt)
        _accumulate(sums, i, y)
    return _central(count, sums[0], sums[1], sums[2], sums[3], sums[4])


@_jit
def run_points(gen, points, mu, sigma, codes, params, seg, win_kind, win_n):
    """Moments of the outputs at given standard-normal points, one row per output (QMC)."""
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    row = np.empty(points.shape[1])
    sums = np.zeros(5)
    for i in range(points.shape[0]):
        for j in range(points.shape[1]):
            row[j] = mu + sigma * points[i, j]
        _accumulate(sums, i, _one_output(gen, row, codes, params, seg, win_kind, win_n, acc, cnt))
    return _central(points.shape[0], sums[0], sums[1], sums[2], sums[3], sums[4])


@_jit
def _central(n, shift, s1, s2, s3, s4):
    out = np.zeros(5)
    if n == 0:
        return out
    m = s1 / n
    out[0] = n
    out[1] = shift + m
    out[2] = max(s2 - n * m * m, 0.0)
    out[3] = s3 - 3.0 * m * s2 + 2.0 * n * m**3
    out[4] = max(s4 - 4.0 * m * s3 + 6.0 * m * m * s2 - 3.0 * n * m**4, 0.0)
    return out


@_jit
def sample_outputs(gen, count, mu, sigma, codes, params, seg, win_kind, win_n):
    """The output values themselves, in draw order: for tests against slow references."""
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    row = np.empty(np.prod(win_n))
    out = np.empty(count)
    for i in range(count):
        _fill_normals(gen, row, mu, sigma)
        out[i] = _one_output(gen, row, codes, params, seg, win_kind, win_n, acc, cnt)
    return out

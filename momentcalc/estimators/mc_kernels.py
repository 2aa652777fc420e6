"""Numba kernels for fused Monte Carlo: draw, transform, accumulate, nothing stored; the pipeline interpreter
and the kernels of pipelines with window ops.

A pipeline is compiled (by ``montecarlo.compile_program``) into flat
arrays that one kernel interprets, so a handful of kernels serve every
spec and are cached on disk (cache=True) across processes:

* ``codes``/``params``: the elementwise stages, in order;
* ``seg``: stage index bounds of the segments between window ops;
* ``win_kind``/``win_n``: the window ops.

This module holds those codes, the interpreter's steps that every kernel family shares (a segment of stages, a
window's reduction, one output of nested windows), the window kernels and the quasi-Monte Carlo sums. The chains
without window ops run a block at a time (chain_kernels.py); antithetic pairs of max pools have kernels of their
own (pair_kernels.py).

A chunk kernel runs one chunk from its own SFC64 state (normals.py draws
the normals a block at a time) and gives the chunk's count, a shift (its first
value) and the power sums of the deviations from it to the 4th: the
shifted-data algorithm, sound when the shift is near the mean. moments.py
turns those sums into central moments, in numpy: each function numba compiles
costs a first run time, and that arithmetic needs no loop.
The *_rows batch kernels run a slice of chunks, one row of `out` each.

No kernel allocates: the caller passes its arrays (normals.buffers for the
normals; `out`, zeroed, for the rows). numba compiles each np.empty and
np.zeros of a kernel as a function of its own, ten of them in a first run.

The kernels that apply activations take the activation as their first
argument: ``act(code, a, b, x)`` (f) or ``act_grad(code, a, b, x)`` ((f, f')),
one activation's function from the generated dispatch.py or its full dispatch
on ``code`` for a pipeline that mixes activations. dispatch.py also holds one
small cached wrapper per kernel and activation that passes it in: a first
run compiles the one activation it uses, not all twenty (numba does not
cache a function that takes a function, so the wrappers are written out).

Kernels that call an activation's own function only once per block of
values (the activation kernel chain_kernels.fused_rows, the batched max-pool pair
kernel pair_kernels.one_window_pair_values_rows) are shared instead (jit.shared): one
compiled kernel for all activations, which calls the activation's block or
values loop by its address. A first run of another activation then compiles
only that loop, about a second, not a kernel of its own. Kernels that call
the activation per value stay specialised: the QMC kernel through a
function pointer took 1.3 to 2.6 times as long per point, with the same
bits. (QMC runs programs without dropout a stage at a time instead, each
activation by its scalar loop: qmc._staged.)
"""

from __future__ import annotations

import numpy as np
from numba import types

from ..ops import pooling
from . import normals
from .jit import jit

AFFINE = -1  # y = a + b * x
DROPOUT = -2  # y = b * x with probability a, else 0
# A skip connection around the stages between them (program.skip_program): SKIP_OPEN, the chain's first stage,
# keeps its input; SKIP_CLOSE mixes it in, y = a * kept + b * y (a residual mix). Only the chain kernel knows them.
SKIP_OPEN, SKIP_CLOSE = -3, -4
MAX, AVG, MIN = 0, 1, 2  # window reductions, by REDUCTION_CODES
# Where the max of a chain over a window lies when the chain's shape tells (program.max_at works it out): at the
# window's greatest input (a non-decreasing chain), at its least (non-increasing), or at one of the two (a valley,
# such as gelu). 0: unknown, every input is evaluated. A maxpool over 9 inputs then evaluates the chain 1 or 2
# times instead of 9; for non-decreasing chains whose rounding is monotone too (relu, affine maps with a positive
# factor) the output is the same double.
AT_GREATEST, AT_LEAST = 1, 2
REDUCTION_CODES = {pooling.MAX: MAX, pooling.MEAN: AVG, pooling.MIN: MIN}

_jit = jit(error_model="numpy")
# Inlined at the numba level: a call that passes arrays costs reference counting per value drawn.
# The kernels that take an activation are inlined too, into dispatch.py's wrapper for that
# activation: each function numba compiles costs it a fixed ~0.3 s, and a table build compiles
# twenty activations' kernels.
_inline = jit(error_model="numpy", inline="always")

# The numba types of an activation's own functions where a shared kernel (jit.shared) takes them by address.
_F, _I, _FLOATS, _INTS = types.float64, types.int64, types.float64[::1], types.int64[::1]
ACT = types.FunctionType(_F(_I, _F, _F, _F))
ACT_GRAD = types.FunctionType(types.UniTuple(_F, 2)(_I, _F, _F, _F))
# The block loops of chain_kernels.run_fused_chunk (dispatch.py's block_N), one signature for all: the activation's
# (a, b), then float, float and int64 scratch arrays of a block's length.
BLOCK = types.FunctionType(types.void(_FLOATS, _I, _F, _F, _F, _F, _F, _F, _FLOATS, _FLOATS, _FLOATS, _INTS))
# The values loops of the batched pair kernel (dispatch.py's vector_values_N, else values_N): x[:m] <- f(x[:m]),
# f's (a, b), float, float and int64 scratch.
VALUES_LOOP = types.FunctionType(types.void(_FLOATS, _I, _F, _F, _FLOATS, _FLOATS, _INTS))


@_inline
def apply_segment(act, state, codes, params, start, stop, v):
    for i in range(start, stop):
        c = codes[i]
        if c == AFFINE:
            v = params[i, 0] + params[i, 1] * v
        elif c == DROPOUT:
            v = params[i, 1] * v if normals.next_double(state) < params[i, 0] else 0.0
        else:
            v = act(c, params[i, 0], params[i, 1], v)
    return v


@_inline
def reduce_step(kind, acc, v):
    """A window's accumulator after one more input. max(), not a comparison: LLVM made branches of those,
    mispredicted on random data."""
    if kind == AVG:
        return acc + v
    if kind == MIN:
        return min(acc, v)
    if kind == MAX:
        return max(acc, v)
    # No reduction is a fallback for another: a code without its case is NaN, never computed as a max.
    # (program._window_code refuses a reduction these kernels do not know before any kernel runs.)
    return np.nan


@_inline
def finish_window(kind, acc, n):
    """The window's output from its accumulator over n inputs."""
    return acc / n if kind == AVG else acc


@_inline
def one_output(act, state, row, base, codes, params, seg, win_kind, win_n, acc, cnt):
    """One output from the inputs row[base:base + prod(win_n)]: nested windows are filled level by level.

    Monte Carlo passes a block of mu + sigma z; quasi-Monte Carlo, Sobol points.
    `state` draws the dropout masks.
    """
    levels = win_n.shape[0]
    j = base
    level = -1
    v = np.nan
    # A single return: numba inlines only such functions, and a real call per output costs refcounts.
    while level < levels:
        v = apply_segment(act, state, codes, params, seg[0], seg[1], row[j])
        j += 1
        level = 0
        while level < levels:
            acc[level] = v if cnt[level] == 0 else reduce_step(win_kind[level], acc[level], v)
            cnt[level] += 1
            if cnt[level] < win_n[level]:
                break
            v = finish_window(win_kind[level], acc[level], win_n[level])
            cnt[level] = 0
            v = apply_segment(act, state, codes, params, seg[level + 1], seg[level + 2], v)
            level += 1
    return v


# The window kernels take their normals a fill at a time: as many whole outputs' worth as fit
# in a block (normals.per_fill), then the outputs, reading the block at an offset. A draw
# helper that refilled the block itself measured 15x slower: a call inside the per-value path
# makes numba count references to every array on each value.
@_inline
def _fill_inputs(state, z, m, mu, sigma, missed, words):
    normals.fill(state, z, m, missed, words)
    for j in range(m):
        z[j] = mu + sigma * z[j]


@_inline
def _single_window(act, state, z, base, codes, params, seg, kind, n, max_at, split):
    """One output of chain | window | chain, the commonest shape, from inputs z[base:base + n]."""
    lo = hi = 0.0
    count = n
    if max_at != 0:
        lo, hi = least_greatest(z, base, n)
        count = extremes(max_at, split, hi)
    acc = 0.0
    for t in range(count):
        x = z[base + t] if max_at == 0 else extreme(max_at, t, lo, hi)
        # One call site for the first segment: each inlines the segment's loop (two doubled a kernel's compile time).
        v = apply_segment(act, state, codes, params, seg[0], seg[1], x)
        acc = v if t == 0 else reduce_step(kind, acc, v)
    return apply_segment(act, state, codes, params, seg[1], seg[2], finish_window(kind, acc, n))


@_inline
def least_greatest(z, base, n):
    """(min, max) of z[base:base + n]; min and max, not comparisons, which LLVM made mispredicted branches."""
    lo = hi = z[base]
    for t in range(base + 1, base + n):
        hi = max(hi, z[t])
        lo = min(lo, z[t])
    return lo, hi


@_inline
def extremes(max_at, split, hi):
    """How many of a window's extremes the max of the first segment needs (max_at: AT_GREATEST, AT_LEAST or
    both): both only for a valley whose greatest input is below its split (program.max_split)."""
    return 2 if max_at == AT_GREATEST | AT_LEAST and hi < split else 1


@_inline
def extreme(max_at, t, lo, hi):
    """The t-th input to evaluate: the greatest first where it is needed, then the least."""
    return hi if t == 0 and max_at & AT_GREATEST else lo


@_inline
def _accumulate(i, y, shift, s1, s2, s3, s4):
    """Shifted power sums; the first value is the shift. Scalars in, scalars out: registers, not memory."""
    if i == 0:
        shift = y
    d = y - shift
    d2 = d * d
    return shift, s1 + d, s2 + d2, s3 + d2 * d, s4 + d2 * d2


@_inline
def _chunk_bare_window(state, count, mu, sigma, kind, n, z, missed, words):
    per = normals.per_fill(n)
    shift = s1 = s2 = s3 = s4 = 0.0
    for done in range(0, count, per):
        k = normals.fewer(per, count - done)
        normals.fill(state, z, k * n, missed, words)
        for o in range(k):
            acc = z[o * n]
            for t in range(o * n + 1, (o + 1) * n):
                acc = reduce_step(kind, acc, z[t])
            y = mu + sigma * finish_window(kind, acc, n)
            shift, s1, s2, s3, s4 = _accumulate(done + o, y, shift, s1, s2, s3, s4)
    return shift, s1, s2, s3, s4


@_inline
def _chunk_one_window(act, state, count, mu, sigma, codes, params, seg, kind, n, max_at, split, z, missed, words):
    per = normals.per_fill(n)
    shift = s1 = s2 = s3 = s4 = 0.0
    for done in range(0, count, per):
        k = normals.fewer(per, count - done)
        _fill_inputs(state, z, k * n, mu, sigma, missed, words)
        for o in range(k):
            y = _single_window(act, state, z, o * n, codes, params, seg, kind, n, max_at, split)
            shift, s1, s2, s3, s4 = _accumulate(done + o, y, shift, s1, s2, s3, s4)
    return shift, s1, s2, s3, s4


@_inline
def _chunk_nested(act, state, count, mu, sigma, codes, params, seg, win_kind, win_n, z, missed, words, acc, cnt):
    """acc and cnt: float and int64 scratch of a length per window op, zeroed."""
    n = window_inputs(win_n)
    per = normals.per_fill(n)
    shift = s1 = s2 = s3 = s4 = 0.0
    for done in range(0, count, per):
        k = normals.fewer(per, count - done)
        _fill_inputs(state, z, k * n, mu, sigma, missed, words)
        for o in range(k):
            y = one_output(act, state, z, o * n, codes, params, seg, win_kind, win_n, acc, cnt)
            shift, s1, s2, s3, s4 = _accumulate(done + o, y, shift, s1, s2, s3, s4)
    return shift, s1, s2, s3, s4


@_inline
def window_inputs(win_n):
    """Inputs per output of nested windows: the product of their sizes (np.prod compiles a function of its own)."""
    n = 1
    for w in win_n:
        n *= w
    return n


@_inline
def weighted_sums(act, mask_state, points, weights, shift, mu, sigma, codes, params, seg, win_kind, win_n):
    """Quasi-Monte Carlo (qmc.py): (shift, sum of w, of w (y - shift), of w (y - shift)^2) over the outputs y
    at the standard-normal points, one row per output; a NaN shift becomes the first output. Dropout masks
    come from mask_state (an SFC64 state, advanced in place)."""
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    row = np.empty(points.shape[1])
    sw = s1 = s2 = 0.0
    for i in range(points.shape[0]):
        for j in range(points.shape[1]):
            row[j] = mu + sigma * points[i, j]
        y = one_output(act, mask_state, row, 0, codes, params, seg, win_kind, win_n, acc, cnt)
        if np.isnan(shift):
            shift = y
        d = y - shift
        sw += weights[i]
        s1 += weights[i] * d
        s2 += weights[i] * d * d
    return shift, sw, s1, s2


@_jit
def weighted_moments(ys, weights, shift):
    """weighted_sums's sums over outputs already computed (qmc.py's staged path): the same additions in the same
    order, so the same bits. A NaN shift becomes the first output."""
    sw = s1 = s2 = 0.0
    for i in range(ys.shape[0]):
        if np.isnan(shift):
            shift = ys[i]
        d = ys[i] - shift
        sw += weights[i]
        s1 += weights[i] * d
        s2 += weights[i] * d * d
    return shift, sw, s1, s2


@_jit
def activation_array(act, act_grad, code, a, b, xs, grad):
    """f (grad False) or f' (grad True) of every value of xs: jitted activations inside numpy paths
    (user expressions, whole-map simulation)."""
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        out[i] = act_grad(code, a, b, xs[i])[1] if grad else act(code, a, b, xs[i])
    return out


@_inline
def put_row(out, c, count, s0, s1, s2, s3, s4):
    """out[c, :6] = count and five sums, one element at a time: numba compiles an array's slice assignment with
    an error path that formats shapes into a message, and that string code cost 5 to 12 s of a cold run's
    compiling."""
    out[c, 0] = count
    out[c, 1] = s0
    out[c, 2] = s1
    out[c, 3] = s2
    out[c, 4] = s3
    out[c, 5] = s4


# Batch drivers: the rows of a list of chunks, in order, each chunk from its own SFC64 state, so
# rows do not depend on which thread ran them (montecarlo.run_chunks gives each thread a slice).
# One driver per kind of kernel, and one kernel per shape of spec, chosen in Python
# (program.py): numba compiles a function with all its callees, so a first run compiles only
# the kernel its spec uses. A numba prange driver was slower here and took 2-7 s more to
# compile per kind. Those that take an activation are called through dispatch.py's wrappers.
# Each writes one row of `out` per chunk (a row of states), of the sums below (chain_kernels.CHAIN_SUMS
# and pair_kernels.PAIR_SUMS for theirs); z, missed and words are normals.buffers for
# normals.per_fill(inputs per output) outputs at a time.
PLAIN_SUMS = 6  # [count, shift, sums of (y - shift)^1..4]: moments.central_rows makes moments of them


@_jit
def bare_window_rows(states, counts, mu, sigma, kind, n, out, z, missed, words):
    """PLAIN_SUMS rows of a lone window op (no elementwise stages)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _chunk_bare_window(states[c], counts[c], mu, sigma, kind, n, z, missed, words)
        put_row(out, c, counts[c], s0, s1, s2, s3, s4)


@_inline
def one_window_rows(
    act, states, counts, mu, sigma, codes, params, seg, win_kind, win_n, max_at, split, out, z, missed, words
):
    """bare_window_rows's rows for chain | window | chain; max_at and split: program.max_at and max_split."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _chunk_one_window(
            act,
            states[c],
            counts[c],
            mu,
            sigma,
            codes,
            params,
            seg,
            win_kind[0],
            win_n[0],
            max_at,
            split,
            z,
            missed,
            words,
        )
        put_row(out, c, counts[c], s0, s1, s2, s3, s4)


@_inline
def nested_rows(act, states, counts, mu, sigma, codes, params, seg, win_kind, win_n, out, z, missed, words, acc, cnt):
    """bare_window_rows's rows for pipelines with more than one window op (acc, cnt: as _chunk_nested's)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _chunk_nested(
            act, states[c], counts[c], mu, sigma, codes, params, seg, win_kind, win_n, z, missed, words, acc, cnt
        )
        put_row(out, c, counts[c], s0, s1, s2, s3, s4)

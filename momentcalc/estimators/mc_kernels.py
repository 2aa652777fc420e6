"""Numba kernels for fused Monte Carlo: draw, transform, accumulate, nothing stored.

A pipeline is compiled (by ``montecarlo.compile_program``) into flat
arrays that one kernel interprets, so a handful of kernels serve every
spec and are cached on disk (cache=True) across processes:

* ``codes``/``params``: the elementwise stages, in order;
* ``seg``: stage index bounds of the segments between window ops;
* ``win_kind``/``win_n``: the window ops.

A chunk kernel runs one chunk from its own SFC64 state (normals.py draws
the normals a block at a time) and gives the chunk's count, a shift (its first
value) and the power sums of the deviations from it to the 4th: the
shifted-data algorithm, sound when the shift is near the mean. moments.py
turns those sums into central moments, in numpy: each function numba compiles
costs a first run time, and that arithmetic needs no loop. The antithetic pair
kernels give plain sums over pairs instead (see estimators/antithetic.py).
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
values (the activation kernel ``fused_rows``, the batched max-pool pair
kernel ``one_window_pair_values_rows``) are shared instead (jit.shared): one
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

from .. import catalog
from ..ops import pooling
from . import block_ops, normals
from .jit import jit, shared

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
# The blocks of run_fused_chunk (BLOCKS), one signature for all: the activation's (a, b), then float, float and int64
# scratch arrays of a block's length.
BLOCK = types.FunctionType(types.void(_FLOATS, _I, _F, _F, _F, _F, _F, _F, _FLOATS, _FLOATS, _FLOATS, _INTS))
# The values loops of the batched pair kernel (VALUES): x[:m] <- f(x[:m]), f's (a, b), float, float and int64 scratch.
VALUES_LOOP = types.FunctionType(types.void(_FLOATS, _I, _F, _F, _FLOATS, _FLOATS, _INTS))


def _own(suffix: str) -> dict[str, str]:
    """{activation: its wrapper's name} for the registered activations with a wrapper <name><suffix> in this
    module: the wrappers are the one list of which activations have a vectorized form."""
    names = globals()
    return {a.name: a.name + suffix for a in catalog.jitted_activations() if a.name + suffix in names}


@_inline
def _apply_segment(act, state, codes, params, start, stop, v):
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
def _reduce(kind, acc, v):
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
def _finish(kind, acc, n):
    """The window's output from its accumulator over n inputs."""
    return acc / n if kind == AVG else acc


@_inline
def _one_output(act, state, row, base, codes, params, seg, win_kind, win_n, acc, cnt):
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
        v = _apply_segment(act, state, codes, params, seg[0], seg[1], row[j])
        j += 1
        level = 0
        while level < levels:
            acc[level] = v if cnt[level] == 0 else _reduce(win_kind[level], acc[level], v)
            cnt[level] += 1
            if cnt[level] < win_n[level]:
                break
            v = _finish(win_kind[level], acc[level], win_n[level])
            cnt[level] = 0
            v = _apply_segment(act, state, codes, params, seg[level + 1], seg[level + 2], v)
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
        lo, hi = _least_greatest(z, base, n)
        count = _extremes(max_at, split, hi)
    acc = 0.0
    for t in range(count):
        x = z[base + t] if max_at == 0 else _extreme(max_at, t, lo, hi)
        # One call site for the first segment: each inlines the segment's loop (two doubled a kernel's compile time).
        v = _apply_segment(act, state, codes, params, seg[0], seg[1], x)
        acc = v if t == 0 else _reduce(kind, acc, v)
    return _apply_segment(act, state, codes, params, seg[1], seg[2], _finish(kind, acc, n))


@_inline
def _least_greatest(z, base, n):
    """(min, max) of z[base:base + n]; min and max, not comparisons, which LLVM made mispredicted branches."""
    lo = hi = z[base]
    for t in range(base + 1, base + n):
        hi = max(hi, z[t])
        lo = min(lo, z[t])
    return lo, hi


@_inline
def _extremes(max_at, split, hi):
    """How many of a window's extremes the max of the first segment needs (max_at: AT_GREATEST, AT_LEAST or
    both): both only for a valley whose greatest input is below its split (program.max_split)."""
    return 2 if max_at == AT_GREATEST | AT_LEAST and hi < split else 1


@_inline
def _extreme(max_at, t, lo, hi):
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
                acc = _reduce(kind, acc, z[t])
            y = mu + sigma * _finish(kind, acc, n)
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
    n = _size(win_n)
    per = normals.per_fill(n)
    shift = s1 = s2 = s3 = s4 = 0.0
    for done in range(0, count, per):
        k = normals.fewer(per, count - done)
        _fill_inputs(state, z, k * n, mu, sigma, missed, words)
        for o in range(k):
            y = _one_output(act, state, z, o * n, codes, params, seg, win_kind, win_n, acc, cnt)
            shift, s1, s2, s3, s4 = _accumulate(done + o, y, shift, s1, s2, s3, s4)
    return shift, s1, s2, s3, s4


@_inline
def _size(win_n):
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
        y = _one_output(act, mask_state, row, 0, codes, params, seg, win_kind, win_n, acc, cnt)
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


# Chains without window ops run a block at a time: normals.fill draws a block, one pass applies the
# chain (writing the output and its squared derivative over the block), and a last pass adds the
# block to the sums. Apart, each loop is simple enough for LLVM to vectorize the sums, and relu and
# sigmoid have vectorized loops of their own (block_ops).
@_inline
def run_chain_chunk(act_grad, state, count, mu, sigma, codes, params, z, missed, words, g, acc):
    """Sums of the output of an elementwise chain and of (d output / d input)^2, from the same draws.

    Returns (shift, gshift) and leaves in acc (zeroed first) the sums of y - shift to the 4th power and of
    g - gshift to the 2nd (g: the squared derivative): only g's mean and that mean's SE are reported, and
    its two extra sums cost a third of the kernel's time.
    The chain (activations, AFFINE, DROPOUT; no window ops) is as compiled
    by montecarlo.compile_program; the chain rule multiplies the stage
    derivatives along each draw. `state` is the chunk's SFC64 stream
    (estimators/normals.py); the values are those of tests/kernel_samples.sample_chain_outputs.
    z, missed, words: normals.buffers(normals.BLOCK); g: float scratch of BLOCK.
    """
    _zero(acc)
    shift = gshift = 0.0
    for start in range(0, count, normals.BLOCK):
        m = normals.fewer(normals.BLOCK, count - start)
        normals.fill(state, z, m, missed, words)
        _chain_block(act_grad, state, mu, sigma, codes, params, z, g, m, words.view(np.float64))
        if start == 0:
            shift, gshift = z[0], g[0]
        block_ops.add_block(z, g, m, shift, gshift, acc)
    return shift, gshift


@_inline
def run_fused_chunk(act_grad, block, state, count, mu, sigma, code, a, b, z, missed, words, e, e2, scale, acc):
    """run_chain_chunk's sums for a chain of one activation, the commonest spec: `block` applies it to a block
    and adds the block to the sums, one of BLOCKS (a vectorized loop of block_ops, in one pass) or, for an
    activation without one, dispatch.py's block_N (scalar_block); e, e2, scale: its scratch."""
    _zero(acc)
    shift = gshift = 0.0
    for start in range(0, count, normals.BLOCK):
        m = normals.fewer(normals.BLOCK, count - start)
        normals.fill(state, z, m, missed, words)
        if start == 0:
            shift, gshift = _shifts(act_grad, code, a, b, mu + sigma * z[0])
        block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale)
    return shift, gshift


@_inline
def _zero(values):
    for i in range(values.shape[0]):
        values[i] = 0.0


@_inline
def _shifts(act_grad, code, a, b, x):
    """The shifts of the sums: the first output and its squared derivative."""
    y, d = act_grad(code, a, b, x)
    return y, d * d


@_jit
def relu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_relu_block(z, m, mu, sigma, shift, gshift, acc)


@_jit
def sigmoid_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_sigmoid_block(z, m, mu, sigma, shift, gshift, acc, e, scale)


@_jit
def tanh_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_tanh_block(z, m, mu, sigma, shift, gshift, acc, e, e2, scale)


@_jit
def silu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_swish_block(z, m, mu, sigma, 1.0, shift, gshift, acc, e, scale)


@_jit
def swish_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_swish_block(z, m, mu, sigma, a, shift, gshift, acc, e, scale)


@_jit
def elu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_exp_linear_block(z, m, mu, sigma, 1.0, a, a, 1.0, shift, gshift, acc, e, e2, scale)


@_jit
def celu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_exp_linear_block(z, m, mu, sigma, 1.0, a, 1.0, a, shift, gshift, acc, e, e2, scale)


@_jit
def selu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_exp_linear_block(z, m, mu, sigma, b, b * a, b * a, 1.0, shift, gshift, acc, e, e2, scale)


@_jit
def softplus_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_softplus_block(z, m, mu, sigma, a, 1.0, shift, gshift, acc, e, scale)


@_jit
def log_sigmoid_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_softplus_block(z, m, mu, sigma, 1.0, -1.0, shift, gshift, acc, e, scale)


@_jit
def mish_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_mish_block(z, m, mu, sigma, shift, gshift, acc, e, scale)


@_jit
def gelu_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    """approximate=tanh (a = 1) and exact gelu (a = 0, x Phi(x)) by their vectorized loops."""
    if a != 0.0:
        block_ops.add_gelu_tanh_block(z, m, mu, sigma, shift, gshift, acc, e, scale)
    else:
        block_ops.add_gelu_block(z, m, mu, sigma, shift, gshift, acc, e, e2, scale)


@_jit
def erf_block(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):
    block_ops.add_erf_block(z, m, mu, sigma, shift, gshift, acc, e, e2, scale)


# Activations with vectorized loops of their own (block_ops): dispatch_gen's wrappers run them by fused_rows.
# An activation has one where a wrapper named <name>_block is defined above.
BLOCKS = _own("_block")


# The values forms of the blocks, one signature for all: x[:m] <- f(x[:m]) in place, f's (a, b), then float,
# float and int64 scratch arrays. The max-pool pair kernel takes one (one_window_pair_values_rows). Compiled with
# block_ops' values flags (FMA contraction), whose loops they inline.
_values = jit(error_model="numpy", fastmath={"contract"})


@_values
def sigmoid_values(x, m, a, b, e, e2, scale):
    block_ops.sigmoid_values(x, m, e, scale)


@_values
def tanh_values(x, m, a, b, e, e2, scale):
    block_ops.tanh_values(x, m, e, e2, scale)


@_values
def silu_values(x, m, a, b, e, e2, scale):
    block_ops.swish_values(x, m, 1.0, e, scale)


@_values
def swish_values(x, m, a, b, e, e2, scale):
    block_ops.swish_values(x, m, a, e, scale)


@_values
def elu_values(x, m, a, b, e, e2, scale):
    block_ops.exp_linear_values(x, m, 1.0, a, 1.0, e, e2, scale)


@_values
def celu_values(x, m, a, b, e, e2, scale):
    block_ops.exp_linear_values(x, m, 1.0, a, a, e, e2, scale)


@_values
def selu_values(x, m, a, b, e, e2, scale):
    block_ops.exp_linear_values(x, m, b, b * a, 1.0, e, e2, scale)


@_values
def softplus_values(x, m, a, b, e, e2, scale):
    block_ops.softplus_values(x, m, a, 1.0, e, scale)


@_values
def log_sigmoid_values(x, m, a, b, e, e2, scale):
    block_ops.softplus_values(x, m, 1.0, -1.0, e, scale)


@_values
def mish_values(x, m, a, b, e, e2, scale):
    block_ops.mish_values(x, m, e, scale)


@_values
def gelu_values(x, m, a, b, e, e2, scale):
    if a != 0.0:
        block_ops.gelu_tanh_values(x, m, e, scale)
    else:
        block_ops.gelu_values(x, m, e, e2, scale)


@_values
def erf_values(x, m, a, b, e, e2, scale):
    block_ops.erf_values(x, m, e, e2, scale)


# Activations with a values form: dispatch_gen writes a batched max-pool pair kernel for each. An activation has
# one where a wrapper named <name>_values is defined above.
VALUES = _own("_values")


@_jit
def _chain_block(act_grad, state, mu, sigma, codes, params, z, g, m, kept):
    """z[:m] <- the chain at mu + sigma z, g[:m] <- its squared derivative there; kept: float scratch of m (the
    skip connection's input). A chain without dropout runs a stage at a time over the block (_staged_block): each
    value sees the same operations in the same order as value by value, so the same bits, and a stage's loop is
    simple enough to run in vector lanes (a residual mix ran 1.6x as fast so). Dropout draws from the stream per
    value, in value order: such chains run value by value."""
    for k in range(codes.shape[0]):
        if codes[k] == DROPOUT:
            _dropout_block(act_grad, state, mu, sigma, codes, params, z, g, m)
            return
    _staged_block(act_grad, mu, sigma, codes, params, z, g, m, kept)


@_inline
def _dropout_block(act_grad, state, mu, sigma, codes, params, z, g, m):
    for j in range(m):
        v = mu + sigma * z[j]
        d = 1.0
        for k in range(codes.shape[0]):
            c = codes[k]
            if c == AFFINE:
                d *= params[k, 1]
                v = params[k, 0] + params[k, 1] * v
            elif c == DROPOUT:
                if normals.next_double(state) < params[k, 0]:
                    d *= params[k, 1]
                    v = params[k, 1] * v
                else:
                    d = 0.0
                    v = 0.0
            else:
                v, dv = act_grad(c, params[k, 0], params[k, 1], v)
                d *= dv
        z[j] = v
        g[j] = d * d


@_inline
def _staged_block(act_grad, mu, sigma, codes, params, z, g, m, kept):
    """_chain_block's stages one at a time over the block, g holding the signed derivative until the end. A skip
    connection opens at the chain's input (program.skip_program), where the derivative is 1: only the value is kept."""
    for j in range(m):
        z[j] = mu + sigma * z[j]
        g[j] = 1.0
    for k in range(codes.shape[0]):
        c, a, b = codes[k], params[k, 0], params[k, 1]
        if c == AFFINE:
            for j in range(m):
                g[j] *= b
                z[j] = a + b * z[j]
        elif c == SKIP_OPEN:
            for j in range(m):
                kept[j] = z[j]
        elif c == SKIP_CLOSE:
            for j in range(m):
                z[j] = a * kept[j] + b * z[j]
                g[j] = a + b * g[j]
        else:
            for j in range(m):
                v, dv = act_grad(c, a, b, z[j])
                z[j] = v
                g[j] *= dv
    for j in range(m):
        g[j] = g[j] * g[j]


@_inline
def scalar_block(act_grad, z, m, mu, sigma, a, b, shift, gshift, acc, g):
    """The block of an activation without a vectorized loop (dispatch.py's block_N, of BLOCK's signature): its
    scalar (f, f') value by value, then the block's sums."""
    _activation_block(act_grad, 0, a, b, mu, sigma, z, g, m)  # act_grad_N takes no code: 0
    block_ops.add_block(z, g, m, shift, gshift, acc)


@_inline
def _activation_block(act_grad, code, a, b, mu, sigma, z, g, m):
    """_chain_block for one activation: z[:m] <- f(mu + sigma z), g[:m] <- f'(mu + sigma z)^2."""
    for j in range(m):
        y, d = act_grad(code, a, b, mu + sigma * z[j])
        z[j] = y
        g[j] = d * d


@_jit
def activation_array(act, act_grad, code, a, b, xs, grad):
    """f (grad False) or f' (grad True) of every value of xs: jitted activations inside numpy paths
    (user expressions, whole-map simulation)."""
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        out[i] = act_grad(code, a, b, xs[i])[1] if grad else act(code, a, b, xs[i])
    return out


@_inline
def _pair_sums(y1, y2, shift, sa, saa, sb, sbb, sab):
    """Sums over antithetic pairs of a (the pair's mean deviation from shift) and b (its mean squared deviation)."""
    d1 = y1 - shift
    d2 = y2 - shift
    a = 0.5 * (d1 + d2)
    b = 0.5 * (d1 * d1 + d2 * d2)
    return sa + a, saa + a * a, sb + b, sbb + b * b, sab + a * b


def is_bare_max(codes, win_kind, win_n):
    """A lone maxpool with no elementwise stages: the pair kernel that takes max and -min in one pass."""
    return win_n.shape[0] == 1 and codes.shape[0] == 0 and win_kind[0] == MAX


@_inline
def _bare_max_pair(z, base, mu, sigma, n):
    hi = lo = z[base]
    for t in range(base + 1, base + n):
        # max and min, not comparisons: LLVM turned those into branches, mispredicted half the time.
        hi = max(hi, z[t])
        lo = min(lo, z[t])
    return mu + sigma * hi, mu - sigma * lo  # the max over mu - sigma z is mu - sigma min(z)


@_inline
def _general_pair(act, state, z, base, row, mu, sigma, codes, params, seg, win_kind, win_n, acc, cnt):
    y1 = y2 = 0.0
    for side in range(2):
        sign = 1.0 if side == 0 else -1.0
        for j in range(row.shape[0]):
            row[j] = mu + sign * sigma * z[base + j]
        y = _one_output(act, state, row, 0, codes, params, seg, win_kind, win_n, acc, cnt)
        if side == 0:
            y1 = y
        else:
            y2 = y
    return y1, y2


@_inline
def _one_window_pair(act, state, z, base, mu, sigma, codes, params, seg, kind, n, max_at, split):
    """_general_pair for chain | window | chain, the same values in the same order as _single_window takes them."""
    zlo = zhi = 0.0
    if max_at != 0:
        zlo, zhi = _least_greatest(z, base, n)
    y1 = y2 = 0.0
    for side in range(2):
        sign = 1.0 if side == 0 else -1.0
        s = sign * sigma
        lo = hi = 0.0
        count = n
        if max_at != 0:
            # The inputs mu + s z rise with z on the first side (s = sigma > 0) and fall on the second.
            lo = mu + s * (zlo if side == 0 else zhi)
            hi = mu + s * (zhi if side == 0 else zlo)
            count = _extremes(max_at, split, hi)
        acc = 0.0
        for t in range(count):
            x = mu + s * z[base + t] if max_at == 0 else _extreme(max_at, t, lo, hi)
            v = _apply_segment(act, state, codes, params, seg[0], seg[1], x)
            acc = v if t == 0 else _reduce(kind, acc, v)
        y = _apply_segment(act, state, codes, params, seg[1], seg[2], _finish(kind, acc, n))
        if side == 0:
            y1 = y
        else:
            y2 = y
    return y1, y2


@_inline
def _pairs_bare_max(state, pairs, shift, mu, sigma, n, z, missed, words):
    """Antithetic pairs: the outputs at mu + sigma z and at mu - sigma z, from the same standard normals z.

    Returns (Sa, Saa, Sb, Sbb, Sab), plain sums over pairs of a and b
    (see _pair_sums). Every chunk of a run uses the same shift, so rows add.
    """
    per = normals.per_fill(n)
    sa = saa = sb = sbb = sab = 0.0
    for done in range(0, pairs, per):
        k = normals.fewer(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        for o in range(k):
            y1, y2 = _bare_max_pair(z, o * n, mu, sigma, n)
            sa, saa, sb, sbb, sab = _pair_sums(y1, y2, shift, sa, saa, sb, sbb, sab)
    return sa, saa, sb, sbb, sab


@_inline
def _pairs_general(
    act, state, pairs, shift, mu, sigma, codes, params, seg, win_kind, win_n, z, missed, words, row, acc, cnt
):
    """_pairs_bare_max's sums for any pipeline. Dropout masks are drawn afresh for each side: any
    pairing is valid as long as each side alone has the pipeline's distribution. row: float scratch of an
    output's inputs; acc, cnt: as _chunk_nested's."""
    n = _size(win_n)
    per = normals.per_fill(n)
    sa = saa = sb = sbb = sab = 0.0
    for done in range(0, pairs, per):
        k = normals.fewer(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        for o in range(k):
            y1, y2 = _general_pair(act, state, z, o * n, row, mu, sigma, codes, params, seg, win_kind, win_n, acc, cnt)
            sa, saa, sb, sbb, sab = _pair_sums(y1, y2, shift, sa, saa, sb, sbb, sab)
    return sa, saa, sb, sbb, sab


@_inline
def _pairs_one_window(
    act, state, pairs, shift, mu, sigma, codes, params, seg, kind, n, max_at, split, z, missed, words
):
    """_pairs_general's sums for chain | window | chain: a loop of its own, faster to compile and to run than
    the nested windows' interpreter (_one_output)."""
    per = normals.per_fill(n)
    sa = saa = sb = sbb = sab = 0.0
    for done in range(0, pairs, per):
        k = normals.fewer(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        for o in range(k):
            y1, y2 = _one_window_pair(act, state, z, o * n, mu, sigma, codes, params, seg, kind, n, max_at, split)
            sa, saa, sb, sbb, sab = _pair_sums(y1, y2, shift, sa, saa, sb, sbb, sab)
    return sa, saa, sb, sbb, sab


def values_stage(codes, seg, max_at):
    """For a max pool read at its window's extremes (max_at, program.max_at), the index of the one activation in
    the stages before it when the others are affine maps: the pair kernel can then gather a fill's extremes and
    apply the activation to all of them in one vectorized loop (one_window_pair_values_rows). -1: it cannot."""
    if max_at == 0:
        return -1
    stages = range(int(seg[0]), int(seg[1]))
    acts = [i for i in stages if codes[i] > 0]
    return acts[0] if len(acts) == 1 and all(codes[i] == AFFINE for i in stages if i != acts[0]) else -1


@_inline
def _gather_extremes(z, k, n, mu, sigma, max_at, split, xs, both):
    """The inputs _one_window_pair evaluates for the k windows of z, side by side: output q = 2 o + side of window o
    reads xs[q], and where both[q] (a valley whose greatest input is below its split) also the window's least input,
    appended after xs[:2 k] in output order. Returns how many inputs xs now holds."""
    m = 2 * k
    for o in range(k):
        zlo, zhi = _least_greatest(z, o * n, n)
        for side in range(2):
            s = (1.0 if side == 0 else -1.0) * sigma
            lo = mu + s * (zlo if side == 0 else zhi)
            hi = mu + s * (zhi if side == 0 else zlo)
            q = 2 * o + side
            xs[q] = _extreme(max_at, 0, lo, hi)
            both[q] = _extremes(max_at, split, hi) == 2
            xs[m] = lo  # kept only where both[q]: a write and a count, not a branch
            m += 1 if both[q] else 0
    return m


@_inline
def _affine_stages(codes, params, start, stop, xs, m):
    """xs[:m] through the affine stages start..stop-1, a vectorized loop each."""
    for i in range(start, stop):
        a, b = params[i, 0], params[i, 1]
        for j in range(m):
            xs[j] = a + b * xs[j]


@_inline
def _values_outputs(act, values, state, z, k, n, mu, sigma, codes, params, seg, max_at, split, at, scratch, ys):
    """ys[2 o + side] <- _one_window_pair's outputs for the k windows of z (a max pool of a chain of affine maps
    and the activation at stage `at`, then any chain): the stages on all the gathered extremes at once, `values`
    applying the activation (VALUES), then each side's max. scratch: (xs, both, e, e2, scale)."""
    xs, both, e, e2, scale = scratch
    m = _gather_extremes(z, k, n, mu, sigma, max_at, split, xs, both)
    _affine_stages(codes, params, seg[0], at, xs, m)
    values(xs, m, params[at, 0], params[at, 1], e, e2, scale)
    _affine_stages(codes, params, at + 1, seg[1], xs, m)
    second = 2 * k
    for q in range(2 * k):
        v = xs[q]
        if both[q]:
            v = max(v, xs[second])  # _reduce's max, in its order
            second += 1
        # Only where stages follow the window: in the shared kernel `act` is a function pointer, and even an empty
        # stage loop that could call it kept `activation | maxpool(k=3)` at 0.6 of maxpool's rate, against 0.8.
        ys[q] = _apply_segment(act, state, codes, params, seg[1], seg[2], v) if seg[1] < seg[2] else v


@_inline
def _pairs_one_window_values(
    act, values, state, pairs, shift, mu, sigma, codes, params, seg, n, max_at, split, at, z, missed, words, scratch, ys
):
    """_pairs_one_window's sums where values_stage finds the activation at stage `at`: a fill's outputs first
    (_values_outputs), then their sums. The same outputs up to the few ulps the values loop differs from the
    scalar f by; per output it costs an extreme or two through a vector loop instead of a libm call each."""
    per = normals.per_fill(n)
    sa = saa = sb = sbb = sab = 0.0
    for done in range(0, pairs, per):
        k = normals.fewer(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        _values_outputs(act, values, state, z, k, n, mu, sigma, codes, params, seg, max_at, split, at, scratch, ys)
        for o in range(k):
            sa, saa, sb, sbb, sab = _pair_sums(ys[2 * o], ys[2 * o + 1], shift, sa, saa, sb, sbb, sab)
    return sa, saa, sb, sbb, sab


@_inline
def _put(out, c, count, s0, s1, s2, s3, s4):
    """out[c, :6] = count and five sums, one element at a time: numba compiles an array's slice assignment with
    an error path that formats shapes into a message, and that string code cost 5 to 12 s of a cold run's
    compiling."""
    out[c, 0] = count
    out[c, 1] = s0
    out[c, 2] = s1
    out[c, 3] = s2
    out[c, 4] = s3
    out[c, 5] = s4


@_inline
def _put_chain(out, c, count, shift, gshift, acc):
    """out[c] = [count, shift, gshift, the six sums of acc]: a chain kernel's row (CHAIN_SUMS)."""
    out[c, 0] = count
    out[c, 1] = shift
    out[c, 2] = gshift
    for i in range(6):
        out[c, 3 + i] = acc[i]


# Batch drivers: the rows of a list of chunks, in order, each chunk from its own SFC64 state, so
# rows do not depend on which thread ran them (montecarlo.run_chunks gives each thread a slice).
# One driver per kind of kernel, and one kernel per shape of spec, chosen in Python
# (program.py): numba compiles a function with all its callees, so a first run compiles only
# the kernel its spec uses. A numba prange driver was slower here and took 2-7 s more to
# compile per kind. Those that take an activation are called through dispatch.py's wrappers.
# Each writes one row of `out` per chunk (a row of states), of the sums below; z, missed and words
# are normals.buffers for normals.per_fill(inputs per output) outputs at a time.
PLAIN_SUMS = 6  # [count, shift, sums of (y - shift)^1..4]: moments.central_rows makes moments of them
CHAIN_SUMS = 9  # [count, shift, gshift, sums of (y - shift)^1..4, of (g - gshift)^1..2]: moments.chain_rows
PAIR_SUMS = 6  # [pairs, Sa, Saa, Sb, Sbb, Sab]: antithetic.py's rows as they are


@_jit
def bare_window_rows(states, counts, mu, sigma, kind, n, out, z, missed, words):
    """PLAIN_SUMS rows of a lone window op (no elementwise stages)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _chunk_bare_window(states[c], counts[c], mu, sigma, kind, n, z, missed, words)
        _put(out, c, counts[c], s0, s1, s2, s3, s4)


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
        _put(out, c, counts[c], s0, s1, s2, s3, s4)


@_inline
def nested_rows(act, states, counts, mu, sigma, codes, params, seg, win_kind, win_n, out, z, missed, words, acc, cnt):
    """bare_window_rows's rows for pipelines with more than one window op (acc, cnt: as _chunk_nested's)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _chunk_nested(
            act, states[c], counts[c], mu, sigma, codes, params, seg, win_kind, win_n, z, missed, words, acc, cnt
        )
        _put(out, c, counts[c], s0, s1, s2, s3, s4)


@_inline
def chain_rows(act_grad, states, counts, mu, sigma, codes, params, out, z, missed, words, g, acc):
    """CHAIN_SUMS rows of run_chain_chunk (g: float scratch of BLOCK; acc: of 6)."""
    for c in range(states.shape[0]):
        shift, gshift = run_chain_chunk(
            act_grad, states[c], counts[c], mu, sigma, codes, params, z, missed, words, g, acc
        )
        _put_chain(out, c, counts[c], shift, gshift, acc)


@shared(ACT_GRAD, BLOCK, error_model="numpy")
def fused_rows(act_grad, block, states, counts, mu, sigma, code, a, b, out, z, missed, words, e, e2, scale, acc):
    """run_fused_chunk's rows, as chain_rows (e, e2: float, scale: int64 scratch of BLOCK). One kernel for every
    activation with a block: it calls act_grad once and block once per block of normals, by their addresses."""
    for c in range(states.shape[0]):
        shift, gshift = run_fused_chunk(
            act_grad, block, states[c], counts[c], mu, sigma, code, a, b, z, missed, words, e, e2, scale, acc
        )
        _put_chain(out, c, counts[c], shift, gshift, acc)


@_jit
def bare_max_pair_rows(states, pair_counts, shift, mu, sigma, n, out, z, missed, words):
    """PAIR_SUMS rows of _pairs_bare_max."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_bare_max(states[c], pair_counts[c], shift, mu, sigma, n, z, missed, words)
        _put(out, c, pair_counts[c], s0, s1, s2, s3, s4)


@_inline
def one_window_pair_rows(
    act,
    states,
    pair_counts,
    shift,
    mu,
    sigma,
    codes,
    params,
    seg,
    win_kind,
    win_n,
    max_at,
    split,
    out,
    z,
    missed,
    words,
):
    """_pairs_one_window's rows (max_at as for one_window_rows)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_one_window(
            act, states[c], pair_counts[c], shift, mu, sigma, codes, params, seg, win_kind[0], win_n[0], max_at, split,
            z, missed, words,
        )  # fmt: skip
        _put(out, c, pair_counts[c], s0, s1, s2, s3, s4)


@shared(ACT, VALUES_LOOP, error_model="numpy")
def one_window_pair_values_rows(
    act,
    values,
    states,
    pair_counts,
    shift,
    mu,
    sigma,
    codes,
    params,
    seg,
    win_kind,
    win_n,
    max_at,
    split,
    at,
    out,
    z,
    missed,
    words,
    xs,
    both,
    e,
    e2,
    scale,
    ys,
):
    """_pairs_one_window_values's rows: `values` is the activation's values form (VALUES), at the stage
    values_stage found; xs .. ys as program.values_buffers makes them. One kernel for every activation: it calls
    `values` once per fill of windows, and `act` only for the stages after the window (none in
    `activation | normalize | maxpool`), by their addresses."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_one_window_values(
            act, values, states[c], pair_counts[c], shift, mu, sigma, codes, params, seg, win_n[0], max_at, split,
            at, z, missed, words, (xs, both, e, e2, scale), ys,
        )  # fmt: skip
        _put(out, c, pair_counts[c], s0, s1, s2, s3, s4)


@_inline
def pair_rows(
    act,
    states,
    pair_counts,
    shift,
    mu,
    sigma,
    codes,
    params,
    seg,
    win_kind,
    win_n,
    out,
    z,
    missed,
    words,
    row,
    acc,
    cnt,
):
    """_pairs_general's rows (row, acc, cnt: as _pairs_general's)."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_general(
            act, states[c], pair_counts[c], shift, mu, sigma, codes, params, seg, win_kind, win_n,
            z, missed, words, row, acc, cnt,
        )  # fmt: skip
        _put(out, c, pair_counts[c], s0, s1, s2, s3, s4)

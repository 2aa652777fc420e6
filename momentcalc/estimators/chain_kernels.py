"""Numba kernels of elementwise chains (no window ops): a block of normals at a time, the chain over the block,
then the block's sums of the output and of its squared derivative.

normals.fill draws a block, one pass applies the chain (writing the output and its squared derivative over the
block), and a last pass adds the block to the sums. Apart, each loop is simple enough for LLVM to vectorize the
sums. A chain of one activation, the commonest spec, runs that activation's block loop instead (fused_rows):
its vectorized loop of block_ops where its declaration names one (catalog.VectorLoop), else its scalar f and f'
value by value, both written out in the generated dispatch.py (block_N). Kernels, codes and conventions as
mc_kernels.py describes them.
"""

from __future__ import annotations

import numpy as np

from . import block_ops, normals
from .jit import jit, shared
from .mc_kernels import ACT_GRAD, AFFINE, BLOCK, DROPOUT, SKIP_CLOSE, SKIP_OPEN

_jit = jit(error_model="numpy")
# Inlined at the numba level, as mc_kernels' helpers: a call that passes arrays costs reference counting per value.
_inline = jit(error_model="numpy", inline="always")
# The rows of chain_rows and fused_rows (mc_kernels.PLAIN_SUMS's, with the gradient's):
CHAIN_SUMS = 9  # [count, shift, gshift, sums of (y - shift)^1..4, of (g - gshift)^1..2]: moments.chain_rows


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
    """run_chain_chunk's sums for a chain of one activation, the commonest spec: `block`, dispatch.py's block_N,
    applies it to a block and adds the block to the sums: the vectorized loop of block_ops its declaration names
    (catalog.VectorLoop), in one pass, else scalar_block; e, e2, scale: its scratch."""
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


@_inline
def _put_chain(out, c, count, shift, gshift, acc):
    """out[c] = [count, shift, gshift, the six sums of acc]: a chain kernel's row (CHAIN_SUMS)."""
    out[c, 0] = count
    out[c, 1] = shift
    out[c, 2] = gshift
    for i in range(6):
        out[c, 3 + i] = acc[i]


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

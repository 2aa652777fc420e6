"""The compiled Monte Carlo kernel of a product of two independent factors, y = f_0(x_0) f_1(x_1)
(estimators.product_mc): a block of each input drawn from the kernels' own normals (normals.fill), each factor
through its activation's values loop (dispatch.VECTOR_VALUES: vectorized; else dispatch.SCALAR_VALUES), the gradient
factor f'(x_wrt) through dispatch.grads, then the block's sums of y and of the squared gradient reaching input
`wrt`, in vector lanes (block_ops.add_block). Nothing is materialized beyond a block.

One kernel serves every pair of factors (jit.shared): it calls the loops once per block, by their addresses, so a
first run of another gated unit compiles only its activations' loops. Chunks have their own SFC64 streams
(driver.chunk_states) and fixed sizes, run on the driver's threads and are added in chunk order: the bits do not
depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from . import block_ops, dispatch, driver, mc_kernels, normals
from .jit import shared

CHUNK = 1 << 17  # outputs a chunk
PER_FILL = normals.BLOCK // 2  # outputs a fill: a block of normals for each of the two inputs
_LOOP = mc_kernels.VALUES_LOOP


@shared(_LOOP, _LOOP, _LOOP, error_model="numpy")
def pair_chunk(f0, f1, grad, state, count, mu, sigma, params, wrt, shift, gshift, z, missed, words, x1, d, e, e2, acc):
    """acc <- the sums of (y - shift)^1..4 and (g - gshift)^1..2 over `count` outputs of the chunk's stream, g the
    squared gradient reaching input `wrt`: f_wrt'(x_wrt) times the other factor. Each fill draws m values of x_0,
    then m of x_1. z, missed, words: normals.buffers(2 PER_FILL); x1, d, e, e2: float scratch of PER_FILL."""
    for i in range(acc.shape[0]):
        acc[i] = 0.0
    scale = missed  # int64 scratch of the values loops: the fill is done with it
    per = x1.shape[0]
    done = 0
    while done < count:
        m = normals.fewer(per, count - done)
        normals.fill(state, z, 2 * m, missed, words)
        for j in range(m):
            z[j] = mu + sigma * z[j]
            x1[j] = mu + sigma * z[m + j]
        source = z if wrt == 0 else x1
        for j in range(m):
            d[j] = source[j]
        grad(d, m, params[wrt, 0], params[wrt, 1], e, e2, scale)
        f0(z, m, params[0, 0], params[0, 1], e, e2, scale)
        f1(x1, m, params[1, 0], params[1, 1], e, e2, scale)
        other = x1 if wrt == 0 else z
        for j in range(m):
            gj = d[j] * other[j]
            d[j] = gj * gj
            z[j] = z[j] * x1[j]
        block_ops.add_block(z, d, m, shift, gshift, acc)
        done += m


def values_loop(code: int):
    """The activation's f over a buffer: its vectorized loop (dispatch.VECTOR_VALUES), else its scalar one."""
    return dispatch.VECTOR_VALUES[code] if code in dispatch.VECTOR_VALUES else dispatch.SCALAR_VALUES[code]


def sums(names: tuple[str, str], params: np.ndarray, wrt: int, mu: float, sigma: float, samples: int, seed: int):
    """(averages of (y - shift)^1..4 and (g - gshift)^1..2, shift, gshift) for factors `names` (activations of the
    dispatch) with params[i] = (a, b) of factor i: the shifts are the first output and squared gradient of chunk
    0's stream, so that the power sums do not cancel; every chunk runs with them."""
    codes = [dispatch.CODES[name] for name in names]
    loops = (values_loop(codes[0]), values_loop(codes[1]), dispatch.grads(codes[wrt]))
    sizes = driver.chunk_sizes(samples, CHUNK)
    states = driver.chunk_states(seed, 0, len(sizes))

    def task(j: int, count: int, shift: float, gshift: float):
        def run():
            z, missed, words = normals.buffers(2 * PER_FILL)
            x1, d, e, e2, acc = (
                np.empty(PER_FILL),
                np.empty(PER_FILL),
                np.empty(PER_FILL),
                np.empty(PER_FILL),
                np.zeros(6),
            )
            pair_chunk(
                *loops,
                states[j].copy(),
                count,
                mu,
                sigma,
                params,
                wrt,
                shift,
                gshift,
                z,
                missed,
                words,
                x1,
                d,
                e,
                e2,
                acc,
            )
            return acc

        return run

    first = task(0, 1, 0.0, 0.0)()
    shift, gshift = float(first[0]), float(first[4])
    total = np.zeros(6)
    for found in driver.in_order([task(j, size, shift, gshift) for j, size in enumerate(sizes)]):
        total += found
    return total / samples, shift, gshift

"""The compiled Monte Carlo kernel of a product of independent factors, y = prod_i f_i(x_i) (estimators.product_mc):
each input drawn from the kernels' own normals (normals.fill), each factor through the generated dispatch on its
activation code, the shifted power sums of y and the sums of the squared gradient reaching input `wrt`, in one
pass and nothing materialized. Chunks have their own SFC64 streams (driver.chunk_states) and run on the driver's
threads; their sums are added in chunk order, so the bits do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from . import dispatch, driver, normals
from .jit import jit

_jit = jit(error_model="numpy")
CHUNK = 1 << 17  # outputs a chunk


@_jit
def chunk_sums(state, count, shift, mu, sigma, codes, params, wrt, z, missed, words):
    """(sum (y - shift)^1..4, sum g, sum g^2) over `count` outputs of the chunk's stream."""
    k = codes.shape[0]
    per = max(1, z.shape[0] // k)
    s1 = s2 = s3 = s4 = g1 = g2 = 0.0
    done = 0
    while done < count:
        m = min(per, count - done)
        normals.fill(state, z, m * k, missed, words)
        for o in range(m):
            y = 1.0
            g = 1.0
            for i in range(k):
                f, df = dispatch.apply_activation_and_grad(
                    codes[i], params[i, 0], params[i, 1], mu + sigma * z[o * k + i]
                )
                y *= f
                g *= df if i == wrt else f
            d = y - shift
            d2 = d * d
            s1 += d
            s2 += d2
            s3 += d2 * d
            s4 += d2 * d2
            g1 += g * g
            g2 += g * g * g * g
        done += m
    return np.array([s1, s2, s3, s4, g1, g2])


def sums(codes: np.ndarray, params: np.ndarray, wrt: int, mu: float, sigma: float, samples: int, seed: int):
    """(averages of (y - shift)^1..4, g, g^2; shift): the shift is the mean of the first chunk's outputs
    (so the power sums do not cancel where the mean is far from 0), then every chunk runs with it."""
    sizes = [min(CHUNK, samples - s) for s in range(0, samples, CHUNK)]
    states = driver.chunk_states(seed, 0, len(sizes))

    def task(j, shift):
        def run():
            z, missed, words = normals.buffers(normals.BLOCK)
            return chunk_sums(states[j].copy(), sizes[j], shift, mu, sigma, codes, params, wrt, z, missed, words)

        return run

    shift = float(task(0, 0.0)()[0] / sizes[0])
    total = np.zeros(6)
    for found in driver.in_order([task(j, shift) for j in range(len(sizes))]):
        total += found
    return total / samples, shift

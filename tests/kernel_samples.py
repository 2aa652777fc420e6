"""The Monte Carlo kernels' output values themselves, in draw order: for tests against slow references.

Each mirrors a kernel of momentcalc.estimators' mc_kernels, chain_kernels or pair_kernels draw for draw (the
same inlined helpers on the same normals), but returns every value instead of their moments. Cached on disk like
the package's kernels, under the stamp of the package's kernel sources (kernel_stamps.stamp_kernels_of): numba
alone would key a cache on this file only, and a kernel edited in the package would leave these stale.
"""

import kernel_stamps
import numpy as np
from numba import njit

from momentcalc.estimators import chain_kernels, dispatch, jit, normals, pair_kernels
from momentcalc.estimators import mc_kernels as mc

kernel_stamps.stamp_kernels_of(__file__)
_njit = jit.jit(error_model="numpy")
_inline = jit.jit(error_model="numpy", inline="always")
_is_bare_max = njit(inline="always")(pair_kernels.is_bare_max)


@_njit
def standard_normals(state, n):
    """The stream's next n normals, filled normals.BLOCK at a time as the chain kernels fill them."""
    out = np.empty(n)
    missed = np.empty(normals.BLOCK, dtype=np.int64)
    words = np.empty(normals.BLOCK, dtype=np.uint64)
    for start in range(0, n, normals.BLOCK):
        m = min(normals.BLOCK, n - start)
        normals.fill(state, out[start:], m, missed, words)
    return out


@_njit
def sample_outputs(state, count, mu, sigma, codes, params, seg, win_kind, win_n):
    """The window kernels' output values (one_window_rows, nested_rows), in draw order: for slow references."""
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    n = np.prod(win_n)
    per = normals.per_fill(n)
    z, missed, words = normals.scratch(per * n)
    out = np.empty(count)
    for done in range(0, count, per):
        k = min(per, count - done)
        mc._fill_inputs(state, z, k * n, mu, sigma, missed, words)
        for o in range(k):
            out[done + o] = mc.one_output(
                dispatch.act_m, state, z, o * n, codes, params, seg, win_kind, win_n, acc, cnt
            )
    return out


@_njit
def sample_chain_outputs(state, count, mu, sigma, codes, params):
    """The outputs of a chain and their squared derivatives, shape (2, count), as run_chain_chunk draws them."""
    out = np.empty((2, count))
    z, missed, words = normals.scratch(normals.BLOCK)
    g = np.empty(normals.BLOCK)
    for start in range(0, count, normals.BLOCK):
        m = min(normals.BLOCK, count - start)
        normals.fill(state, z, m, missed, words)
        chain_kernels._chain_block(
            dispatch.act_grad_m, state, mu, sigma, codes, params, z, g, m, words.view(np.float64)
        )
        out[0, start : start + m] = z[:m]
        out[1, start : start + m] = g[:m]
    return out


@_njit
def sample_pair_outputs(state, pairs, mu, sigma, codes, params, seg, win_kind, win_n):
    """Both outputs of each antithetic pair, shape (pairs, 2), in the pair kernels' draw order: for tests."""
    out = np.empty((pairs, 2))
    acc = np.zeros(win_n.shape[0])
    cnt = np.zeros(win_n.shape[0], dtype=np.int64)
    n = np.prod(win_n)
    row = np.empty(n)
    per = normals.per_fill(n)
    z, missed, words = normals.scratch(per * n)
    bare_max = _is_bare_max(codes, win_kind, win_n)
    for done in range(0, pairs, per):
        k = min(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        for o in range(k):
            if bare_max:
                out[done + o, 0], out[done + o, 1] = pair_kernels._bare_max_pair(z, o * n, mu, sigma, n)
            else:
                out[done + o, 0], out[done + o, 1] = pair_kernels._general_pair(
                    dispatch.act_m, state, z, o * n, row, mu, sigma, codes, params, seg, win_kind, win_n, acc, cnt
                )
    return out


@jit.shared(mc.VALUES_LOOP, error_model="numpy")
def _pair_values_outputs(values, state, pairs, mu, sigma, codes, params, seg, win_kind, win_n, max_at, split, at):
    # One mirror for every activation, as the kernel is one (jit.shared): the values loop comes by its address.
    out = np.empty((pairs, 2))
    n = win_n[0]
    per = normals.per_fill(n)
    z, missed, words = normals.scratch(per * n)
    size = 4 * per  # as program.values_buffers
    xs, both = np.empty(size), np.empty(2 * per, dtype=np.bool_)
    scratch = (xs, both, np.empty(size), np.empty(size), np.empty(size, np.int64))
    ys = np.empty(2 * per)
    for done in range(0, pairs, per):
        k = min(per, pairs - done)
        normals.fill(state, z, k * n, missed, words)
        pair_kernels._values_outputs(
            dispatch.act_m, values, state, z, k, n, mu, sigma, codes, params, seg, max_at, split, at, scratch, ys
        )
        for o in range(k):
            out[done + o, 0], out[done + o, 1] = ys[2 * o], ys[2 * o + 1]
    return out


def sample_pair_values_outputs(name, *args):
    """Both outputs of each antithetic pair as one_window_pair_values_rows computes them for activation `name`,
    shape (pairs, 2); args: (state, pairs, *Program.kernel_args(), max_at, max_split, the stage values_stage found).
    """
    code = dispatch.CODES[name]
    values = dispatch.VECTOR_VALUES[code] if code in dispatch.VECTOR_VALUES else dispatch.SCALAR_VALUES[code]
    return _pair_values_outputs(values, *args)

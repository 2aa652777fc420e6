"""The compiled Monte Carlo kernel of a joint op (catalog.JOINT: softmax over n logits, a norm over d values, an LP
pool): whole rows of inputs drawn from the kernels' own normals (normals.fill), the op's declared rows function
(catalog.OpInfo.rows) over them, and the block's sums, nothing materialized.

One kernel serves every joint op (jit.shared): it calls the op's rows function once per fill of normals, by its
address, so a first run of another op compiles only that op's rows function. Chunks have their own SFC64 streams
(driver.chunk_states) and fixed sizes, run on the driver's threads or a Dask scheduler and are added in chunk order:
the same bits on any thread count and any cluster.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from numba import types

from .. import catalog
from ..catalog import OpInfo
from ..errors import MomentcalcError
from ..spec import Op, parse
from . import block_ops, dispatch, dispatch_gen, driver, normals
from .jit import shared

CHUNK_NORMALS = 1 << 18  # normals a chunk draws, as program.CHUNK_NORMALS
_F, _I, _FLOATS = types.float64, types.int64, types.float64[::1]
# rows(x, count, n, a, b, y, g): catalog.OpInfo.rows as dispatch.ROWS compiles it.
ROWS = types.FunctionType(types.void(_FLOATS, _I, _I, _F, _F, _FLOATS, _FLOATS))


@shared(ROWS, error_model="numpy")
def joint_chunk(rows, state, count, n, a, b, mu, sigma, shift, gshift, z, missed, words, y, g, acc):
    """acc <- the sums of (y - shift)^1..4 and (g - gshift)^1..2 over `count` outputs of the chunk's stream; z,
    missed, words: normals.buffers of whole rows (at least one); y, g: float scratch of a fill's rows."""
    for i in range(acc.shape[0]):
        acc[i] = 0.0
    per = z.shape[0] // n
    done = 0
    while done < count:
        m = normals.fewer(per, count - done)
        normals.fill(state, z, m * n, missed, words)
        for j in range(m * n):
            z[j] = mu + sigma * z[j]
        rows(z, m, n, a, b, y, g)
        block_ops.add_block(y, g, m, shift, gshift, acc)
        done += m


def compiled_rows(info: OpInfo):
    """The op's rows function as the generated dispatch.py compiles it (loaded from the disk cache on first use)."""
    names = [o.name for o in catalog.joint_rows_ops()]
    if list(dispatch.ROWS) != names:
        raise MomentcalcError(
            f"{dispatch_gen.TARGET.name} is stale: the ops with a rows function differ from its ROWS; "
            f"regenerate it with `{dispatch_gen.COMMAND}`"
        )
    return dispatch.rows(info.name)


def _buffers(n: int) -> tuple[np.ndarray, ...]:
    per = normals.per_fill(n)
    return (*normals.buffers(per * n), np.empty(per), np.empty(per), np.zeros(6))


def sums(op: Op, mu: float, sigma: float, samples: int, seed: int) -> tuple[np.ndarray, float, float]:
    """(averages of (y - shift)^1..4 and (g - gshift)^1..2, shift, gshift): the shifts are the first output and
    squared gradient of chunk 0's stream, so that the power sums do not cancel; every chunk runs with them. The
    chunks run on a Dask scheduler where one is set (driver.executing), else on this process's threads: the same
    bits either way."""
    n = op.info.size(op)
    sizes = driver.chunk_sizes(samples, max(1, CHUNK_NORMALS // n))
    first = _chunk(str(op), 0, 1, mu, sigma, seed, 0.0, 0.0)
    shift, gshift = float(first[0]), float(first[4])
    tasks = [partial(_chunk, str(op), j, size, mu, sigma, seed, shift, gshift) for j, size in enumerate(sizes)]
    total = np.zeros(6)
    for found in driver.anywhere_in_order(tasks):
        total += found
    return total / samples, shift, gshift


def _chunk(spec: str, j: int, count: int, mu: float, sigma: float, seed: int, shift: float, gshift: float):
    """Chunk j's sums (a pure task of plain values: it may run on a Dask worker, which parses the op again)."""
    op = parse(spec).last
    info = op.info
    rows, n = compiled_rows(info), info.size(op)
    a, b = info.rows_args(op)
    z, missed, words, y, g, acc = _buffers(n)
    state = driver.chunk_states(seed, j, 1)[0]
    joint_chunk(rows, state, count, n, a, b, mu, sigma, shift, gshift, z, missed, words, y, g, acc)
    return acc

"""Standard normals for the kernels, a block at a time, from an SFC64 state held in an array.

A stream is numpy's SFC64: ``state`` is the uint64[4] array of
``np.random.SFC64(...).state["state"]["state"]`` ([a, b, c, counter]), and
the kernels advance it exactly as numpy does. The normals are numpy's
ziggurat (the one ``Generator.standard_normal`` uses, with numpy's own
tables) with one change of order, which makes it about 1.25x as fast as
numpy's own called from numba (3.5 against 4.4 ns a normal on one core here):

* numpy finishes each of the 1.5% of draws that miss the ziggurat's fast
  test (tail or wedge test, and a fresh draw if that rejects) before it
  draws the next value;
* ``fill`` takes the fast test for a whole block first, with no branch on
  the rare path in its loop, and then finishes the missed draws in block
  order with the stream's next outputs.

Every output of the stream is an independent uniform 64-bit word whichever
value it goes to, so each value is exactly as distributed as numpy's and the
values are independent; only which word feeds which value differs from
numpy after a missed draw. ``tests/test_normals.py`` checks this against a
plain-Python reference that reads numpy's own SFC64 words.
"""

from __future__ import annotations

import numpy as np
from numba import float64, int64, uint64

from .jit import jit
from .ziggurat_tables import (
    FI as _FI,
)
from .ziggurat_tables import (
    KI as _KI,
)
from .ziggurat_tables import (
    WI as _WI,
)
from .ziggurat_tables import (
    ZIGGURAT_NOR_INV_R as ziggurat_nor_inv_r,
)
from .ziggurat_tables import (
    ZIGGURAT_NOR_R as ziggurat_nor_r,
)

# Values per fill: 4x the 512 first tried measured 8% faster for sigmoid (per-block calls cost), no faster at 4096.
BLOCK = 2048

WI = np.array(_WI, dtype=np.float64)
KI = np.array(_KI, dtype=np.uint64)
FI = np.array(_FI, dtype=np.float64)
MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53

_jit = jit(error_model="numpy")
_inline = jit(error_model="numpy", inline="always")


def state_of(bit_generator: np.random.SFC64) -> np.ndarray:
    """The uint64[4] state array of an SFC64 bit generator (a copy: the kernels advance their own)."""
    return np.array(bit_generator.state["state"]["state"], dtype=np.uint64)


@_inline
def _sfc64(a, b, c, w):
    # numpy's sfc64_next: returns the output and the new state.
    out = a + b + w
    return (
        out,
        b ^ (b >> uint64(11)),
        c + (c << uint64(3)),
        ((c << uint64(24)) | (c >> uint64(40))) + out,
        w + uint64(1),
    )


@_inline
def next_word(state):
    out, state[0], state[1], state[2], state[3] = _sfc64(state[0], state[1], state[2], state[3])
    return out


@_inline
def next_double(state):
    """A uniform on [0, 1), as numpy's SFC64 next_double."""
    return float64(next_word(state) >> uint64(11)) * TO_UNIT


@_inline
def _fast(word):
    """The ziggurat's fast path for one word: (value, layer, |mantissa|, passed the fast test)."""
    idx = word & uint64(0xFF)
    r = word >> uint64(8)
    rabs = (r >> uint64(1)) & MANTISSA
    x = float64(int64(rabs)) * WI[idx]
    if r & uint64(1):
        x = -x
    return x, idx, rabs, rabs < KI[idx]


@_jit
def _finish(state, x, idx, rabs):
    """numpy's slow path for a draw that missed the fast test: its tail or wedge test, then fresh draws."""
    while True:
        if idx == 0:
            while True:
                xx = -ziggurat_nor_inv_r * np.log1p(-next_double(state))
                yy = -np.log1p(-next_double(state))
                if yy + yy > xx * xx:
                    return -(ziggurat_nor_r + xx) if (rabs >> uint64(8)) & uint64(1) else ziggurat_nor_r + xx
        elif (FI[idx - 1] - FI[idx]) * next_double(state) + FI[idx] < np.exp(-0.5 * x * x):
            return x
        x, idx, rabs, passed = _fast(next_word(state))
        if passed:
            return x


@_jit
def fill(state, z, m, missed, words):
    """z[:m] = the next m standard normals of the stream; missed and words are int64/uint64 scratch of len >= m."""
    a, b, c, w = state[0], state[1], state[2], state[3]
    n_missed = 0
    # One scalar loop: SFC64 is a serial recurrence, and the vectorized form of the table look-ups
    # (gathers) measured slower than scalar loads on this machine.
    for j in range(m):
        word, a, b, c, w = _sfc64(a, b, c, w)
        z[j], _, _, passed = _fast(word)
        if not passed:
            missed[n_missed] = j
            words[n_missed] = word
            n_missed += 1
    state[0], state[1], state[2], state[3] = a, b, c, w
    for k in range(n_missed):
        x, idx, rabs, _ = _fast(words[k])
        z[missed[k]] = _finish(state, x, idx, rabs)


@_inline
def per_fill(normals_per_output):
    """Whole outputs per fill for kernels that need normals_per_output normals each: a block's worth, at least one."""
    return BLOCK // normals_per_output if normals_per_output <= BLOCK else 1


@_inline
def fewer(a, b):
    """min(a, b) of two ints: the builtin is a function numba compiles apart, per signature, in a first run."""
    return a if a < b else b


def buffers(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, missed, words): the arrays fill needs, for fills of up to size values; kernels take them from
    their caller (numpy allocates them here; in a kernel, each np.empty is one more function to compile)."""
    return np.empty(size), np.empty(size, dtype=np.int64), np.empty(size, dtype=np.uint64)


@_inline
def scratch(size):
    """buffers(size) inside a kernel (tests' kernel mirrors)."""
    return np.empty(size), np.empty(size, dtype=np.int64), np.empty(size, dtype=np.uint64)

"""The pieces every vectorized block loop shares (block_ops, erf_blocks): exp without a call, bit casts, the sums.

numba's math.exp is a call into libm per value, which keeps a loop out of
vector lanes: ``_exp_parts`` is exp(t) for t <= 0 as a Taylor polynomial on
the reduced argument and the bits of 2^k, ``vector_exp`` the same joined in a
register (the joint ops' rows functions take it), ``_expm1_reduced`` the
polynomial alone for callers that reduce their own argument (expm1, exp of a
two-part argument). ``_add6`` adds a block's six sums to the accumulator.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import jit

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (fdlibm)
LN2_LO = 1.90821492927058770002e-10
ROUND = 6755399441055744.0  # 1.5 * 2^52: adding and subtracting it rounds to an integer
EXP_FLOOR = -708.0  # exp of anything lower is taken as exp(-708) ~ 3.3e-308: still a normal number
# 1/k! for k = 2..13: Taylor's remainder on |r| <= ln(2)/2 is below 2e-16 relative.
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = (1.0 / math.factorial(k) for k in range(2, 14))


@jit(inline="always")
def _add6(acc, s1, s2, s3, s4, g1, g2):
    acc[0] += s1
    acc[1] += s2
    acc[2] += s3
    acc[3] += s4
    acc[4] += g1
    acc[5] += g2


# contract: the polynomial's multiply-adds become FMAs, 2.7x faster here.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _exp_parts(t):
    """exp(t) for t <= 0 as (exp(r), the bits of 2^k), with k = round(t / ln 2) and |r| <= ln(2)/2.

    exp(r) by its Taylor polynomial; 2^k is left as bits, to be viewed as
    float64: a loop that builds it otherwise (ldexp, floor) is a call per value.
    """
    v = max(t, EXP_FLOOR)
    k = (v * LOG2E + ROUND) - ROUND  # round to nearest
    r = (v - k * LN2_HI) - k * LN2_LO
    return 1.0 + _expm1_reduced(r), np.int64(np.int32(k) + np.int32(1023)) << 52


# contract, as _exp_parts: the polynomial's multiply-adds become FMAs.
@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def _expm1_reduced(r):
    """expm1(r) for |r| <= ln(2)/2 (a little more is fine) by its Taylor polynomial, 1 + r's 1 left to the caller.

    Estrin's scheme (pairs of terms, powers r^2, r^4) for all but r, which the caller adds 1 to last so that the
    rounding stays within an ulp. Horner's chain of 13 dependent multiply-adds measured slower: the vector loop
    waited on it.
    """
    r2 = r * r
    r4 = r2 * r2
    q1 = (C4 + C5 * r) + (C6 + C7 * r) * r2
    q2 = (C8 + C9 * r) + (C10 + C11 * r) * r2
    q3 = C12 + C13 * r
    return r + (C2 + C3 * r) * r2 + r4 * (q1 + r4 * (q2 + r4 * q3))


@intrinsic
def _as_float(typingctx, bits):
    """The float64 whose bits these are (a bitcast, which vectorizes): 2^k from _exp_parts' bits, in a register."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@jit(error_model="numpy", fastmath={"contract"}, inline="always")
def vector_exp(t):
    """exp(t) for t <= 709 (exp(-708) ~ 3.3e-308 for anything lower), within an ulp of libm, with no call and no
    branch, so that a loop of it vectorizes: _exp_parts' polynomial times 2^k (k <= 1023 is a normal power), for the
    joint ops' rows functions (catalog.OpInfo.rows: softmax's exponentials), which dispatch.py passes it to."""
    e, bits = _exp_parts(t)
    return e * _as_float(bits)

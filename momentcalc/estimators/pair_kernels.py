"""Numba kernels of antithetic pairs (estimators/antithetic.py): the outputs at mu + sigma z and at mu - sigma z,
from the same standard normals z, summed over pairs; worth it where max pooling makes the two sides negatively
correlated. Kernels, codes and conventions as mc_kernels.py describes them.

The batched max-pool kernel (one_window_pair_values_rows) gathers a fill's window extremes first and applies the
activation to all of them in one loop: its vectorized values loop of block_ops where its declaration names one
(catalog.VectorLoop), else its scalar f over the buffer, both written out in the generated dispatch.py.
"""

from __future__ import annotations

from . import normals
from .jit import jit, shared
from .mc_kernels import (
    ACT,
    AFFINE,
    MAX,
    VALUES_LOOP,
    apply_segment,
    extreme,
    extremes,
    finish_window,
    least_greatest,
    one_output,
    put_row,
    reduce_step,
    window_inputs,
)

_jit = jit(error_model="numpy")
# Inlined at the numba level, as mc_kernels' helpers: a call that passes arrays costs reference counting per value.
_inline = jit(error_model="numpy", inline="always")
PAIR_SUMS = 6  # [pairs, Sa, Saa, Sb, Sbb, Sab]: antithetic.py's rows as they are


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
        y = one_output(act, state, row, 0, codes, params, seg, win_kind, win_n, acc, cnt)
        if side == 0:
            y1 = y
        else:
            y2 = y
    return y1, y2


@_inline
def _one_window_pair(act, state, z, base, mu, sigma, codes, params, seg, kind, n, max_at, split):
    """_general_pair for chain | window | chain, the same values in the same order as mc_kernels._single_window
    takes them."""
    zlo = zhi = 0.0
    if max_at != 0:
        zlo, zhi = least_greatest(z, base, n)
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
            count = extremes(max_at, split, hi)
        acc = 0.0
        for t in range(count):
            x = mu + s * z[base + t] if max_at == 0 else extreme(max_at, t, lo, hi)
            v = apply_segment(act, state, codes, params, seg[0], seg[1], x)
            acc = v if t == 0 else reduce_step(kind, acc, v)
        y = apply_segment(act, state, codes, params, seg[1], seg[2], finish_window(kind, acc, n))
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
    output's inputs; acc, cnt: as mc_kernels._chunk_nested's."""
    n = window_inputs(win_n)
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
    the nested windows' interpreter (one_output)."""
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
        zlo, zhi = least_greatest(z, o * n, n)
        for side in range(2):
            s = (1.0 if side == 0 else -1.0) * sigma
            lo = mu + s * (zlo if side == 0 else zhi)
            hi = mu + s * (zhi if side == 0 else zlo)
            q = 2 * o + side
            xs[q] = extreme(max_at, 0, lo, hi)
            both[q] = extremes(max_at, split, hi) == 2
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
    applying the activation (a VALUES_LOOP), then each side's max. scratch: (xs, both, e, e2, scale)."""
    xs, both, e, e2, scale = scratch
    m = _gather_extremes(z, k, n, mu, sigma, max_at, split, xs, both)
    _affine_stages(codes, params, seg[0], at, xs, m)
    values(xs, m, params[at, 0], params[at, 1], e, e2, scale)
    _affine_stages(codes, params, at + 1, seg[1], xs, m)
    second = 2 * k
    for q in range(2 * k):
        v = xs[q]
        if both[q]:
            v = max(v, xs[second])  # reduce_step's max, in its order
            second += 1
        # Only where stages follow the window: in the shared kernel `act` is a function pointer, and even an empty
        # stage loop that could call it kept `activation | maxpool(k=3)` at 0.6 of maxpool's rate, against 0.8.
        ys[q] = apply_segment(act, state, codes, params, seg[1], seg[2], v) if seg[1] < seg[2] else v


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


@_jit
def bare_max_pair_rows(states, pair_counts, shift, mu, sigma, n, out, z, missed, words):
    """PAIR_SUMS rows of _pairs_bare_max."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_bare_max(states[c], pair_counts[c], shift, mu, sigma, n, z, missed, words)
        put_row(out, c, pair_counts[c], s0, s1, s2, s3, s4)


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
        put_row(out, c, pair_counts[c], s0, s1, s2, s3, s4)


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
    """_pairs_one_window_values's rows: `values` is the activation's values loop (a VALUES_LOOP), at the stage
    values_stage found; xs .. ys as program.values_buffers makes them. One kernel for every activation: it calls
    `values` once per fill of windows, and `act` only for the stages after the window (none in
    `activation | normalize | maxpool`), by their addresses."""
    for c in range(states.shape[0]):
        s0, s1, s2, s3, s4 = _pairs_one_window_values(
            act, values, states[c], pair_counts[c], shift, mu, sigma, codes, params, seg, win_n[0], max_at, split,
            at, z, missed, words, (xs, both, e, e2, scale), ys,
        )  # fmt: skip
        put_row(out, c, pair_counts[c], s0, s1, s2, s3, s4)


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
        put_row(out, c, pair_counts[c], s0, s1, s2, s3, s4)

"""Slow, obvious references for the fused kernels: one scalar draw at a time.

They draw the same values in the same order as the kernels (BlockStream is
the kernels' stream in plain Python, on numpy's own SFC64 words), so outputs
can be compared value by value on small inputs.
"""

import math
from functools import cache

import numpy as np

from momentcalc.estimators.normals import BLOCK
from momentcalc.estimators.ziggurat_tables import FI as fi_double
from momentcalc.estimators.ziggurat_tables import KI as ki_double
from momentcalc.estimators.ziggurat_tables import WI as wi_double
from momentcalc.estimators.ziggurat_tables import (
    ZIGGURAT_NOR_INV_R as ziggurat_nor_inv_r,
)
from momentcalc.estimators.ziggurat_tables import (
    ZIGGURAT_NOR_R as ziggurat_nor_r,
)
from momentcalc.ops.dropout import divisor


class Ziggurat:
    """numpy's ziggurat (numpy/random/src/distributions) in plain Python on numpy's own SFC64 words,
    with the block order of estimators/normals.fill: the fast test for a whole block, then the
    missed draws finished in order."""

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator

    def word(self):
        return int(self.bit_generator.random_raw())

    def unit(self):
        return (self.word() >> 11) * 2.0**-53

    @staticmethod
    def fast(word):
        idx = word & 0xFF
        r = word >> 8
        rabs = (r >> 1) & 0x000FFFFFFFFFFFFF
        x = rabs * float(wi_double[idx])
        return (-x if r & 1 else x), idx, rabs, rabs < int(ki_double[idx])

    def finish(self, x, idx, rabs):
        while True:
            if idx == 0:
                while True:
                    xx = -ziggurat_nor_inv_r * math.log1p(-self.unit())
                    yy = -math.log1p(-self.unit())
                    if yy + yy > xx * xx:
                        return -(ziggurat_nor_r + xx) if (rabs >> 8) & 1 else ziggurat_nor_r + xx
            elif (fi_double[idx - 1] - fi_double[idx]) * self.unit() + fi_double[idx] < math.exp(-0.5 * x * x):
                return x
            x, idx, rabs, passed = self.fast(self.word())
            if passed:
                return x

    def block(self, m):
        drawn = [self.fast(self.word()) for _ in range(m)]
        values = [x for x, _, _, _ in drawn]
        for j, (x, idx, rabs, passed) in enumerate(drawn):
            if not passed:
                values[j] = self.finish(x, idx, rabs)
        return values

    def normals(self, n):
        """n normals as normals.standard_normals draws them: whole blocks, then the rest."""
        out = []
        for start in range(0, n, BLOCK):
            out.extend(self.block(min(BLOCK, n - start)))
        return np.array(out)


class BlockStream:
    """The window kernels' stream in plain Python, a generator-like object for one_output.

    As the kernels, it fills normals.per_fill(n) outputs' worth of normals at a
    time (fewer for the last fill), n normals per output; uniforms (dropout
    masks) come straight from the words, in draw order.
    """

    def __init__(self, bit_generator, normals_per_output, outputs):
        self.ziggurat = Ziggurat(bit_generator)
        self.n, self.left = normals_per_output, outputs
        self.per = max(1, BLOCK // normals_per_output)
        self.pending = []

    def standard_normal(self):
        if not self.pending:
            k = min(self.per, self.left)
            self.left -= k
            self.pending = self.ziggurat.block(k * self.n)[::-1]
        return self.pending.pop()

    def random(self):
        return self.ziggurat.unit()


def normals_per_output(ops):
    return int(np.prod([op.window_size for op in ops if op.kind == "window"]))


def one_output(gen, ops, mu, sigma, normalize_constants):
    """One output of the pipeline `ops` (a tuple of spec Ops), in the kernels' draw order:
    first every normal the output needs, then the dropout masks as they are met."""
    inputs = iter([mu + sigma * gen.standard_normal() for _ in range(normals_per_output(ops))])
    return _evaluate(gen, ops, inputs, normalize_constants)


def _evaluate(gen, ops, inputs, normalize_constants):
    if not ops:
        return next(inputs)
    *before, op = ops
    if op.kind == "window":
        values = [_evaluate(gen, tuple(before), inputs, normalize_constants) for _ in range(op.window_size)]
        return {"max": max, "mean": lambda v: sum(v) / len(v)}[op.info.reduction](values)
    x = _evaluate(gen, tuple(before), inputs, normalize_constants)
    if op.kind == "elementwise":
        return op.info.f(x, *op.info.args(op))
    if op.kind == "dropout":
        keep = gen.random() < op.get("p")
        return x / divisor(op.get("p"), op.get("scale")) if keep else 0.0
    mean, std = normalize_constants[len(before)]
    return (x - mean) / std


def moments(values):
    """Mean and population central moments M2..M4 sums, two-pass."""
    values = np.asarray(values, dtype=np.float64)
    d = values - values.mean()
    return len(values), values.mean(), (d**2).sum(), (d**3).sum(), (d**4).sum()


@cache
def std_normal_max_moment(n, power):
    """E[M_n^power] for the max of n standard normals, by mpmath at 40 digits."""
    import mpmath as mp

    with mp.workdps(40):
        f = lambda x: x**power * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1)  # noqa: E731
        return float(mp.quad(f, [-mp.inf, -5, 0, 2, 4, 6, mp.inf]))


def read_positions(i, k, s=1, p=0, d=1):
    """Input indices (0..i-1) that at least one window reads, by listing every tap of every window."""
    o = (i + 2 * p - (d * (k - 1) + 1)) // s + 1
    read = {start + t * d for start in range(-p, -p + o * s, s) for t in range(k)}
    return {u for u in read if 0 <= u < i}

"""Slow, obvious references for the fused kernels: one scalar draw at a time.

They draw from the same numpy Generator in the same order as the kernels
(numba's Generator reproduces numpy's streams), so outputs can be compared
value by value on small inputs.
"""

from functools import lru_cache

import numpy as np

from momentcalc.ops.activations import ACTIVATIONS
from momentcalc.ops.dropout import divisor


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
        return max(values) if op.name == "maxpool" else sum(values) / len(values)
    x = _evaluate(gen, tuple(before), inputs, normalize_constants)
    if op.kind == "elementwise":
        act = ACTIVATIONS[op.name]
        return act.f(x, *act.args(op))
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


@lru_cache(maxsize=None)
def std_normal_max_moment(n, power):
    """E[M_n^power] for the max of n standard normals, by mpmath at 40 digits."""
    import mpmath as mp

    with mp.workdps(40):
        f = lambda x: x**power * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1)  # noqa: E731
        return float(mp.quad(f, [-mp.inf, -5, 0, 2, 4, 6, mp.inf]))


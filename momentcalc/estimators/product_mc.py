"""Monte Carlo of a product of independent factors, y = prod_i f_i(x_i), x_i iid N(mu, sigma^2): the op itself
sampled (each input drawn, each factor through its compiled function), not its factors' moments combined: by the
compiled kernel (product_kernel) where there are two factors, each with a code in the generated dispatch, else in
numpy.

Work is split into fixed chunks, each with its own stream: the same bits on any machine and thread count.
Standard errors: of the mean, sd/sqrt(N); of the std, by the delta method from the fourth central moment; of
the backward constant, the sd of the squared gradient over sqrt(N).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..result import Estimate
from ..spec import Op
from . import dispatch, dispatch_gen, product_kernel
from .vectorized import jitted_arrays, op_stage

CHUNK = 1 << 16


def run(factors: tuple[Op, ...], wrt: int, mu: float, sigma: float, samples: int, seed: int) -> Estimate:
    """The product sampled: by the compiled kernel (estimators.product_kernel) where every factor has a compiled
    function, else in numpy."""
    dispatch_gen.require_fresh(dispatch.CODES)
    if len(factors) == 2 and all(op.name in dispatch.CODES for op in factors):
        start = time.perf_counter()
        names = (factors[0].name, factors[1].name)
        params = np.array([op.info.args(op) for op in factors], dtype=np.float64)
        raw, shift, gshift = product_kernel.sums(names, params, wrt, mu, sigma, samples, seed)
        seconds = time.perf_counter() - start
        return summary_estimate(raw, shift, samples, seed, seconds, "compiled kernel of the inputs", gshift)
    return _run_numpy(factors, wrt, mu, sigma, samples, seed)


def _run_numpy(factors: tuple[Op, ...], wrt: int, mu: float, sigma: float, samples: int, seed: int) -> Estimate:
    start = time.perf_counter()
    funcs = [jitted_arrays(op) if op.name in dispatch.CODES else _numpy_form(op) for op in factors]
    chunks = -(-samples // CHUNK)
    streams = np.random.SeedSequence(seed).spawn(chunks)
    shift = None
    sums = np.zeros(6)  # (y - shift)^1..4, g, g^2 with g the squared gradient reaching input `wrt`
    for j, stream in enumerate(streams):
        m = min(CHUNK, samples - j * CHUNK)
        rng = np.random.Generator(np.random.PCG64(stream))
        xs = [mu + sigma * rng.standard_normal(m) for _ in factors]
        values = [f(x) for (f, _), x in zip(funcs, xs)]
        y = np.prod(values, axis=0)
        grad = funcs[wrt][1](xs[wrt]) * np.prod([v for i, v in enumerate(values) if i != wrt], axis=0)
        g = grad * grad
        shift = y[0] if shift is None else shift
        d = y - shift
        d2 = d * d
        sums += (d.sum(), d2.sum(), (d2 * d).sum(), (d2 * d2).sum(), g.sum(), (g * g).sum())
    return summary_estimate(sums / samples, shift, samples, seed, time.perf_counter() - start)


def summary_estimate(
    raw: np.ndarray,
    shift: float,
    n: int,
    seed: int,
    seconds: float,
    note: str = "numpy sampling of each input",
    gshift: float = 0.0,
) -> Estimate:
    """The estimate from the averages of (y - shift)^1..4, g - gshift and (g - gshift)^2 over n samples."""
    m1, m2, m3, m4, g1, g2 = raw
    var = max(m2 - m1 * m1, 0.0)
    std = math.sqrt(var)
    # The fourth central moment from the shifted raw moments.
    mu4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1**4
    std_se = math.sqrt(max(mu4 - var * var, 0.0) / n) / (2 * std) if std > 0 else 0.0
    return Estimate(
        "montecarlo",
        shift + m1,
        std,
        math.sqrt(var / n),
        std_se,
        samples=n,
        seed=seed,
        seconds=seconds,
        grad_sq=gshift + g1,
        grad_sq_se=math.sqrt(max(g2 - g1 * g1, 0.0) / n),
        notes=(note,),
    )


def _numpy_form(op: Op):
    """(f, f') of an op with only a numpy form (expr), its derivative numerical."""
    stage = op_stage(op)
    return stage.f, stage.df

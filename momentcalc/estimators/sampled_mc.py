"""Monte Carlo of a lone op that declares a numpy sampler (catalog.OpInfo.sample): its inputs drawn iid
N(mu, sigma^2), whole windows or vectors at a time, in fixed chunks with their own streams from
SeedSequence(seed) (the same bits on any machine). The backward constant is the mean over samples of the
declared squared gradient reaching the first input, given the inputs (the output gradients integrated out).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..errors import MomentcalcError
from ..settings import DEFAULT_SAMPLES, MAX_SAMPLES
from ..spec import Op
from . import NotApplicable
from .product_mc import summary_estimate

CHUNK_VALUES = 1 << 20  # inputs drawn at once, to bound memory
DEFAULT_VALUES = 1 << 26  # inputs a default run draws (a few seconds): outputs are DEFAULT_SAMPLES or fewer


def run(op: Op, mu: float, sigma: float, samples: int | None, seed: int, stages=()):
    """samples: outputs to draw; None: DEFAULT_SAMPLES, or fewer for large ops (at least 64). stages: elementwise
    numpy stages (vectorized.VecStage) each input passes through before the op; the squared gradient reaching the
    first Gaussian input is the op's times the stages' derivatives at it, squared (the chain rule)."""
    info = op.info
    if info.sample is None or info.size is None:
        raise NotApplicable(f"{op} declares no sampler")
    start = time.perf_counter()
    size = info.size(op)
    if samples is None:
        samples = min(DEFAULT_SAMPLES, max(1 << 6, DEFAULT_VALUES // size))
    _check_trusted(op, mu, sigma, samples)
    if samples * size > MAX_SAMPLES:
        raise MomentcalcError(
            f"{samples} samples of {op} draw {samples * size:.3g} normals, more than the {MAX_SAMPLES:.3g} allowed; "
            f"ask for at most {MAX_SAMPLES // size} samples"
        )
    per = max(1, CHUNK_VALUES // size)
    chunks = -(-samples // per)
    shift, sums, have_grad = None, np.zeros(6), True
    for j, stream in enumerate(np.random.SeedSequence(seed).spawn(chunks)):
        m = min(per, samples - j * per)
        x = mu + sigma * np.random.Generator(np.random.PCG64(stream)).standard_normal((m, size))
        slope = np.ones(m)
        for stage in stages:
            slope = slope * stage.df(x[:, 0])
            x = stage.f(x)
        y, g = info.sample(op, x)
        g = None if g is None else g * slope * slope
        have_grad = have_grad and g is not None
        g = np.zeros(m) if g is None else g
        shift = y[0] if shift is None else shift
        d = y - shift
        d2 = d * d
        sums += (d.sum(), d2.sum(), (d2 * d).sum(), (d2 * d2).sum(), g.sum(), (g * g).sum())
    found = summary_estimate(sums / samples, shift, samples, seed, time.perf_counter() - start, "numpy sampling")
    return found if have_grad else replace(found, grad_sq=None, grad_sq_se=None)


def _check_trusted(op: Op, mu: float, sigma: float, samples: int) -> None:
    """Decline a sample too small for its standard errors to be trusted, as the op declares (heavy tails: a sample
    that misses the rare large outputs reports a std and an SE both too small, and no statistic of it shows that)."""
    found = op.info.trusted_samples(op, mu, sigma) if op.info.trusted_samples is not None else None
    if found is not None and samples < found[0]:
        least, why = found
        raise NotApplicable(
            f"montecarlo declines {op} at mu={mu:g}, sigma={sigma:g} with {samples} samples: {why}; ask for at least "
            f"{least} samples ({least * op.info.size(op):.3g} normals) or use quadrature"
        )

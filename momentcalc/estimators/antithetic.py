"""Antithetic variates for pipelines with max pooling: every draw of standard normals z gives
two outputs, the pipeline at mu + sigma z and at mu - sigma z.

Why only there: the max of a window and the max of its mirror image (minus its
min) are negatively correlated and come from the same draws. For maxpool(k=3)
bench/throughput.py measured variance x time 2.1x better for the mean and
1.9x better for the std than plain Monte Carlo. Pipelines without max pooling
keep plain sampling: for an odd pipeline (avgpool of identity) a pair's mean
is exactly mu, and its standard error would be rounding noise.

The pairs, not the outputs, are independent, so the standard errors come
from pair-level quantities. With d1, d2 the pair's deviations from a shift
(one value for the whole run, so chunk rows simply add):
a = (d1 + d2) / 2 and b = (d1^2 + d2^2) / 2, over P pairs,

* mean = shift + mean(a), SE(mean) = sqrt(var(a) / P);
* var = mean(b) - mean(a)^2, and by the delta method
  SE(var) = sqrt((4 mean(a)^2 var(a) - 4 mean(a) cov(a, b) + var(b)) / P),
  SE(std) = SE(var) / (2 std).

Results are reproducible to the bit as for plain sampling: chunk j draws
from its stream (montecarlo.chunk_states) and sample counts are rounded up
to even.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..settings import DEFAULT_SAMPLES, RunSettings
from . import dispatch, driver, pair_kernels
from . import program as programs
from .moments import Summary
from .program import Program

NOTE = "antithetic pairs (z, -z)"
PILOT_PAIRS = 64


def run(program: Program, settings: RunSettings) -> Summary:
    """Pair rows through the driver: chunk sizes and sample counts even, so every chunk holds whole pairs."""
    launch = _PairLaunch(program, _shift(program, settings.seed))
    chunks = programs.program_chunks(program, settings.seed, launch, max(2, program.chunk - program.chunk % 2))
    rows = driver.Rows(lambda r: summarize(r, launch.shift), samples_for)
    if settings.samples is not None:
        settings = replace(settings, samples=settings.samples + settings.samples % 2)
    return driver.drive(chunks, rows, settings, DEFAULT_SAMPLES)


class _PairLaunch:
    """Pair rows for chunks of even sizes, from the kernel that fits the program."""

    def __init__(self, program: Program, shift: float):
        self.program, self.shift = program, shift

    def __call__(self, states: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        p, pairs = self.program, sizes // 2
        out = np.zeros((len(sizes), pair_kernels.PAIR_SUMS))
        buffers = programs.window_buffers(p.normals_per_output)
        if pair_kernels.is_bare_max(p.codes, p.win_kind, p.win_n):
            pair_kernels.bare_max_pair_rows(states, pairs, self.shift, p.mu, p.sigma, int(p.win_n[0]), out, *buffers)
        elif (at := self._values_stage()) >= 0:
            rows = dispatch.kernel("pairs_values", p.act)
            values = programs.values_buffers(p.normals_per_output)
            rows(states, pairs, self.shift, *p.kernel_args(), p.max_at, p.max_split, at, out, *buffers, *values)
        elif p.win_n.size == 1:
            rows = dispatch.kernel("pairs_one", p.act)
            rows(states, pairs, self.shift, *p.kernel_args(), p.max_at, p.max_split, out, *buffers)
        else:
            row = np.empty(p.normals_per_output)  # one output's inputs
            rows = dispatch.kernel("pairs", p.act)
            rows(states, pairs, self.shift, *p.kernel_args(), out, *buffers, row, *programs.level_buffers(p))
        return out

    def _values_stage(self) -> int:
        """The stage of the activation the batched pair kernel applies to a fill's extremes (pairs_values), or -1
        where it does not apply: more than one window, more than one activation before it, or no values form."""
        p = self.program
        at = pair_kernels.values_stage(p.codes, p.seg, p.max_at) if p.win_n.size == 1 else -1
        return at if at >= 0 and ("pairs_values", p.act) in dispatch.KERNELS else -1


def launch(program: Program, shift: float) -> driver.Launch:
    """The pair rows of the program's chunks, sums of deviations from `shift`."""
    return _PairLaunch(program, shift)


def _shift(program: Program, seed: int) -> float:
    # Any constant gives the same estimates; one near the output mean keeps the sums' digits. Its one small chunk
    # runs here, also with a Dask scheduler: a task of it would cost the cluster a round trip for microseconds of
    # work (the kernel is loaded here already: montecarlo.prepare).
    chunks = programs.program_chunks(program, seed, _PairLaunch(program, 0.0))
    row = driver.run_chunks(replace(chunks, parallel=False), 0, [2 * PILOT_PAIRS])[0]
    return float(row[1] / row[0])


def _pair_stats(rows: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Pairs, mean(a), mean(b), var(a), var(b), cov(a, b)."""
    pairs, sa, saa, sb, sbb, sab = rows.sum(axis=0)
    a, b = sa / pairs, sb / pairs
    return pairs, a, b, max(saa / pairs - a * a, 0.0), max(sbb / pairs - b * b, 0.0), sab / pairs - a * b


def _var_of_var(a: float, var_a: float, var_b: float, cov: float) -> float:
    """Per-pair variance of mean(b) - mean(a)^2 (the delta method)."""
    return max(4.0 * a * a * var_a - 4.0 * a * cov + var_b, 0.0)


def summarize(rows: np.ndarray, shift: float) -> Summary:
    pairs, a, b, var_a, var_b, cov = _pair_stats(rows)
    var = max(b - a * a, 0.0)
    std = math.sqrt(var)
    std_se = math.sqrt(_var_of_var(a, var_a, var_b, cov) / pairs) / (2.0 * std) if std > 0.0 else 0.0
    return Summary(float(shift + a), std, math.sqrt(var_a / pairs), std_se, int(2 * pairs), notes=(NOTE,))


def samples_for(rows: np.ndarray, tol: float) -> int:
    """Samples (twice the pairs) that bring both standard errors down to tol."""
    pairs, a, b, var_a, var_b, cov = _pair_stats(rows)
    var = b - a * a
    need_mean = var_a / tol**2
    need_std = _var_of_var(a, var_a, var_b, cov) / (4.0 * var * tol**2) if var > 0.0 else 0.0
    return 2 * int(math.ceil(max(need_mean, need_std, 1.0)))

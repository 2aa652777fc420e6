"""Plain chunk statistics: rows [n, mean, M2, M3, M4] merged in chunk order, and the summary they give.

Chunk moments are merged with the pairwise update of Chan et al. / Pebay;
standard errors come from the delta method on the merged central moments:
SE(mean) = sqrt(m2 / N) and SE(std) = sqrt((m4 - m2^2) / N) / (2 std).
Used by the kernels' plain runs, the numpy path and whole-map runs (elementwise,
per position); antithetic pairs and QMC replicas have statistics of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..result import MIN_SAMPLES, Estimate
from . import driver

# A spread of the samples within this many ulps of their mean is rounding: the samples were all equal.
EQUAL_ULPS = 64


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    mean_se: float
    std_se: float
    samples: int
    grad_sq: float | None = None  # E[f'(X)^2] and its SE, for chains without window ops
    grad_sq_se: float | None = None
    notes: tuple[str, ...] = ()

    def within(self, tol: float) -> bool:
        """Both standard errors at most tol: where a tol run stops."""
        return self.mean_se <= tol and self.std_se <= tol

    def estimate(self, method: str, seed: int, seconds: float, grad: bool = True, notes: tuple = ()) -> Estimate:
        """The Estimate this summary gives `method`; grad=False leaves out E[f'(X)^2] (a spec with windows).

        A standard error of 0 from samples that were all equal is no certainty (relu at mu = -5: all
        65536 outputs are 0, the mean is 5.3e-8), and an SE from a handful of samples is noise itself
        (from 2 samples SE(std) is always 0). Equal samples bound the probability of other values (below
        3/N at 95%, the rule of three) but not the mean, as the other values may lie anywhere; so such
        an estimate states no uncertainty: its SE is exactly 0 (not rounding noise), a note says why,
        and result.informative() keeps it out of the cross-check and the value of record.
        """
        mean_se, std_se = self.mean_se, self.std_se
        grad_sq, grad_sq_se = (self.grad_sq, self.grad_sq_se) if grad else (None, None)
        n = self.samples
        why = []
        if n < MIN_SAMPLES:
            why.append(f"only {n} samples (fewer than {MIN_SAMPLES}): no usable standard error; not cross-checked")
        if _all_equal(self.mean, self.std):
            mean_se, std_se = 0.0, 0.0
            if n >= MIN_SAMPLES:
                why.append(
                    f"all {n} outputs equal {self.mean!r}: no standard error (rule of three: P(output != "
                    f"{self.mean!r}) < {3.0 / n:.2g} at 95%, but how far other values lie is unbounded); "
                    "mean and std not cross-checked"
                )
        if grad_sq is not None and _all_equal(grad_sq, grad_sq_se * math.sqrt(n)):
            # No note here: f'(X)^2 is often constant (identity, abs: 1), and the tables' notes stay as they are.
            grad_sq_se = 0.0
        return Estimate(
            method, self.mean, self.std, mean_se, std_se, n, seed, seconds,
            grad_sq, grad_sq_se, self.notes + tuple(notes) + tuple(why),
        )  # fmt: skip


def _all_equal(mean: float, spread: float) -> bool:
    """Is a sample spread (std) rounding noise, i.e. were the samples all equal?"""
    return spread <= EQUAL_ULPS * math.ulp(abs(mean))


def central_rows(sums: np.ndarray) -> np.ndarray:
    """Rows [n, mean, M2, M3, M4] of the kernels' rows of sums [n, shift, S1, S2, S3, S4] (mc_kernels.PLAIN_SUMS),
    Sk the sum of (y - shift)^k over the chunk: M2 = S2 - n m^2, M3 = S3 - 3 m S2 + 2 n m^3,
    M4 = S4 - 4 m S3 + 6 m^2 S2 - 3 n m^4 with m = S1 / n; M2 and M4 are clamped at 0 (rounding).

    In the order of operations the kernels used when they worked this out themselves (numba turns m**3 into
    m * (m * m) and m**4 into (m * m) * (m * m); max(x, 0.0) into 0.0 if 0.0 >= x else x), so rows keep their
    bits. A row of n = 0 is zeros.
    """
    n, shift, s1, s2, s3, s4 = sums.T
    empty = n == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        m = s1 / n
    rows = np.column_stack(
        (
            n,
            shift + m,
            _at_least_0(s2 - n * m * m),
            s3 - 3.0 * m * s2 + 2.0 * n * (m * (m * m)),
            _at_least_0(s4 - 4.0 * m * s3 + 6.0 * m * m * s2 - 3.0 * n * ((m * m) * (m * m))),
        )
    )
    rows[empty] = 0.0
    return rows


def chain_rows(sums: np.ndarray) -> np.ndarray:
    """Rows of 10 of a chain kernel's rows of sums [n, shift, gshift, S1..S4 of y, S1, S2 of g]
    (chain_kernels.CHAIN_SUMS): central_rows of y, then [n, mean, M2, 0, 0] of g (its M3 and M4 are not summed)."""
    n, zero = sums[:, :1], np.zeros((len(sums), 2))
    g = central_rows(np.hstack((n, sums[:, 2:3], sums[:, 7:9], zero)))
    g[:, 3:] = 0.0
    return np.hstack((central_rows(np.hstack((n, sums[:, 1:2], sums[:, 3:7]))), g))


def _at_least_0(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0, 0.0, x)


def merge(rows: np.ndarray) -> np.ndarray:
    """Fold chunk moments left to right with Pebay's pairwise update (Chan et al. for M2)."""
    n, mean, m2, m3, m4 = rows[0]
    for nb, mb, m2b, m3b, m4b in rows[1:]:
        na, tot = n, n + nb
        d = mb - mean
        dn = d / tot
        m4 = (
            m4
            + m4b
            + d * dn**3 * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * dn * dn * (na * na * m2b + nb * nb * m2)
            + 4.0 * dn * (na * m3b - nb * m3)
        )
        m3 = m3 + m3b + d * dn * dn * na * nb * (na - nb) + 3.0 * dn * (na * m2b - nb * m2)
        m2 = m2 + m2b + d * dn * na * nb
        mean = mean + dn * nb
        n = tot
    return np.array([n, mean, m2, m3, m4])


def summarize_rows(rows: np.ndarray) -> Summary:
    """The summary of chunk rows: output moments, and the squared derivative's where the rows carry them."""
    summary = summarize(merge(rows[:, :5]))
    if rows.shape[1] == 10:
        grad = summarize(merge(rows[:, 5:]))
        summary = replace(summary, grad_sq=grad.mean, grad_sq_se=grad.mean_se)
    return summary


def summarize(merged: np.ndarray) -> Summary:
    mean, std, mean_se, std_se = moment_stats(merged)
    return Summary(float(mean), float(std), float(mean_se), float(std_se), int(merged[0]))


def moment_stats(merged: np.ndarray) -> tuple:
    """(mean, std, SE(mean), SE(std)) of merged [n, mean, M2, M3, M4]: elementwise, so also per map position."""
    n, mean, m2, _, m4 = merged
    var = m2 / n
    std = np.sqrt(var)
    kurt = np.maximum(m4 / n - var * var, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_se = np.where(std > 0.0, np.sqrt(kurt / n) / (2.0 * std), 0.0)
    return mean, std, np.sqrt(var / n), std_se


def samples_needed(merged: np.ndarray, tol: float) -> int:
    """Samples that bring both standard errors down to tol (at every position), from the moments so far."""
    n, _, m2, _, m4 = merged
    var = m2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        need_std = np.where(var > 0.0, (m4 / n - var * var) / (4.0 * var * tol**2), 0.0)
    return int(math.ceil(max(float(np.max(var / tol**2)), float(np.max(need_std)), 1.0)))


PLAIN_ROWS = driver.Rows(summarize_rows, lambda rows, tol: samples_needed(merge(rows[:, :5]), tol))

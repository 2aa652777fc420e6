"""moments.central_rows and chain_rows: the kernels' rows of shifted power sums made into central moments."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from momentcalc.estimators import moments


def _sums(values: np.ndarray, shift: float) -> list[float]:
    """[n, shift, S1, S2, S3, S4]: sums of (value - shift)^k, as a kernel accumulates them (exact for the
    small integers used where exactness matters)."""
    d = values - shift
    return [len(values), shift, *(float(np.sum(d**k)) for k in range(1, 5))]


def _exact_central(values) -> list[Fraction]:
    """[n, mean, M2, M3, M4] in rational arithmetic: M_k = sum of (x - mean)^k."""
    xs = [Fraction(int(v)) for v in values]
    mean = sum(xs) / len(xs)
    return [Fraction(len(xs)), mean, *(sum((x - mean) ** k for x in xs) for k in (2, 3, 4))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_central_rows_equal_exact_central_moments_of_integer_data(seed):
    # Integers in [-30, 30]: the power sums are exact in doubles, so only central_rows' own rounding remains.
    values = np.random.default_rng(seed).integers(-30, 31, size=97).astype(float)
    row = moments.central_rows(np.array([_sums(values, values[0])]))[0]
    want = _exact_central(values)
    scale = [1.0, 30.0, *(97 * 30.0**k for k in (2, 3, 4))]  # what the sums' cancellation is relative to
    for got, exact, size in zip(row, want, scale):
        assert abs(Fraction(got) - exact) <= 1e-14 * size


def test_central_rows_of_normal_draws_match_numpy_moments_and_rows_stay_apart():
    rng = np.random.default_rng(7)
    chunks = [rng.normal(0.3, 2.0, size=n) for n in (1000, 37, 5000)]
    rows = moments.central_rows(np.array([_sums(x, x[0]) for x in chunks]))
    for row, x in zip(rows, chunks):
        d = x - np.mean(x)
        want = [len(x), np.mean(x), *(np.sum(d**k) for k in (2, 3, 4))]
        np.testing.assert_allclose(row, want, rtol=1e-9, atol=1e-9 * len(x))


def test_equal_values_give_zero_spread_and_no_samples_give_a_zero_row():
    # M2 and M4 of equal values are 0, clamped where rounding made them negative (7 values of 0.7 summed from a
    # shift of 0: S2 - n m^2 = -1.3e-15); a chunk of no samples is zeros.
    sums = np.array([_sums(np.full(7, 0.7), 0.0), _sums(np.full(3, 1e300), 1e300), [0, 0, 0, 0, 0, 0]])
    rows = moments.central_rows(sums)
    np.testing.assert_array_equal(rows[:, [2, 4]], 0.0)
    assert not np.signbit(rows[:, [2, 4]]).any()
    np.testing.assert_array_equal(rows[2], 0.0)
    assert rows[0, 1] == pytest.approx(0.7, rel=1e-15) and rows[1, 1] == 1e300


def test_chain_rows_give_the_outputs_moments_then_the_squared_derivatives_mean_and_m2():
    rng = np.random.default_rng(3)
    y, g = rng.normal(size=500), rng.exponential(size=500)
    s_y, s_g = _sums(y, y[0]), _sums(g, g[0])
    rows = moments.chain_rows(np.array([[500, y[0], g[0], *s_y[2:], *s_g[2:4]]]))
    assert rows.shape == (1, 10)
    np.testing.assert_array_equal(rows[0, :5], moments.central_rows(np.array([s_y]))[0])
    dg = g - np.mean(g)
    np.testing.assert_allclose(rows[0, 5:8], [500, np.mean(g), np.sum(dg * dg)], rtol=1e-12)
    np.testing.assert_array_equal(rows[0, 8:], 0.0)

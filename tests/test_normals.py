"""The kernels' normals (estimators/normals.py) against numpy's SFC64 words and the normal law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba.np.random._constants import fi_double, ki_double, wi_double, ziggurat_nor_inv_r, ziggurat_nor_r
from scipy import stats

from momentcalc.estimators import normals


def _bit_generator(seed):
    return np.random.SFC64(np.random.SeedSequence(seed))


class _Reference:
    """numpy's ziggurat in plain Python on numpy's own SFC64 words, with the block order of normals.fill."""

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

    def normals(self, n):
        out = []
        for start in range(0, n, normals.BLOCK):
            block = [self.fast(self.word()) for _ in range(min(normals.BLOCK, n - start))]
            values = [x for x, _, _, _ in block]
            for j, (x, idx, rabs, passed) in enumerate(block):
                if not passed:
                    values[j] = self.finish(x, idx, rabs)
            out.extend(values)
        return np.array(out)


@pytest.mark.parametrize("seed", [0, 7])
def test_normals_equal_the_plain_python_ziggurat_on_numpys_words(seed):
    n = 5 * normals.BLOCK + 17  # about 20 missed draws, a partial last block
    fast = normals.standard_normals(normals.state_of(_bit_generator(seed)), n)
    np.testing.assert_array_equal(fast, _Reference(_bit_generator(seed)).normals(n))


def test_the_state_advances_as_numpys_sfc64():
    state = normals.state_of(_bit_generator(3))
    normals.standard_normals(state, 1000)
    reference = _bit_generator(3)
    _Reference(reference).normals(1000)
    np.testing.assert_array_equal(state, normals.state_of(reference))


def test_before_the_first_missed_draw_the_values_are_numpys():
    fast = normals.standard_normals(normals.state_of(_bit_generator(1)), 400)
    numpy_values = np.random.Generator(_bit_generator(1)).standard_normal(400)
    first_miss = np.argmax(fast != numpy_values)
    assert first_miss > 0
    np.testing.assert_array_equal(fast[:first_miss], numpy_values[:first_miss])


def test_next_double_is_numpys_uniform():
    state = normals.state_of(_bit_generator(4))
    got = [_next_double(state) for _ in range(5)]
    np.testing.assert_array_equal(got, np.random.Generator(_bit_generator(4)).random(5))


def _next_double(state):
    from numba import njit

    return njit(lambda s: normals.next_double(s))(state)


def test_normals_follow_the_normal_law():
    z = normals.standard_normals(normals.state_of(_bit_generator(11)), 1 << 22)
    n = z.size
    # Moments: E z = 0, E z^2 = 1, E z^4 = 3 (Var z^2 = 2, Var z^4 = 96).
    assert abs(z.mean()) < 5 * math.sqrt(1 / n)
    assert abs((z**2).mean() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z**4).mean() - 3) < 5 * math.sqrt(96 / n)
    # The ziggurat's rare paths: its tail beyond r and the wedges, through tail probabilities.
    for cut in (ziggurat_nor_r, 2.0, 0.5):
        p = 2 * stats.norm.sf(cut)
        assert abs(np.mean(np.abs(z) > cut) - p) < 5 * math.sqrt(p * (1 - p) / n), cut
    assert stats.kstest(z[: 1 << 20], "norm").pvalue > 1e-4

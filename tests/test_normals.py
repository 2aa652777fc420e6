"""The kernels' normals (estimators/normals.py) against numpy's SFC64 words and the normal law."""

from __future__ import annotations

import math

import kernel_samples
import naive
import numpy as np
import pytest
from scipy import stats

from momentcalc.estimators import montecarlo, normals
from momentcalc.estimators.ziggurat_tables import ZIGGURAT_NOR_R as ziggurat_nor_r
from momentcalc.spec import parse


def _bit_generator(seed):
    return np.random.SFC64(np.random.SeedSequence(seed))


@pytest.mark.parametrize("seed", [0, 7])
def test_normals_equal_the_plain_python_ziggurat_on_numpys_words(seed):
    n = 5 * normals.BLOCK + 17  # about 20 missed draws, a partial last block
    fast = kernel_samples.standard_normals(normals.state_of(_bit_generator(seed)), n)
    np.testing.assert_array_equal(fast, naive.Ziggurat(_bit_generator(seed)).normals(n))


def test_the_state_advances_as_numpys_sfc64():
    state = normals.state_of(_bit_generator(3))
    kernel_samples.standard_normals(state, 1000)
    reference = _bit_generator(3)
    naive.Ziggurat(reference).normals(1000)
    np.testing.assert_array_equal(state, normals.state_of(reference))


def test_before_the_first_missed_draw_the_values_are_numpys():
    fast = kernel_samples.standard_normals(normals.state_of(_bit_generator(1)), 400)
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
    z = kernel_samples.standard_normals(normals.state_of(_bit_generator(11)), 1 << 22)
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


def test_window_kernels_draw_whole_outputs_per_fill_and_uniforms_between_fills():
    # naive.BlockStream is the window kernels' stream in plain Python (fills of whole outputs'
    # normals from numpy's words, then the dropout uniforms of those outputs in draw order).
    ops = parse("dropout(p=0.5) | maxpool(k=3)").ops
    program = montecarlo.compile_program(parse("dropout(p=0.5) | maxpool(k=3)"), 0.0, 1.0)
    n = naive.normals_per_output(ops)  # 9: a 3x3 window
    count = normals.per_fill(n) + 40  # past the first fill
    fused = kernel_samples.sample_outputs(normals.state_of(_bit_generator(8)), count, *program.kernel_args())
    stream = naive.BlockStream(_bit_generator(8), n, count)
    slow = [naive.one_output(stream, ops, 0.0, 1.0, {}) for _ in range(count)]
    np.testing.assert_allclose(fused, slow, rtol=0, atol=1e-13)  # dropout: b * x in the kernel, x / divisor here


def test_the_vendored_tables_are_numbas_copy_of_numpys():
    constants = pytest.importorskip("numba.np.random._constants")  # private: skipped if numba moves it
    np.testing.assert_array_equal(normals.WI, constants.wi_double)
    np.testing.assert_array_equal(normals.KI, np.asarray(constants.ki_double, dtype=np.uint64))
    np.testing.assert_array_equal(normals.FI, constants.fi_double)
    assert (ziggurat_nor_r, normals.ziggurat_nor_inv_r) == (constants.ziggurat_nor_r, constants.ziggurat_nor_inv_r)

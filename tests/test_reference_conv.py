"""The numpy reference conv/pool against the slides' worked examples, scipy and finite differences."""

import numpy as np
import pytest
import reference_conv as ref
from scipy import signal

# The slides' 5x5 input and 3x3 kernel.
X = np.array(
    [
        [3, 3, 2, 1, 0],
        [0, 0, 1, 3, 1],
        [3, 1, 2, 2, 3],
        [2, 0, 0, 2, 2],
        [2, 0, 0, 0, 1],
    ],
    dtype=float,
)
W = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], dtype=float)


def test_slides_conv_stride_1_no_padding():
    expected = [[12, 12, 17], [10, 17, 19], [9, 6, 14]]
    np.testing.assert_array_equal(ref.conv2d(X, W), expected)


def test_slides_conv_stride_2_padding_1():
    expected = [[6, 17, 3], [8, 17, 13], [6, 4, 4]]
    np.testing.assert_array_equal(ref.conv2d(X, W, stride=2, padding=1), expected)


def test_slides_average_pool():
    expected = [[1.7, 1.7, 1.7], [1.0, 1.2, 1.8], [1.1, 0.8, 1.3]]
    np.testing.assert_array_equal(np.round(ref.avgpool2d(X, 3, stride=1), 1), expected)


def test_slides_max_pool():
    expected = [[3, 3, 3], [3, 3, 3], [3, 2, 3]]
    np.testing.assert_array_equal(ref.maxpool2d(X, 3, stride=1), expected)


def test_padded_pools_by_hand():
    # k=3, s=2, p=1: windows cover rows/cols {0,1}, {1,2,3}, {3,4} of X
    np.testing.assert_array_equal(ref.maxpool2d(X, 3, 2, 1), [[3, 3, 3], [3, 3, 3], [2, 2, 2]])
    with_pad = ref.avgpool2d(X, 3, 2, 1, count_include_pad=True)
    without = ref.avgpool2d(X, 3, 2, 1, count_include_pad=False)
    # corner windows: top-left {3,3,0,0}, bottom-right {2,2,0,1}; middle {0,1,3,1,2,2,0,0,2}
    assert with_pad[0, 0] == pytest.approx(6 / 9) and without[0, 0] == pytest.approx(6 / 4)
    assert with_pad[2, 2] == pytest.approx(5 / 9) and without[2, 2] == pytest.approx(5 / 4)
    assert with_pad[1, 1] == without[1, 1] == pytest.approx(11 / 9)


@pytest.mark.parametrize("s, p", [(1, 0), (1, 2), (2, 1), (3, 0), (2, 2)])
def test_conv_matches_scipy_correlate2d(s, p):
    rng = np.random.default_rng(np.random.SeedSequence([11, s, p]))
    x, w = rng.standard_normal((3, 9, 9)), rng.standard_normal((2, 3, 3, 3))
    expected = np.stack(
        [sum(signal.correlate2d(np.pad(x[c], p), w[o, c], mode="valid") for c in range(3))[::s, ::s] for o in range(2)]
    )
    np.testing.assert_allclose(ref.conv2d(x, w, s, p), expected, rtol=0, atol=1e-12)


def test_dilated_conv_matches_scipy_with_a_dilated_kernel():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((9, 9)), rng.standard_normal((3, 3))
    w_dilated = np.zeros((5, 5))
    w_dilated[::2, ::2] = w
    expected = signal.correlate2d(np.pad(x, 1), w_dilated, mode="valid")
    np.testing.assert_allclose(ref.conv2d(x, w, 1, 1, dilation=2), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0, 1, 2])
def test_unit_stride_input_grad_is_scipy_full_convolution(p):
    """For s=1 the input gradient is the full (true) convolution of g with the kernel."""
    rng = np.random.default_rng(np.random.SeedSequence([7, p]))
    w, g = rng.standard_normal((3, 3)), rng.standard_normal((6 + 2 * p - 2,) * 2)
    full = signal.convolve2d(g, w, mode="full")
    expected = full[p : p + 6, p : p + 6]
    for grad in (ref.conv2d_input_grad_scatter, ref.conv2d_input_grad_rot180):
        np.testing.assert_allclose(grad(g, w, 6, 1, p), expected, rtol=0, atol=1e-12)


def _numerical_grad(f, x, g, eps=1e-6):
    """d/dx of sum(g * f(x)) by central differences (exact for piecewise-linear f up to rounding)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = np.sum(g * (f(up) - f(down))) / (2 * eps)
    return grad


@pytest.mark.parametrize("s, p, d", [(1, 0, 1), (2, 1, 1), (3, 0, 1), (2, 2, 1), (1, 1, 2), (2, 0, 2)])
def test_conv_input_grads_match_finite_differences(s, p, d):
    rng = np.random.default_rng(np.random.SeedSequence([3, s, p, d]))
    x, w = rng.standard_normal((2, 7, 7)), rng.standard_normal((3, 2, 3, 3))
    g = rng.standard_normal(ref.conv2d(x, w, s, p, d).shape)
    numeric = _numerical_grad(lambda z: ref.conv2d(z, w, s, p, d), x, g)
    scatter = ref.conv2d_input_grad_scatter(g, w, 7, s, p, d)
    rotated = ref.conv2d_input_grad_rot180(g, w, 7, s, p, d)
    np.testing.assert_allclose(scatter, numeric, rtol=0, atol=1e-7)
    np.testing.assert_allclose(rotated, scatter, rtol=0, atol=1e-12)


def test_batched_weights_match_one_at_a_time():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((4, 3, 2, 3, 3))
    batched = ref.conv2d(x, w, 2, 1)
    for b in range(4):
        np.testing.assert_allclose(batched[b], ref.conv2d(x[b], w[b], 2, 1), rtol=0, atol=1e-12)


def test_dilate_inserts_stride_minus_one_zeros():
    np.testing.assert_array_equal(
        ref.dilate2d(np.array([[1.0, 2.0], [3.0, 4.0]]), 3), [[1, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]
    )


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 1)])
def test_maxpool_grad_matches_finite_differences(k, s, p):
    rng = np.random.default_rng(np.random.SeedSequence([4, k, s, p]))
    x = rng.standard_normal((6, 6))  # continuous values: no ties in any window
    g = rng.standard_normal(ref.maxpool2d(x, k, s, p).shape)
    numeric = _numerical_grad(lambda z: ref.maxpool2d(z, k, s, p), x, g)
    np.testing.assert_allclose(ref.maxpool2d_input_grad(x, g, k, s, p), numeric, rtol=0, atol=1e-7)


def test_maxpool_grad_routes_to_the_window_max_by_hand():
    x = np.arange(16.0).reshape(4, 4)  # each 2x2 window's max is its bottom-right entry
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(ref.maxpool2d_input_grad(x, g, 2), expected)


@pytest.mark.parametrize("k, s, p, include", [(3, 1, 0, True), (3, 2, 1, True), (3, 2, 1, False), (2, 1, 1, False)])
def test_avgpool_grad_matches_finite_differences(k, s, p, include):
    rng = np.random.default_rng(np.random.SeedSequence([6, k, s, p, include]))
    x = rng.standard_normal((6, 6))
    g = rng.standard_normal(ref.avgpool2d(x, k, s, p, include).shape)
    numeric = _numerical_grad(lambda z: ref.avgpool2d(z, k, s, p, include), x, g)
    np.testing.assert_allclose(ref.avgpool2d_input_grad(g, 6, k, s, p, include), numeric, rtol=0, atol=1e-7)


def test_pools_accept_a_batch_axis():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 5))
    np.testing.assert_array_equal(ref.maxpool2d(x, 3, 2, 1)[1], ref.maxpool2d(x[1], 3, 2, 1))
    np.testing.assert_allclose(ref.avgpool2d(x, 2, 1)[2], ref.avgpool2d(x[2], 2, 1), rtol=0, atol=1e-15)

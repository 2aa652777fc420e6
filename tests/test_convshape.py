"""Output-size arithmetic against the relationships of Dumoulin & Visin (arXiv 1603.07285)."""

import numpy as np
import pytest
from naive import read_positions

from momentcalc.convshape import conv_shape, effective_kernel, output_size, padding_for, read_count, unread_positions
from momentcalc.errors import MomentcalcError
from momentcalc.settings import SHAPE_MAX


# (i, k, s, p, o) from the worked figures of the slides / paper, Relationships 1-7.
@pytest.mark.parametrize(
    "i, k, s, p, o",
    [
        (4, 3, 1, 0, 2),  # Relationship 1: no padding, unit strides
        (5, 4, 1, 2, 6),  # Relationship 2: arbitrary padding
        (5, 3, 1, 1, 5),  # Relationship 3: half padding
        (5, 3, 1, 2, 7),  # Relationship 4: full padding
        (5, 3, 2, 0, 2),  # Relationship 5: no padding, stride 2
        (5, 3, 2, 1, 3),  # Relationship 6: padding and stride
    ],
)
def test_relationships_from_the_guide(i, k, s, p, o):
    assert output_size(i, k, s, p) == o
    assert conv_shape(i, k, s, p).output == o


def test_pooling_relationship_7_and_pool_defaults():
    assert conv_shape(5, 3, 1, pool=True).output == 3  # slides: i=5, k=3, s=1 -> 3
    default = conv_shape(6, 2, pool=True)  # stride defaults to k, padding to 0
    assert (default.stride, default.padding, default.output) == (2, 0, 3)


def test_dilation_relationship_15():
    # Guide, Relationship 15 figure: i=7, k=3, d=2, s=1, p=0 gives o=3.
    assert effective_kernel(3, 2) == 5
    assert output_size(7, 3, 1, 0, 2) == 3


@pytest.mark.parametrize("i", [1, 4, 5, 10])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_same_padding_keeps_size_for_odd_kernels(i, k):
    result = conv_shape(i, k, 1, padding="same")
    assert (result.padding, result.output) == (k // 2, i)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_same_padding_with_even_kernel_grows_by_one(k):
    # symmetric p = k/2 adds k zeros, one more than the k - 1 that o = i needs
    assert conv_shape(9, k, 1, padding="same").output == 10


@pytest.mark.parametrize("i, k", [(5, 3), (4, 4), (1, 2)])
def test_full_and_valid_padding(i, k):
    assert padding_for("valid", k) == 0
    full = conv_shape(i, k, 1, padding="full")
    assert (full.padding, full.output) == (k - 1, i + k - 1)
    assert padding_for("half", k) == padding_for("same", k) == k // 2


@pytest.mark.parametrize("i", range(1, 12))
@pytest.mark.parametrize("k, s, p, d", [(1, 1, 0, 1), (3, 2, 1, 1), (2, 3, 0, 1), (3, 1, 2, 2), (4, 3, 1, 1)])
def test_output_size_counts_window_positions(i, k, s, p, d):
    """o equals the number of window starts that fit, counted directly; none fit is an error."""
    span = d * (k - 1) + 1
    if span > i + 2 * p:
        with pytest.raises(MomentcalcError, match="does not fit"):
            output_size(i, k, s, p, d)
        return
    starts = [t for t in range(0, i + 2 * p) if t % s == 0 and t + span <= i + 2 * p]
    assert output_size(i, k, s, p, d) == len(starts)


def test_no_warning_when_every_input_is_read():
    result = conv_shape(5, 3, 2, 1)
    assert result.unread_first == () and result.warning is None


def test_warning_for_stride_larger_than_kernel():
    # windows start at 0 and 3, reading {0, 1} and {3, 4}: 2, 5 and 6 are never read
    result = conv_shape(7, 2, 3, 0)
    assert result.unread_first == (2, 5, 6)
    assert "never read" in result.warning and "stride 3" in result.warning


def test_warning_for_rows_dropped_by_the_floor():
    # i=6, k=3, s=2: windows {0,1,2}, {2,3,4}; the floor drops input 5
    result = conv_shape(6, 3, 2, 0)
    assert result.unread_first == (5,)
    assert "floor" in result.warning


def test_warning_for_windows_of_only_padding():
    assert "only padding" in conv_shape(5, 1, 1, 2).warning


@pytest.mark.parametrize("i, k, s, p", [(7, 2, 3, 0), (6, 3, 2, 0), (9, 3, 4, 1), (5, 3, 2, 1)])
def test_unread_positions_get_no_gradient_in_reference_conv(i, k, s, p):
    """Independent check of ``unread``: an all-ones backward pass leaves exactly those rows at zero."""
    from momentcalc.input_grads import conv2d_input_grad_scatter

    o = output_size(i, k, s, p)
    grad = conv2d_input_grad_scatter(np.ones((o, o)), np.ones((k, k)), i, s, p)
    zero_rows = tuple(int(r) for r in np.flatnonzero(grad.sum(axis=1) == 0))
    assert conv_shape(i, k, s, p).unread_first == zero_rows
    assert read_positions(i, k, s, p) == set(range(i)) - set(zero_rows)
    assert read_count(i, k, s, p) == i - len(zero_rows)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(i=2, k=3), "does not fit"),
        (dict(i=3, k=3, d=2), "does not fit"),
        (dict(i=5, k=3, s=0), "s must be >= 1"),
        (dict(i=5, k=3, d=0), "d must be >= 1"),
        (dict(i=5, k=0), "k must be >= 1"),
        (dict(i=0, k=1), "i must be >= 1"),
        (dict(i=5, k=3, p=-1), "p must be >= 0"),
        (dict(i=5, k=3, p=2, pool=True), "more than half"),
        (dict(i=5, k=3, pool=True, padding="full"), "more than half"),
        (dict(i=5, k=3, p=1, padding="same"), "not both"),
        (dict(i=5, k=3, padding="circular"), "valid, same"),
    ],
)
def test_impossible_shapes_raise(kwargs, fragment):
    with pytest.raises(MomentcalcError, match=fragment):
        conv_shape(**kwargs)


def test_pool_padding_up_to_half_the_kernel_is_allowed():
    # PyTorch: p <= k/2, so k=3 allows 1 and k=2 allows 1
    assert conv_shape(5, 3, 2, 1, pool=True).output == 3
    assert conv_shape(4, 2, 2, 1, pool=True).output == 3


def test_as_dict_keys():
    assert conv_shape(5, 3, 2, 1).as_dict() == {"output": 3, "padding": 1, "warning": None}


@pytest.mark.parametrize("s", range(1, 6))
@pytest.mark.parametrize("d", range(1, 4))
@pytest.mark.parametrize("k", range(1, 6))
def test_read_count_matches_listing_every_tap(k, d, s):
    """The floor-sum count of read inputs, over every sub-range, equals listing every tap of every window."""
    for i in range(1, 15):
        for p in range(0, 4):
            if effective_kernel(k, d) > i + 2 * p:
                continue
            read = read_positions(i, k, s, p, d)
            for lo in range(0, i + 1, 3):
                for hi in range(lo, i + 1, 3):
                    assert read_count(i, k, s, p, d, lo, hi) == sum(lo <= u < hi for u in read)
            assert unread_positions(i, k, s, p, d) == tuple(sorted(set(range(i)) - read))[:8]


# Huge sizes answer by integer arithmetic (issue 13: i = 1e8 took 21 GB, i = 1e20 hung). The expected values
# are the guide's o = floor((i + 2p - k_eff)/s) + 1, and, for d = 1 and s <= k (windows that touch or
# overlap), inputs unread only after the last window: i - ((o - 1) s - p + k).
@pytest.mark.parametrize(
    "i, k, s, p",
    [(99999999999999999999, 3, 1, 0), (100000000, 3, 2, 0), (10**40, 5, 4, 2), (10**40 - 1, 10**20, 10**19, 7)],
)
def test_huge_inputs_answer_in_closed_form(i, k, s, p):
    result = conv_shape(i, k, s, p)
    o = (i + 2 * p - k) // s + 1
    assert result.output == o
    assert result.unread_count == max(0, i - ((o - 1) * s - p + k))


def test_huge_gapped_windows_count_their_gaps():
    # k=1, s=2 reads the even indices 0, 2, ..., so half of an even i is never read, starting at 1
    result = conv_shape(10**30, 1, 2)
    assert (result.unread_count, result.unread_first) == (10**30 // 2, (1, 3, 5, 7, 9, 11, 13, 15))
    assert "5 * 10**29" not in result.warning and f"{10**30 // 2} of {10**30}" in result.warning


@pytest.mark.parametrize("name", ["i", "k", "s", "d", "p"])
def test_sizes_beyond_the_documented_range_are_refused(name):
    kwargs = dict(i=10, k=3, s=1, d=1, p=0)
    kwargs[name] = SHAPE_MAX + 1
    with pytest.raises(MomentcalcError, match=f"{name} must be at most 10\\*\\*40"):
        conv_shape(**kwargs)

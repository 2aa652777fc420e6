"""block_ops' erf, erfc, gelu and erf blocks against mpmath on the dense tail grid: every 0.005 out to 40.

Why in tests_long/: the mpmath reference at 30 digits over 16,000 points takes about 4 s of CPU per test;
tests/test_block_ops.py runs the same checks on every 0.04 of the same grid and on all its edge points.
"""

import pytest
from test_block_ops import tail_grid
from test_block_ops import test_erfc_parts_are_within_a_few_ulps_of_mpmath_out_to_underflow as erfc_parts
from test_block_ops import test_gelu_and_erf_blocks_keep_their_relative_digits_into_the_far_tails as far_tails

DENSE = tail_grid(8000)


def test_erfc_parts_are_within_a_few_ulps_of_mpmath_out_to_underflow():
    erfc_parts(DENSE)


@pytest.mark.parametrize("name", ["gelu", "erf"])
def test_gelu_and_erf_blocks_keep_their_relative_digits_into_the_far_tails(name):
    far_tails(name, DENSE)

"""Monte Carlo cases whose kernels no other test compiles: nested max pools against quadrature, and the chunk
moments of a valley chain's max against a two-pass reference.

Why in tests_long/: each compiles a kernel of its own (about 7 and 3.5 s of CPU, cold), for checks that
tests/test_montecarlo.py makes on the other pipelines of the same lists.
"""

import pytest
from test_montecarlo import test_chunk_moments_match_a_two_pass_reference as chunk_moments
from test_montecarlo import test_monte_carlo_agrees_with_exact_within_z_se as agrees_with_exact


def test_nested_max_pools_agree_with_exact_within_z_se():
    agrees_with_exact("maxpool(k=2) | maxpool(k=2)", 0.0, 1.0, 8)


@pytest.mark.parametrize("spec", ["gelu | maxpool(k=3)"])
def test_chunk_moments_match_a_two_pass_reference(spec):
    chunk_moments(spec)

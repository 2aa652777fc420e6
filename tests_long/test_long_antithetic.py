"""Antithetic pairs' chunk sums for the pipelines whose kernels only these cases compile.

Why in tests_long/: each pipeline here compiles a kernel of its own and its reference mirror (about 4 s of CPU
each, cold), for a check that tests/test_antithetic.py makes on the other pipelines of the same list.
"""

import pytest
from test_antithetic import test_chunk_sums_are_the_sums_over_the_pairs as chunk_sums_are_the_sums_over_the_pairs


@pytest.mark.parametrize(
    "spec",
    [
        "relu | maxpool(k=2) | avgpool(k=2)",  # nested windows
        "dropout(p=0.5) | maxpool(k=2) | tanh",  # one window between chains, dropout masks drawn in between
        "tanh | maxpool(k=2) | sigmoid",  # the max of a monotone chain taken at the window's extremes
    ],
)
def test_chunk_sums_are_the_sums_over_the_pairs(spec):
    chunk_sums_are_the_sums_over_the_pairs(spec)

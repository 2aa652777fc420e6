"""The exact methods within their error bounds at the domain's edges: the quick matrix's cases that
tests/test_domain.py leaves out (it keeps each spec's first case).

Why in tests_long/: the 54 cases take about 13 s of CPU (quadrature and certified at extreme mu and sigma).
"""

import pytest
from test_domain import _WANT, LONG, _check


@pytest.mark.parametrize("spec, mu, sigma", LONG)
def test_exact_methods_within_their_bounds(spec, mu, sigma):
    _check(spec, mu, sigma, _WANT[(spec, mu, sigma)])

"""Monte Carlo of a min pool between a chain and a mean window, within z * SE of quadrature.

Why in tests_long/: its nested-window kernel is compiled by no other test (about 4 s of CPU, cold);
tests/test_minpool.py makes the same check on a lone min pool and on a chain before one.
"""

from test_minpool import test_monte_carlo_within_z_se_of_quadrature as within_z_se_of_quadrature


def test_monte_carlo_within_z_se_of_quadrature():
    within_z_se_of_quadrature("tanh | minpool(k=2) | avgpool(k=2)")

"""Activations before a max pool and inside a long pipeline: quadrature against Monte Carlo within z * SE.

Why in tests_long/: each spec compiles a Monte Carlo kernel of its own that no other test needs (gelu's max pool
about 6 s of CPU cold, the pipeline about 4 s); tests/test_exact.py and tests/test_antithetic.py check an
activation before a max pool against Monte Carlo in the main suite.
"""

import pytest

from momentcalc.estimators import montecarlo, quadrature
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

Z = 4.5


@pytest.mark.parametrize("spec", ["gelu | maxpool(k=2)", "hardswish | maxpool(k=2)", "relu6 | maxpool(k=3)"])
def test_max_pooling_after_activations_agrees_with_monte_carlo(spec):
    # Monotone ones commute with the max; the others go through the CDF of the chain (quadrature.max_by_cdf).
    exact = quadrature.estimate_moments(parse(spec), 0.0, 1.0)
    got = montecarlo.run(montecarlo.compile_program(parse(spec), 0.0, 1.0), RunSettings(samples=1 << 18, seed=5))
    assert abs(got.mean - exact[0]) <= Z * got.mean_se and abs(got.std - exact[1]) <= Z * got.std_se


def test_activations_inside_a_pipeline_match_monte_carlo():
    spec = "leaky_relu(slope=0.1) | normalize | dropout(p=0.8) | softsign | hardtanh(min_val=-0.3) | avgpool(k=2)"
    exact = quadrature.estimate_moments(parse(spec), 0.2, 1.5)
    got = montecarlo.run(montecarlo.compile_program(parse(spec), 0.2, 1.5), RunSettings(samples=1 << 18, seed=3))
    assert abs(got.mean - exact[0]) <= Z * got.mean_se and abs(got.std - exact[1]) <= Z * got.std_se

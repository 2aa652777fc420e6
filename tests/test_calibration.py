"""Monte Carlo standard errors are calibrated: over many seeds, z = (estimate - exact) / SE behaves like N(0, 1).

Exact values are closed forms at N(0, 1): relu's mean 1/sqrt(2 pi) and std sqrt(1/2 - 1/(2 pi)); the max of 9
normals (maxpool(k=3), antithetic pairs) 1.4850131622092373 / 0.5977903699105678 (David & Nagaraja's order
statistics, also momentcalc's certified enclosure). False alarms: with SEEDS seeds, each |z| > k rate may exceed
its normal probability by at most 3 binomial standard deviations, so a calibrated estimator fails this test with
probability about 0.1% per rate; the mean z must lie within 3 standard errors of 0. The same check for QMC is in
test_qmc.py; bench/qmc_calibration.py runs both kinds at full size.
"""

import math

import numpy as np
import pytest

from momentcalc.estimators import montecarlo
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

SEEDS = 200
SAMPLES = 1 << 12
EXACT = {
    "relu": (1.0 / math.sqrt(2.0 * math.pi), math.sqrt(0.5 - 0.5 / math.pi)),
    "maxpool(k=3)": (1.4850131622092373, 0.5977903699105678),
}
NORMAL_OVER = {2: math.erfc(2.0 / math.sqrt(2.0)), 3: math.erfc(3.0 / math.sqrt(2.0))}


def _z_scores(spec: str) -> dict[str, np.ndarray]:
    program = montecarlo.compile_program(parse(spec), 0.0, 1.0)
    mean, std = EXACT[spec]
    runs = [montecarlo.run(program, RunSettings(samples=SAMPLES, seed=seed)) for seed in range(SEEDS)]
    return {
        "mean": np.array([(r.mean - mean) / r.mean_se for r in runs]),
        "std": np.array([(r.std - std) / r.std_se for r in runs]),
    }


@pytest.mark.parametrize("spec", list(EXACT))
def test_monte_carlo_z_scores_are_calibrated(spec):
    for quantity, z in _z_scores(spec).items():
        for k, p in NORMAL_OVER.items():
            rate, bound = np.mean(np.abs(z) > k), p + 3.0 * math.sqrt(p * (1.0 - p) / SEEDS)
            assert rate <= bound, f"{spec} {quantity}: |z| > {k} in {rate:.1%} of runs (at most {bound:.1%})"
        assert abs(z.mean()) <= 3.0 / math.sqrt(SEEDS), f"{spec} {quantity}: mean z {z.mean():+.3f}"
        assert 0.8 <= z.std() <= 1.2, f"{spec} {quantity}: z spread {z.std():.2f}, 1 if the SEs are right"

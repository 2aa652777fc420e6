"""QMC's z-scores calibrated over many seeds for a max pool (tests/test_qmc.py checks relu's in the main suite).

Why in tests_long/: the replicas of many seeds of maxpool(k=3) take about 3 s of CPU.
"""

import pytest
from test_qmc import test_qmc_z_scores_are_calibrated as qmc_z_scores_are_calibrated


@pytest.mark.parametrize("spec", ["maxpool(k=3)"])
def test_qmc_z_scores_are_calibrated(spec):
    qmc_z_scores_are_calibrated(spec)

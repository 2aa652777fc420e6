"""QMC's z-scores calibrated over many seeds for a max pool (tests/test_qmc.py checks relu's in the main suite); a
QMC run through the estimators alone in a fresh process.

Why in tests_long/: the replicas of many seeds of maxpool(k=3) take about 3 s of CPU; the fresh process imports
the estimators and compiles or loads its kernels, about 3 s.
"""

import pytest
from fresh import run_python
from test_qmc import test_qmc_z_scores_are_calibrated as qmc_z_scores_are_calibrated


@pytest.mark.parametrize("spec", ["maxpool(k=3)"])
def test_qmc_z_scores_are_calibrated(spec):
    qmc_z_scores_are_calibrated(spec)


def test_a_qmc_run_through_the_estimators_alone_in_a_fresh_process():
    # scipy.stats was a lazily loaded module here: loaded in the middle of another import, it came up without its
    # qmc attribute, and a QMC run through the estimators alone raised AttributeError. The suite's order hid it
    # (another test had imported scipy.stats first), so this runs in a process of its own.
    code = (
        "from momentcalc.estimators import montecarlo, qmc\n"
        "from momentcalc.settings import RunSettings\n"
        "from momentcalc.spec import parse\n"
        "p = montecarlo.compile_program(parse('maxpool(k=2)'), 0.0, 1.0)\n"
        "print(qmc.run(p, RunSettings(tol=1e-4, seed=5)).samples)\n"
    )
    assert int(run_python(code, timeout=300)) >= 1 << 14

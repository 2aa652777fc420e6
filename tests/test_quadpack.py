"""quadpack.py runs QUADPACK's qagse as scipy.integrate.quad does, without scipy.integrate's package; tracked.py's
log Phi on the math module; maxpool(n) quadrature keeps honest bounds at n = 9, 10^4, 10^6."""

import math
import subprocess
import sys

import mpmath as mp
import pytest
from fresh import REPO
from scipy import integrate

from momentcalc.estimators import certified, quadpack, quadrature, tracked
from momentcalc.spec import parse

INTEGRANDS = [
    (lambda x: math.exp(-x * x / 2), -3.0, 5.0, 1e-15, 1e-13),
    (lambda x: abs(x - 0.3) ** 0.5, -1.0, 2.0, 0.0, 1e-3),  # a cusp: many subdivisions
    (lambda x: math.sin(40 * x) * x, 0.0, 3.0, 1e-14, 1e-12),
    (lambda x: 1.0 / x, 1e-300, 1.0, 1e-15, 1e-13),  # divergent: QUADPACK gives up, its estimate says so
]


@pytest.mark.parametrize("f, a, b, epsabs, epsrel", INTEGRANDS)
def test_the_same_numbers_as_scipy_quad(f, a, b, epsabs, epsrel):
    with pytest.warns(integrate.IntegrationWarning) if f is INTEGRANDS[3][0] else _nothing():
        want = integrate.quad(f, a, b, epsabs=epsabs, epsrel=epsrel, limit=50)
    assert quadpack.quad(f, a, b, epsabs, epsrel, 50) == want
    assert quadpack._public_quad(f, a, b, (), 0, epsabs, epsrel, 50)[:2] == want  # the fallback: the same rule


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("a, b", [(0.0, math.inf), (-math.inf, 0.0), (1.0, 0.0), (math.nan, 1.0)])
def test_refuses_what_it_does_not_integrate(a, b):
    with pytest.raises(ValueError, match="finite interval"):
        quadpack.quad(math.exp, a, b, 1e-15, 1e-13, 50)


def test_scipy_integrate_imported_afterwards_shares_the_extension():
    code = (
        "import sys\n"
        "from momentcalc.estimators import quadpack\n"
        "quadpack.quad(abs, -1.0, 1.0, 1e-15, 1e-13, 50)\n"
        "assert 'scipy.integrate._quadpack_py' not in sys.modules\n"
        "loaded = sys.modules[quadpack.NAME]\n"
        "import scipy.integrate\n"
        "assert sys.modules['scipy.integrate._quadpack_py']._quadpack is loaded\n"
        "print(scipy.integrate.quad(abs, -1.0, 1.0)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0"]


@pytest.mark.parametrize("b", [-45.0, -30.5, -29.5, -12.0, -3.0, -0.5, 0.0, 0.7, 3.0, 5.5, 8.0, 37.0])
def test_log_ndtr_against_mpmath(b):
    with mp.workdps(40):
        want = mp.log1p(-mp.ncdf(-b)) if b > 0 else mp.log(mp.ncdf(b))  # the upper tail without rounding to 1
        assert abs(tracked.log_ndtr(b) - want) <= 1e-14 * abs(want) + 1e-300


@pytest.mark.parametrize("n", [9, 10**4, 10**6])
def test_maxpool_n_within_its_bounds_of_the_certified_enclosure(n):
    # The certified enclosures are held to mpmath in test_certified.py (test_max_of_n_standard_normals).
    mean, std, mean_err, std_err = quadrature.estimate_moments(parse(f"maxpool(n={n})"), 0.0, 1.0)
    truth = certified.estimate(parse(f"maxpool(n={n})"), 0.0, 1.0)
    assert abs(mean - truth["mean"].value) <= mean_err and abs(std - truth["std"].value) <= std_err
    assert mean_err < 1e-13 and std_err < 1e-13  # what the bound claimed before: about 4e-14 at n = 10^6

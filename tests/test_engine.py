"""estimate(): methods chosen, value of record, cross-check verdicts."""

import importlib
import math

import pytest
from fresh import run_python

import momentcalc as mc
from momentcalc import MomentcalcError
from momentcalc.crosscheck import compare
from momentcalc.result import Estimate


def test_maxpool_runs_every_applicable_method_and_they_agree():
    r = mc.estimate("maxpool(k=2)", samples=1 << 20, seed=1)
    assert [e.method for e in r.estimates] == ["certified", "closed", "quadrature", "montecarlo"]
    assert r.agree and r.disagreements == []
    assert r.method == "certified" and r.mean_se <= 2.3e-16  # half the enclosure: one ulp
    assert r.mean == pytest.approx(6 * math.atan(math.sqrt(2)) / math.pi**1.5, abs=1e-15)


def test_the_std_of_record_is_quadrature_where_the_closed_form_gives_only_the_mean():
    r = mc.estimate("sigmoid", samples=1 << 18, methods=("closed", "quadrature", "montecarlo"))
    assert [e.method for e in r.estimates] == ["closed", "quadrature", "montecarlo"]
    assert r.estimates[0].std is None
    assert r.method == "quadrature" and r.std is not None and r.agree
    # The mean is chosen on its own: the closed form's 1/2 (sigmoid(x) - 1/2 is odd), exactly.
    assert r.mean_record.method == "closed" and r.mean == 0.5 and r.mean_se == 0.0
    assert r.std == r.estimates[1].std and r.std_se == r.estimates[1].std_se
    d = r.to_dict()
    assert (d["method"], d["mean_method"], d["mean"]) == ("quadrature", "closed", 0.5)


def test_tanh_mean_of_record_is_exactly_zero():
    r = mc.estimate("tanh", samples=1 << 16, methods=("closed", "quadrature", "montecarlo"))
    assert r.estimates[1].method == "quadrature" and r.estimates[1].mean != 0.0  # quadrature's rounding
    assert r.mean == 0.0 and math.copysign(1.0, r.mean) == 1.0 and r.mean_se == 0.0
    assert r.mean_record.method == "closed" and r.method == "quadrature" and r.agree


def test_tanh_mean_is_exactly_zero_by_the_certified_method_too():
    r = mc.estimate("tanh", samples=1 << 16)
    assert r.mean_record.method == "certified" and r.mean == 0.0 and r.agree


def test_one_method_of_record_keeps_the_documents_shape():
    d = mc.estimate("relu", samples=1 << 16).to_dict()
    assert d["method"] == "certified" and "mean_method" not in d


def test_pipeline_has_no_closed_form_but_an_exact_method():
    r = mc.estimate("relu | normalize | maxpool(k=3)", samples=1 << 20, seed=2)
    assert [e.method for e in r.estimates] == ["certified", "quadrature", "montecarlo"]
    assert r.method == "certified" and r.agree


def test_a_method_that_cannot_apply_is_an_error_when_asked_for():
    with pytest.raises(MomentcalcError, match="closed forms exist for single ops"):
        mc.estimate("relu | maxpool(k=3)", method="closed")
    with pytest.raises(MomentcalcError, match="no closed form"):
        mc.estimate("maxpool(k=3)", method="closed")


def test_montecarlo_only_reports_samples_and_seed():
    r = mc.estimate("relu | normalize | maxpool(k=3)", method="montecarlo", samples=10**5, seed=1)
    (e,) = r.estimates
    assert (e.method, e.samples, e.seed) == ("montecarlo", 10**5, 1)
    assert r.checks == () and r.agree
    assert r.to_dict()["estimates"][0]["samples"] == 10**5


def test_disagreement_names_the_pair():
    exact = Estimate("quadrature", 1.0, 2.0, 1e-15, 1e-15)
    noisy = Estimate("montecarlo", 1.0 + 5e-3, 2.0, 1e-3, 1e-3, samples=1000, seed=0)
    checks = compare((exact, noisy), z=4.5)
    assert [c.ok for c in checks] == [False, True]
    assert checks[0].pair == "quadrature vs montecarlo (mean)"
    assert compare((exact, noisy), z=6.0)[0].ok


def test_exact_methods_agree_to_a_few_ulps_plus_their_bounds():
    a = Estimate("closed", 1.0, 1.0, 0.0, 0.0)
    assert compare((a, Estimate("quadrature", 1.0 + 1.5e-15, 1.0, 1e-15, 1e-15)))[0].ok  # 1e-15 + 4 ulps
    assert not compare((a, Estimate("quadrature", 1.0 + 3e-15, 1.0, 1e-15, 1e-15)))[0].ok
    # Without a bound only rounding is allowed: 4 ulps, not 1e-10 (which passed before).
    assert compare((a, Estimate("quadrature", 1.0 + 4 * math.ulp(1.0), 1.0, 0.0, 0.0)))[0].ok
    assert not compare((a, Estimate("quadrature", 1.0 + 5e-11, 1.0, 0.0, 0.0)))[0].ok


@pytest.mark.parametrize("scale", [1e-100, 1e8])
def test_exact_comparison_is_relative_at_any_scale(scale):
    a = Estimate("closed", scale, scale, 0.0, 0.0)

    def quadrature(value, bound):
        return Estimate("quadrature", value, scale, bound, 0.0)

    ulp = math.ulp(scale)
    assert compare((a, quadrature(scale + 3 * ulp, 0.0)))[0].ok
    assert not compare((a, quadrature(scale + 16 * ulp, 0.0)))[0].ok  # 1e-10 absolute passed anything at 1e-100
    assert not compare((a, quadrature(scale * (1 + 1e-12), 0.0)))[0].ok  # 1e-10 relative passed this at 1e8
    assert compare((a, quadrature(scale * (1 + 1e-12), scale * 1e-12)))[0].ok  # within its stated bound
    assert not compare((a, quadrature(scale * (1 + 3e-12), scale * 1e-12)))[0].ok


def test_every_stated_uncertainty_counts():
    # Exact bounds add; a statistical SE counts z times, combined with the other's in quadrature.
    a = Estimate("closed", 1.0, None, 0.0, None)
    b = Estimate("quadrature", 1.0 + 2e-9, None, 1e-9, None)
    c = Estimate("montecarlo", 1.0 + 3e-9, None, 1e-9, None, samples=1000, seed=0)
    checks = {c.pair: c for c in compare((a, b, c), z=1.0)}
    assert not checks["closed vs quadrature (mean)"].ok  # 2e-9 > 1e-9 + ulps
    assert checks["closed vs montecarlo (mean)"].tolerance == pytest.approx(1e-9)
    assert checks["quadrature vs montecarlo (mean)"].tolerance == pytest.approx(2e-9)


def test_result_reports_input_and_canonical_spec():
    r = mc.estimate(" maxpool( dims=1,k=2 )", mu=1.0, sigma=2.0, method="quadrature")
    d = r.to_dict()
    assert d["spec"] == "maxpool(k=2,dims=1)" and d["input"] == {"mu": 1.0, "sigma": 2.0}
    assert d["mean"] == pytest.approx(1.0 + 2.0 / math.sqrt(math.pi), abs=1e-12)


def test_exact_methods_leave_numba_unimported():
    # A subprocess, since this one has imported numba long ago: the Python API's exact methods never need it,
    # for a window or a whole map (--size); the Monte Carlo run after them does (the check can tell).
    code = (
        "import sys, momentcalc\n"
        "for m in ('closed', 'certified', 'quadrature'):\n"
        "    momentcalc.estimate('relu', method=m)\n"
        "momentcalc.estimate('avgpool(k=2,s=1) | relu | avgpool(k=2)', size=8, method='closed')\n"
        "print(sorted(n for n in ('numba', 'dask', 'distributed') if n in sys.modules))\n"
        "momentcalc.estimate('relu', method='montecarlo', samples=1000)\n"
        "print(sorted(n for n in ('numba', 'dask', 'distributed') if n in sys.modules))\n"
    )
    assert run_python(code).split("\n")[:2] == ["[]", "['numba']"]


def test_auto_runs_certified_and_the_closed_form_where_they_check_each_other():
    r = mc.estimate("relu")
    assert [e.method for e in r.estimates] == ["certified", "closed"] and r.agree
    assert r.not_run == ("quadrature", "montecarlo") and r.to_dict()["not_run"] == ["quadrature", "montecarlo"]
    # Two methods give each quantity, so each has a check: mean, std and E[f'^2] (relu's: P(X > 0) = 1/2).
    assert {c.quantity for c in r.checks} == {"mean", "std", "grad_sq"} and r.grad_sq == 0.5
    assert r.mean == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-16)


def test_auto_adds_quadrature_where_no_closed_form_checks_the_certified_value():
    r = mc.estimate("maxpool(k=3)")
    assert [e.method for e in r.estimates] == ["certified", "quadrature"] and r.not_run == ("montecarlo",)
    assert r.agree and r.checks


def test_auto_samples_where_only_one_exact_method_applies(monkeypatch):
    # Its default sample count, made small: samples= would ask auto for every method.
    monkeypatch.setattr(importlib.import_module("momentcalc.estimators.montecarlo"), "DEFAULT_SAMPLES", 1 << 16)
    r = mc.estimate("gelu | maxpool(k=3)")
    assert [e.method for e in r.estimates] == ["quadrature", "montecarlo"] and r.not_run == () and r.agree
    assert "not_run" not in r.to_dict()  # the document keeps its shape where nothing was left out


def test_explicit_methods_leave_nothing_out():
    r = mc.estimate("relu", methods=("certified", "closed", "quadrature"))
    assert [e.method for e in r.estimates] == ["certified", "closed", "quadrature"] and r.not_run == ()

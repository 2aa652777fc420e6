"""estimate(): methods chosen, value of record, cross-check verdicts."""

import math

import pytest

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


def test_record_is_quadrature_where_the_closed_form_gives_only_the_mean():
    r = mc.estimate("sigmoid", samples=1 << 18, methods=("closed", "quadrature", "montecarlo"))
    assert [e.method for e in r.estimates] == ["closed", "quadrature", "montecarlo"]
    assert r.estimates[0].std is None
    assert r.method == "quadrature" and r.std is not None and r.agree


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
    noisy = Estimate("montecarlo", 1.0 + 5e-3, 2.0, 1e-3, 1e-3, samples=10, seed=0)
    checks = compare((exact, noisy), z=4.5)
    assert [c.ok for c in checks] == [False, True]
    assert checks[0].pair == "quadrature vs montecarlo (mean)"
    assert compare((exact, noisy), z=6.0)[0].ok


def test_exact_methods_must_agree_to_1e_10():
    a = Estimate("closed", 1.0, 1.0, 0.0, 0.0)
    assert compare((a, Estimate("quadrature", 1.0 + 5e-11, 1.0, 1e-15, 1e-15)))[0].ok
    assert not compare((a, Estimate("quadrature", 1.0 + 5e-10, 1.0, 1e-15, 1e-15)))[0].ok


def test_result_reports_input_and_canonical_spec():
    r = mc.estimate(" maxpool( dims=1,k=2 )", mu=1.0, sigma=2.0, method="quadrature")
    d = r.to_dict()
    assert d["spec"] == "maxpool(k=2,dims=1)" and d["input"] == {"mu": 1.0, "sigma": 2.0}
    assert d["mean"] == pytest.approx(1.0 + 2.0 / math.sqrt(math.pi), abs=1e-12)

"""The op registry: each op declared once, methods read declarations, and every method refuses what it does not know."""

import pytest

import momentcalc as mc
from momentcalc import MomentcalcError, catalog
from momentcalc.estimators import dispatch_gen
from momentcalc.estimators.dispatch import CODES
from momentcalc.ops.pooling import REDUCTIONS, WINDOW_PARAMS

METHODS = ("certified", "closed", "quadrature", "montecarlo", "qmc")


def test_generated_dispatch_matches_the_registry():
    # Check mode of the generator, as for the tables: a stale dispatch.py names the command that regenerates it.
    assert dispatch_gen.check() is None


def test_every_jitted_activation_has_a_code_and_nothing_else_does():
    assert list(CODES) == [op.name for op in catalog.jitted_activations()]
    assert sorted(CODES.values()) == list(range(1, len(CODES) + 1))
    assert "expr" not in CODES  # numpy only


def test_declarations_are_complete_for_their_kind():
    for op in catalog.all_ops():
        assert op.kind in catalog.KINDS, op.name
        if op.kind == catalog.WINDOW:
            assert op.reduction in REDUCTIONS, op.name
        if op.kind == catalog.ELEMENTWISE:
            assert (op.f is not None and op.df is not None) != (op.vectorized is not None), op.name


def test_an_op_cannot_be_declared_twice():
    with pytest.raises(ValueError, match="declared twice"):
        catalog.register(catalog.OpInfo("relu", catalog.ELEMENTWISE, "again"))


@pytest.fixture
def throwaway_ops():
    """Ops the estimators have no support for: no math, an unknown reduction, an unknown kind."""
    infos = [
        catalog.OpInfo("bare_activation", catalog.ELEMENTWISE, "no scalar function, no closed form"),
        catalog.OpInfo(
            "medianpool", catalog.WINDOW, "a reduction nobody implements", WINDOW_PARAMS, reduction="median"
        ),
        catalog.OpInfo("weird", "unknown-kind", "a kind nobody implements"),
    ]
    for info in infos:
        catalog.register(info)
    yield
    for info in infos:
        catalog.unregister(info.name)


@pytest.mark.parametrize(
    "spec", ["bare_activation", "medianpool(k=2)", "weird", "relu | medianpool(k=2)", "relu | weird"]
)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_refuses_an_op_it_does_not_know(throwaway_ops, spec, method):
    with pytest.raises(MomentcalcError):
        mc.estimate(spec, method=method, samples=64)


@pytest.mark.parametrize("spec", ["bare_activation", "medianpool(k=2)", "weird"])
def test_auto_finds_no_method_rather_than_a_wrong_one(throwaway_ops, spec):
    with pytest.raises(MomentcalcError, match="no method applies"):
        mc.estimate(spec, samples=64)


def test_feature_maps_refuse_an_unknown_reduction(throwaway_ops):
    with pytest.raises(MomentcalcError):
        mc.estimate("medianpool(k=2)", size=4, samples=8)

"""The op registry: each op declared once, methods read declarations, and every method refuses what it does not know."""

import pytest
from throwaway_ops import unregister

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


# What an op of each of the several-input kinds must declare, so that every method can read it (`list` shows
# what each method then does). A missing entry fails with the whole list.
SEVERAL_INPUTS = {
    catalog.PRODUCT: ("inputs", "factors", "param wrt"),
    catalog.JOINT: ("size", "sample"),
    catalog.RESIDUAL: ("param f", "param tau"),
}


def test_ops_of_several_inputs_declare_what_their_kind_needs():
    for op in catalog.all_ops():
        needs = SEVERAL_INPUTS.get(op.kind, ())
        missing = [
            n for n in needs if (op.param(n[6:]) is None if n.startswith("param ") else not getattr(op, n, None))
        ]
        assert not missing, f"{op.name} ({op.kind}) must declare {', '.join(needs)}; missing {', '.join(missing)}"
        if op.kind == catalog.PRODUCT:
            assert op.param("wrt").choices == op.inputs, op.name


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
        unregister(info.name)


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


# --- a reduction registered with its declaration only is refused everywhere, never computed as another --------


@pytest.fixture
def l2_declared_only():
    """A window op declared as a new contributor would (name, params, a reduction code), with no method support."""
    info = catalog.OpInfo("l2pool_bare", catalog.WINDOW, "sqrt of the sum of squares", WINDOW_PARAMS, reduction="l2")
    catalog.register(info)
    yield info.name
    unregister(info.name)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("spec", ["l2pool_bare(k=2)", "l2pool_bare(n=1)", "relu | l2pool_bare(k=3)"])
def test_a_declared_only_reduction_is_refused_by_every_method(l2_declared_only, spec, method):
    # n=1 too: a reduction of one value need not be that value (an l2 pool of one is |x|).
    with pytest.raises(MomentcalcError, match="closed form" if method == "closed" else "reduction 'l2'"):
        mc.estimate(spec, method=method, samples=64)


def test_a_declared_only_reduction_is_refused_by_backward_and_feature_maps(l2_declared_only):
    from typer.testing import CliRunner

    from momentcalc import backward
    from momentcalc.cli import app

    with pytest.raises(MomentcalcError, match="routes its gradient"):
        backward.exact_map("l2pool_bare(k=2)", 4)
    runner = CliRunner()
    for args in (["backward", "l2pool_bare(k=2)", "--size", "4"], ["estimate", "l2pool_bare(k=2)", "--size", "4"]):
        outcome = runner.invoke(app, args)
        assert outcome.exit_code == 2, (args, outcome.output)
        assert "Traceback" not in outcome.output and "'l2'" in outcome.output.replace("\n", " "), outcome.output


def test_list_derives_methods_from_each_methods_reading_of_the_declaration(l2_declared_only):
    from momentcalc.cli.list_ops import _op_rows

    rows = {name: methods for name, _, _, methods in _op_rows()}
    assert rows["l2pool_bare"] == "none"
    # certified is listed where the declaration gives it what it needs (the value of record), not only by kind
    assert rows["relu"].split(", ")[0] == "certified" and "quadrature" in rows["relu"]
    assert rows["expr"] == "quadrature, montecarlo"  # numpy only: no balls, no compiled kernels, no qmc
    assert "certified" in rows["maxpool"] and "closed¹" in rows["maxpool"]


def test_a_stale_dispatch_fails_loudly_naming_its_command():
    """An activation registered after dispatch.py was generated: Monte Carlo must not decline in silence."""
    relu = catalog.lookup("relu")
    catalog.register(catalog.OpInfo("relu_copy", catalog.ELEMENTWISE, "relu again", f=relu.f, df=relu.df))
    try:
        for method in ("montecarlo", "auto"):
            with pytest.raises(MomentcalcError, match=r"stale.*python -m momentcalc\.estimators\.dispatch_gen"):
                mc.estimate("relu_copy", method=method, samples=64)
    finally:
        unregister("relu_copy")

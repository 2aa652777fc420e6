"""Every registered op has what docs/layout.md's "Adding an op" lists: a test fails, naming the list and what is
missing, when a declaration or a shared test line is left out."""

import dataclasses
import math

import op_cases
import pytest
from mp_activations import make
from throwaway_ops import unregister

from momentcalc import MomentcalcError, catalog
from momentcalc.estimators import dispatch_gen
from momentcalc.estimators.dispatch import CODES
from momentcalc.settings import PARAM_RANGES

ADDING_AN_OP = "docs/layout.md, 'Adding an op'"
SUITES = ("moments", "domain", "certified")  # the generic suites every activation runs in (tests/op_cases.py)


def missing(op, cases=op_cases.CASES) -> list[str]:
    """What op lacks of ADDING_AN_OP's list."""
    gaps = []
    for p in op.params:
        if p.kind is float and (p.bounds is None or p.bounds not in PARAM_RANGES.values()):
            gaps.append(f"a range for parameter {p.name!r} in settings.PARAM_RANGES")
    if op.ball is None or op.growth is None:
        gaps.append("ball functions and growth bounds (the certified method)")
    elif len(op.ball) != len(op.kinks(1.0, 2.0)) + 1:
        gaps.append("one ball piece per piece between its kinks")
    if op.name not in CODES:
        gaps.append("its Monte Carlo code: regenerate estimators/dispatch.py (dispatch_gen)")
    if op.vector_loops is None:
        gaps.append("its Monte Carlo loops (vector_loops: the block_ops loops it has, else SCALAR_LOOPS)")
    own = [c for c in cases if c.spec.partition("(")[0] == op.name]
    gaps += [f"a {s!r} case in tests/op_cases.py" for s in SUITES if not any(s in c.suites for c in own)]
    for c in own:
        try:
            make(c.ref, **dict(c.params))
        except KeyError:
            gaps.append(f"an mpmath reference {c.ref!r} in tests/mp_activations.py")
    if op.torch_fn is None:
        gaps.append("its torch form (torch_fn), which torch/functional.py's TORCH_FUNCTIONS runs")
    return gaps


def missing_of_sampled(op) -> list[str]:
    """What an op of several inputs whose output law is sampled (`sample`: the joint ops, lppool) lacks of
    ADDING_AN_OP's list."""
    if op.rows is None:
        return ["its compiled rows function (rows, which estimators/joint_kernel.py runs)"]
    return []


def test_every_op_has_what_adding_an_op_lists():
    gaps = {op.name: missing(op) for op in catalog.jitted_activations()}
    gaps |= {op.name: missing_of_sampled(op) for op in catalog.all_ops() if op.sample is not None}
    gaps = {name: found for name, found in gaps.items() if found}
    assert not gaps, f"missing what {ADDING_AN_OP} lists: " + "; ".join(f"{n}: {', '.join(g)}" for n, g in gaps.items())
    assert {op.name for op in catalog.all_ops() if op.sample is not None} >= {
        "softmax",
        "rmsnorm",
        "layernorm",
        "lppool",
    }


@pytest.fixture
def bare_activation():
    info = catalog.register(
        catalog.OpInfo(
            "bare_tanh",
            catalog.ELEMENTWISE,
            "tanh with nothing but f and f'",
            (catalog.Param("gain", float, 1.0),),
            f=lambda x, a, b: math.tanh(x),
            df=lambda x, a, b: 1.0 - math.tanh(x) ** 2,
        )
    )
    yield info
    unregister(info.name)


def test_an_activation_with_only_f_is_told_each_missing_entry(bare_activation):
    gaps = missing(bare_activation)
    assert gaps == [
        "a range for parameter 'gain' in settings.PARAM_RANGES",
        "ball functions and growth bounds (the certified method)",
        "its Monte Carlo code: regenerate estimators/dispatch.py (dispatch_gen)",
        "its Monte Carlo loops (vector_loops: the block_ops loops it has, else SCALAR_LOOPS)",
        "a 'moments' case in tests/op_cases.py",
        "a 'domain' case in tests/op_cases.py",
        "a 'certified' case in tests/op_cases.py",
        "its torch form (torch_fn), which torch/functional.py's TORCH_FUNCTIONS runs",
    ]
    cases = (op_cases.Case("bare_tanh", "bare_tanh", (), frozenset(SUITES)),)
    assert "an mpmath reference 'bare_tanh' in tests/mp_activations.py" in missing(bare_activation, cases)


def test_a_sampled_op_without_its_compiled_rows_is_told_so():
    softmax = catalog.lookup("softmax")
    bare = catalog.OpInfo("bare_softmax", catalog.JOINT, "softmax's numpy sampler alone", size=softmax.size,
                          sample=softmax.sample)  # fmt: skip
    assert missing_of_sampled(bare) == ["its compiled rows function (rows, which estimators/joint_kernel.py runs)"]
    assert missing_of_sampled(softmax) == []


def _declare(monkeypatch, vector_loops):
    """The registry's activations, the first (relu) with these vector_loops, as dispatch_gen reads them."""
    acts = catalog.jitted_activations()
    changed = [dataclasses.replace(acts[0], vector_loops=vector_loops), *acts[1:]]
    monkeypatch.setattr(catalog, "jitted_activations", lambda: changed)


def test_generated_loops_call_what_the_declaration_names(monkeypatch):
    # dispatch.py's block and values loops are written from VectorLoop alone: the names, parameters and scratch it
    # declares, in order, each choice of several under its `when`; SCALAR_LOOPS gives the scalar block, no values.
    loops = (
        catalog.VectorLoop(
            "exp_linear", ("b", "2.0", "a", "1.0"), ("e", "e2", "scale"), values_params=("b", "a", "1.0")
        ),
        catalog.VectorLoop("sigmoid", (), ("e", "scale"), when="a > 1.0"),
    )
    _declare(monkeypatch, loops)
    with pytest.raises(MomentcalcError, match="each VectorLoop but the last needs a `when`"):
        dispatch_gen.render()
    _declare(monkeypatch, loops[::-1])
    text = dispatch_gen.render()
    assert (
        "    if a > 1.0:\n"
        "        block_ops.add_sigmoid_block(z, m, mu, sigma, shift, gshift, acc, e, scale)\n"
        "    else:\n"
        "        block_ops.add_exp_linear_block(z, m, mu, sigma, b, 2.0, a, 1.0, shift, gshift, acc, e, e2, scale)"
    ) in text
    assert "    else:\n        block_ops.exp_linear_values(x, m, b, a, 1.0, e, e2, scale)" in text
    _declare(monkeypatch, catalog.SCALAR_LOOPS)
    text = dispatch_gen.render()
    assert "def block_1(z, m, mu, sigma, a, b, shift, gshift, acc, e, e2, scale):  # relu\n" in text
    assert "    chain_kernels.scalar_block(own.act_grad_1, z, m, mu, sigma, a, b, shift, gshift, acc, e)" in text
    assert "def vector_values_1(" not in text and "own.values_1, states" in text


@pytest.mark.parametrize(
    "loops, problem",
    [
        (
            (catalog.VectorLoop("no_such"),),
            "a VectorLoop names add_no_such_block, which none of block_ops, erf_blocks defines",
        ),
        (
            (catalog.VectorLoop("relu", values=False, when="a > 0"), catalog.VectorLoop("sigmoid")),
            "either every VectorLoop has a values form or none has",
        ),
        ((catalog.VectorLoop("swish", ("math.e",), ("e", "scale")),), "'math.e' is not arithmetic on a, b"),
        ((catalog.VectorLoop("swish", ("ab",), ("e", "scale")),), "'ab' is not arithmetic on a, b"),
        ((catalog.VectorLoop("swish", ("a +",), ("e", "scale")),), r"'a \+' is not arithmetic on a, b"),
        ((catalog.VectorLoop("swish", ("a",), ("e", "tmp")),), "scratch must be among e, e2, scale"),
        (
            (catalog.VectorLoop("sigmoid", when="print(a)"), catalog.VectorLoop("sigmoid")),
            r"'print\(a\)' is not arithmetic on a, b",
        ),
    ],
)
def test_a_declaration_naming_what_block_ops_lacks_is_refused_by_the_generator(monkeypatch, loops, problem):
    _declare(monkeypatch, loops)
    with pytest.raises(MomentcalcError, match=problem):
        dispatch_gen.render()

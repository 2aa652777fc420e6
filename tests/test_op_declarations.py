"""Every registered activation has what docs/layout.md's "Adding an op" lists: a test fails, naming the list and
what is missing, when a declaration or a shared test line is left out."""

import math

import op_cases
import pytest
from mp_activations import make
from throwaway_ops import unregister

from momentcalc import catalog
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


def test_every_activation_has_what_adding_an_op_lists():
    gaps = {op.name: missing(op) for op in catalog.jitted_activations()}
    gaps = {name: found for name, found in gaps.items() if found}
    assert not gaps, f"missing what {ADDING_AN_OP} lists: " + "; ".join(f"{n}: {', '.join(g)}" for n, g in gaps.items())


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
        "a 'moments' case in tests/op_cases.py",
        "a 'domain' case in tests/op_cases.py",
        "a 'certified' case in tests/op_cases.py",
        "its torch form (torch_fn), which torch/functional.py's TORCH_FUNCTIONS runs",
    ]
    cases = (op_cases.Case("bare_tanh", "bare_tanh", (), frozenset(SUITES)),)
    assert "an mpmath reference 'bare_tanh' in tests/mp_activations.py" in missing(bare_activation, cases)

"""One list of activation cases that the generic tests share (as scipy.stats' distcont drives its distributions').

Each case: the spec, its mpmath reference in mp_activations.make (name and parameters), and the suites that run
it. A new activation is tested by adding its lines here (with its reference in mp_activations), and
test_op_declarations fails, naming what is missing, until it has them.

Suites: "moments" (test_activations and test_grad: quadrature, closed forms, Monte Carlo against mpmath),
"domain" (test_domain: the input domain's matrix), "certified" (test_certified: the correctly rounded double at a
standard and a shifted input), "table" (table_refs: the default table's independent references).
"""

from typing import NamedTuple


class Case(NamedTuple):
    spec: str
    ref: str  # mp_activations.make's name
    params: tuple  # (name, value) pairs for make(); a string keeps a decimal exact, a float is that double
    suites: frozenset


def _case(spec, ref=None, params=(), suites="moments domain certified table"):
    return Case(spec, ref or spec.partition("(")[0], tuple(params), frozenset(suites.split()))


CASES = (
    _case("relu", suites="moments domain certified"),
    _case("sigmoid", suites="moments domain certified"),
    _case("tanh"),
    _case("gelu"),
    _case("gelu(approximate=tanh)", "gelu_tanh"),
    _case("silu"),
    _case("swish(beta=1.7)", params=(("beta", "1.7"),), suites="moments"),
    _case("swish(beta=2)", params=(("beta", 2),), suites="domain"),
    _case("swish(beta=1.5)", params=(("beta", 1.5),), suites="certified"),
    _case("elu", suites="moments domain table"),
    _case("elu(alpha=0.5)", params=(("alpha", "0.5"),), suites="moments domain certified"),
    _case("celu", suites="table"),
    _case("celu(alpha=0.3)", params=(("alpha", "0.3"),), suites="moments"),
    _case("celu(alpha=2)", params=(("alpha", 2),), suites="domain certified"),
    _case("selu"),
    _case("softplus", suites="domain table"),
    _case("softplus(beta=2)", params=(("beta", 2),), suites="moments domain certified"),
    _case("leaky_relu", suites="domain table"),
    _case("leaky_relu", params=(("slope", 0.01),), suites="certified"),  # the default's double, to 40 digits
    _case("leaky_relu(slope=0.2)", params=(("slope", "0.2"),), suites="moments"),
    _case("mish"),
    _case("hardswish"),
    _case("hardsigmoid"),
    _case("hardtanh", suites="domain table"),
    _case("hardtanh(min_val=-0.5,max_val=2)", params=(("min_val", "-0.5"), ("max_val", 2)), suites="moments"),
    _case("hardtanh(min_val=-1,max_val=2)", params=(("min_val", -1), ("max_val", 2)), suites="certified"),
    _case("relu6"),
    _case("softsign"),
    _case("erf"),
    _case("abs"),
    _case("log_sigmoid"),
    _case("identity"),
)


def suite(name: str) -> list[Case]:
    """The cases a suite runs, in CASES' order."""
    return [c for c in CASES if name in c.suites]

"""The ops a spec may name, with their parameters, defaults and ranges.

This module is the language of specs only: it imports nothing heavy, so
that ``momentcalc.constants`` can canonicalize spellings without numba or
scipy. How each op is computed lives in ``momentcalc.ops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

ELEMENTWISE = "elementwise"
WINDOW = "window"
DROPOUT = "dropout"
NORMALIZE = "normalize"


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int, float, bool or str
    default: object  # None: required unless the op says otherwise
    check: Callable[[object], bool] = lambda v: True
    accepted: str = ""  # says what `check` accepts, for error messages
    choices: tuple[str, ...] = ()
    raw: bool = False  # the whole text inside the parentheses, e.g. expr(x * tanh(x)); validated by exprlang


@dataclass(frozen=True)
class OpInfo:
    name: str
    kind: str
    description: str
    params: tuple[Param, ...] = ()
    # A rule across parameters (values with defaults filled in) and what it accepts, e.g. min_val < max_val.
    constraint: Callable[[dict], bool] | None = None
    constraint_text: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _positive_int(v) -> bool:
    return v >= 1


def _keep_probability(v) -> bool:
    return 0.0 < v <= 1.0


_WINDOW_PARAMS = (
    Param("k", int, None, _positive_int, "an integer >= 1"),
    Param("dims", int, 2, lambda v: v in (1, 2, 3), "1, 2 or 3"),
    Param("n", int, None, _positive_int, "an integer >= 1"),
    # Stride and padding (with k= only). They matter only on a feature map of a given size
    # (estimate(..., size=I)); without one a window op means an interior window of n iid inputs.
    Param("s", int, None, _positive_int, "an integer >= 1 (default: k)"),
    Param("p", int, 0, lambda v: v >= 0, "an integer >= 0 and <= k/2"),
)
# PyTorch's flag: padding zeros count in the divisor (true) or only real inputs do (false).
_AVG_PARAMS = _WINDOW_PARAMS + (Param("count_include_pad", bool, True, accepted="true or false"),)


def _pad_fits(values: dict) -> bool:
    """PyTorch's rule for pooling: p <= k/2."""
    return values["k"] is None or 2 * values["p"] <= values["k"]


_OPS: dict[str, OpInfo] = {}


def register(info: OpInfo) -> OpInfo:
    """Add an op to the language; ops modules call this for what they define."""
    _OPS[info.name] = info
    return info


def lookup(name: str) -> OpInfo | None:
    return _OPS.get(name)


def all_ops() -> list[OpInfo]:
    return sorted(_OPS.values(), key=lambda o: (o.kind != ELEMENTWISE, o.name))


def elementwise(name: str, description: str, *params: Param, constraint=None, constraint_text: str = "") -> OpInfo:
    return register(OpInfo(name, ELEMENTWISE, description, tuple(params), constraint, constraint_text))


def _positive(v) -> bool:
    return v > 0.0


def _non_negative(v) -> bool:
    return v >= 0.0


# The seed set.
register(
    OpInfo("maxpool", WINDOW, "max over a window of n iid copies of its input", _WINDOW_PARAMS, _pad_fits, "p <= k/2")
)
register(
    OpInfo("avgpool", WINDOW, "mean over a window of n iid copies of its input", _AVG_PARAMS, _pad_fits, "p <= k/2")
)
register(
    OpInfo(
        "dropout",
        DROPOUT,
        "keep each value with probability p, zero it otherwise",
        (
            Param("p", float, None, _keep_probability, "a keep probability in (0, 1]"),
            Param("scale", str, "sqrt", choices=("none", "sqrt", "inverse")),
        ),
    )
)
register(OpInfo("normalize", NORMALIZE, "subtract the exact mean and divide by the exact std of what precedes it"))
elementwise("relu", "max(x, 0)")
elementwise("sigmoid", "1 / (1 + exp(-x))")
elementwise("tanh", "tanh(x)")
elementwise(
    "gelu",
    "x * Phi(x) (exact, erf form); approximate=tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    Param("approximate", str, "none", choices=("none", "tanh")),
)
elementwise("silu", "x * sigmoid(x) (swish)")
elementwise("elu", "x if x > 0 else alpha * (exp(x) - 1)", Param("alpha", float, 1.0, _positive, "a number > 0"))
elementwise("celu", "x if x > 0 else alpha * (exp(x / alpha) - 1)", Param("alpha", float, 1.0, _positive, "a number > 0"))
elementwise("selu", "lambda * elu(x, alpha) with the constants of Klambauer et al. 2017")
elementwise(
    "softplus",
    "log(1 + exp(beta x)) / beta, exact everywhere (no linear threshold regime)",
    Param("beta", float, 1.0, _positive, "a number > 0"),
)
elementwise("leaky_relu", "x if x > 0 else slope * x", Param("slope", float, 0.01, _non_negative, "a number >= 0"))
elementwise("mish", "x * tanh(softplus(x))")
elementwise("hardswish", "x * relu6(x + 3) / 6")
elementwise("hardsigmoid", "relu6(x + 3) / 6")
elementwise(
    "hardtanh",
    "min(max(x, min_val), max_val)",
    Param("min_val", float, -1.0, accepted="a finite number"),
    Param("max_val", float, 1.0, accepted="a finite number"),
    constraint=lambda v: v["min_val"] < v["max_val"],
    constraint_text="min_val < max_val",
)
elementwise("relu6", "min(max(x, 0), 6)")
elementwise("softsign", "x / (1 + |x|)")
elementwise("erf", "erf(x)")
elementwise("abs", "|x|")
elementwise("log_sigmoid", "log(sigmoid(x)) = -softplus(-x)")
elementwise("identity", "x")
elementwise(
    "expr",
    "a user expression in x, e.g. expr(x * tanh(log1p(exp(x)))); numpy functions from a fixed list (Monte Carlo runs in numpy)",
    Param("f", str, None, accepted="an expression in x", raw=True),
)

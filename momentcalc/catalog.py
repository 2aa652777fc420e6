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
    kind: type  # int, float or str
    default: object  # None: required unless the op says otherwise
    check: Callable[[object], bool] = lambda v: True
    accepted: str = ""  # says what `check` accepts, for error messages
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpInfo:
    name: str
    kind: str
    description: str
    params: tuple[Param, ...] = ()

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
)

_OPS: dict[str, OpInfo] = {}


def register(info: OpInfo) -> OpInfo:
    """Add an op to the language; ops modules call this for what they define."""
    _OPS[info.name] = info
    return info


def lookup(name: str) -> OpInfo | None:
    return _OPS.get(name)


def all_ops() -> list[OpInfo]:
    return sorted(_OPS.values(), key=lambda o: (o.kind != ELEMENTWISE, o.name))


def elementwise(name: str, description: str, *params: Param) -> OpInfo:
    return register(OpInfo(name, ELEMENTWISE, description, tuple(params)))


# The seed set.
register(OpInfo("maxpool", WINDOW, "max over a window of n iid copies of its input", _WINDOW_PARAMS))
register(OpInfo("avgpool", WINDOW, "mean over a window of n iid copies of its input", _WINDOW_PARAMS))
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

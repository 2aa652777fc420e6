"""conv: a convolution layer with NormProp row-normalized random weights, for `momentcalc backward` only.

It is declared here so that backward's layers are parsed by the one spec
parser; it is a layer, not an op whose output moments momentcalc computes,
so ``spec.parse`` refuses it in a spec and ``spec.parse_layer`` accepts it.
"""

from __future__ import annotations

from ..catalog import LAYER, OpInfo, Param, register


def _at_least(low: int):
    return lambda v: v >= low


register(
    OpInfo(
        "conv",
        LAYER,
        "2-D convolution, cin -> cout channels, unit-norm random filters (momentcalc backward only)",
        (
            Param("k", int, None, _at_least(1), "an integer >= 1"),
            Param("s", int, 1, _at_least(1), "an integer >= 1"),
            Param("p", int, 0, _at_least(0), "an integer >= 0"),
            Param("cin", int, 1, _at_least(1), "an integer >= 1"),
            Param("cout", int, 1, _at_least(1), "an integer >= 1"),
        ),
    )
)

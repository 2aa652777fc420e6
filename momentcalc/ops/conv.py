"""conv: a convolution layer with NormProp row-normalized random weights, for `momentcalc backward` only.

It is declared here so that backward's layers are parsed by the one spec
parser; it is a layer, not an op whose output moments momentcalc computes,
so ``spec.parse`` refuses it in a spec and ``spec.parse_layer`` accepts it.
"""

from __future__ import annotations

from ..catalog import LAYER, OpInfo, Param, register
from ..settings import PARAM_RANGES

register(
    OpInfo(
        "conv",
        LAYER,
        "2-D convolution, cin -> cout channels, unit-norm random filters (momentcalc backward only)",
        (
            Param("k", int, None, bounds=PARAM_RANGES["count"]),
            Param("s", int, 1, bounds=PARAM_RANGES["count"]),
            Param("p", int, 0, bounds=PARAM_RANGES["padding"]),
            Param("cin", int, 1, bounds=PARAM_RANGES["count"]),
            Param("cout", int, 1, bounds=PARAM_RANGES["count"]),
        ),
    )
)

"""expr(...): a user expression in x, evaluated by numpy (it cannot be jitted).

Its text is validated by ``momentcalc.exprlang`` when the spec is parsed; the
methods that can run numpy functions (quadrature, the numpy Monte Carlo path)
read ``vectorized``; the others refuse it.
"""

from __future__ import annotations

from .. import exprlang
from ..catalog import ELEMENTWISE, OpInfo, Param, register

register(
    OpInfo(
        "expr",
        ELEMENTWISE,
        "a user expression in x, e.g. expr(x * tanh(log1p(exp(x)))); numpy functions from a fixed list "
        "(Monte Carlo runs in numpy)",
        (Param("f", str, None, accepted="an expression in x", raw=True),),
        vectorized=lambda op: exprlang.compile_numpy(op.get("f")),
    )
)

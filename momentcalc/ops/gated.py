"""Gated units: y = x * h(g), with value x and gate g independent N(mu, sigma^2), each a linear projection of the
same input in a transformer's MLP (Shazeer 2020, "GLU Variants Improve Transformer").

Each declares its two inputs and their factors (identity for the value, the gate function h): every method
derives the moments and the backward constants from them (momentcalc.products). By independence
E[y] = E[x] E[h(g)] and E[y^2] = E[x^2] E[h(g)^2]; the mean squared gradient reaching the value is E[h(g)^2],
the gate's E[x^2] E[h'(g)^2]. `wrt=gate` reports the gate's as grad_sq (the value's by default).
"""

from __future__ import annotations

from ..catalog import PRODUCT, OpInfo, Param, register
from ..settings import PARAM_RANGES

INPUTS = ("value", "gate")
WRT = Param("wrt", str, "value", choices=INPUTS, accepted="the input whose backward constant grad_sq reports")


def gated(name: str, description: str, gate, params: tuple[Param, ...] = ()) -> OpInfo:
    """Declare y = x * h(g); gate(op) is the spec text of h, an elementwise op."""
    return register(
        OpInfo(
            name,
            PRODUCT,
            description,
            params + (WRT,),
            inputs=INPUTS,
            factors=lambda op: ("identity", gate(op)),
        )
    )


gated(
    "glu",
    "x * sigmoid(g): value x, gate g independent, each N(mu, sigma^2) (Dauphin et al. 2017)",
    lambda op: "sigmoid",
)
gated(
    "swiglu",
    "x * swish_beta(g) = x * g * sigmoid(beta g): value x, gate g independent, each N(mu, sigma^2) (Shazeer 2020)",
    lambda op: f"swish(beta={op.get('beta')!r})",
    (Param("beta", float, 1.0, bounds=PARAM_RANGES["beta"]),),
)
gated(
    "geglu",
    "x * gelu(g) (erf form): value x, gate g independent, each N(mu, sigma^2) (Shazeer 2020)",
    lambda op: "gelu",
)
gated("reglu", "x * relu(g): value x, gate g independent, each N(mu, sigma^2) (Shazeer 2020)", lambda op: "relu")
gated("bilinear", "x * g: value x, gate g independent, each N(mu, sigma^2) (Shazeer 2020)", lambda op: "identity")

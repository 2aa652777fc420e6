"""Elementwise activations, each declared once: parameters, scalar function, derivative, kinks, closed forms.

Every scalar function has the signature ``f(x, a, b)`` (a and b carry the
op's parameters, from its ``args``) and uses only ``math``, so numba can
compile it for the Monte Carlo kernels and quadrature can call it as it is.
Scalar functions call no other module-level function: numba compiles each
one alone. The math lives in one module per family (piecewise_linear,
logistic, self_gated, exponential; shared holds what they share), the
declarations in declarations.py, in the order that numbers the Monte Carlo
kernels' activations. Adding an activation is adding its functions to its
family's module and one ``activation(...)`` declaration at the end of
declarations.py.
"""

from . import declarations
from .exponential import SELU_ALPHA, SELU_LAMBDA

__all__ = ["SELU_ALPHA", "SELU_LAMBDA", "declarations"]

"""The ops, one module per family: each declares its ops once (``catalog.register``) with their math.

Importing this package fills the registry; ``momentcalc/__init__`` does so,
so that every spec can be parsed. Nothing here imports numba or scipy: the
Monte Carlo kernels compile the plain scalar functions themselves.
"""

from . import activations, conv, dropout, expr, gated, lppool, normalize, norms, pooling, residual, softmax

__all__ = [
    "activations",
    "conv",
    "dropout",
    "expr",
    "gated",
    "lppool",
    "normalize",
    "norms",
    "pooling",
    "residual",
    "softmax",
]

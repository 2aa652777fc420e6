"""momentcalc: exact, cross-checked normalization constants for neural network layers.

``import momentcalc`` is light: numba and scipy load only when an
estimate is first asked for, so ``momentcalc.constants`` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["estimate", "parse", "MomentcalcError", "__version__"]

from . import ops  # noqa: F401  (fills the op registry that the spec language reads)
from ._lazy import lazy_module
from .errors import MomentcalcError
from .spec import parse


def __getattr__(name):
    if name == "estimate":  # PEP 562: the engine (numba) loads when estimate is first asked for
        return lazy_module("momentcalc.engine").estimate
    raise AttributeError(f"module 'momentcalc' has no attribute {name!r}")


def __dir__():
    # estimate is served by __getattr__ (lazily), so the module's own namespace does not list it.
    return sorted(set(globals()) | set(__all__))

"""momentcalc for PyTorch (the extra ``momentcalc[torch]``): exact gains, NormProp modules, signal propagation.

    from momentcalc.torch import calculate_gain, NormPropConv2d, NormPropActivation, propagate
    calculate_gain("gelu")              # 1 / sqrt(E[gelu(X)^2]), X ~ N(0, 1)
    act = NormPropActivation("relu")    # (relu(x) - mean) / std with the exact constants
    propagate(model, (8, 3, 32, 32))    # per-layer mean, std and gradient RMS for N(0, 1) input

``import momentcalc`` never imports this package (nor torch); importing it needs torch.
"""

try:
    import torch  # noqa: F401
except ImportError as missing:  # pragma: no cover - exercised only where torch is absent
    raise ImportError(
        "momentcalc.torch needs PyTorch: pip install torch==2.13.0 (a CPU build; see the README), "
        "then pip install 'momentcalc[torch]'"
    ) from missing

from .._lazy import lazy_module
from .gains import affine, calculate_gain, gamma, nonlinearity_spec
from .modules import (
    NormPropActivation,
    NormPropAvgPool2d,
    NormPropConv2d,
    NormPropDropout,
    NormPropLinear,
    NormPropMaxPool2d,
)
from .moments import LayerMoments, moments
from .predict import AutoinitReport, Prediction, autoinit, predict
from .signal import Comparison, LayerStats, Propagation, compare, propagate

# matplotlib (the extra momentcalc[plots]): only when a plot is drawn; a stand-in where it is not installed.
plot = lazy_module("momentcalc.torch.plot", needs="matplotlib")

__all__ = [
    "AutoinitReport",
    "Comparison",
    "LayerMoments",
    "LayerStats",
    "Prediction",
    "Propagation",
    "NormPropActivation",
    "NormPropAvgPool2d",
    "NormPropConv2d",
    "NormPropDropout",
    "NormPropLinear",
    "NormPropMaxPool2d",
    "affine",
    "autoinit",
    "calculate_gain",
    "compare",
    "gamma",
    "moments",
    "nonlinearity_spec",
    "plot",
    "predict",
    "propagate",
]

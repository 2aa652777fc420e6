"""Signal propagation: the mean, std and gradient RMS of every layer's output for N(0, 1) input.

``propagate(model, input_shape)`` works for any torch module: forward hooks record the outputs of
the modules asked for (by default every leaf module), tensor hooks their gradients, for one
N(0, 1) input and one N(0, 1) gradient injected at the output, both drawn from a fixed seed.

``network(variant, plan(depth, block, pool, every), width)`` builds the deep conv nets that ``momentcalc propagate``
compares, in three variants: NormProp (this package's modules), plain (He initialisation) and
BatchNorm; ``prediction(...)`` is what momentcalc's constants predict for the NormProp variant.

One job per module: hooks (propagate: the hooks and the statistics they measure), builders (the block
language, parse_block, and the nets built from it, with their cost checks), prediction (what the
constants predict) and comparison (compare: the variants side by side with the prediction).
"""

from .builders import (
    VARIANTS,
    Activation,
    Stage,
    block_names,
    check_cost,
    check_size_at_least,
    network,
    output_sizes,
    parse_block,
    plan,
)
from .comparison import Comparison, compare
from .hooks import LayerStats, Propagation, default_modules, propagate
from .prediction import prediction

__all__ = [
    "VARIANTS",
    "Activation",
    "Comparison",
    "LayerStats",
    "Propagation",
    "Stage",
    "block_names",
    "check_cost",
    "check_size_at_least",
    "compare",
    "default_modules",
    "network",
    "output_sizes",
    "parse_block",
    "plan",
    "prediction",
    "propagate",
]

"""Each momentcalc elementwise op as a torch function: the one place where spec ops meet torch.

``apply(spec, x)`` runs a chain of elementwise ops on a tensor; a ``normalize`` in the chain
subtracts the exact mean and divides by the exact std of what precedes it (moments.moments), as
the spec language defines. Every entry must equal the op's declared scalar f (catalog), which
tests/test_torch.py checks point by point. softplus: torch switches to x above beta * x > 20,
where log1p(exp(-20)) / beta < 2.1e-9 is all that changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import catalog
from ..errors import MomentcalcError
from ..spec import Spec, parse
from . import checks
from .moments import moments


def _declared(info: catalog.OpInfo) -> Callable:
    return lambda x, op: info.torch_fn(torch, x, *info.args(op))


# name -> f(x, op): each elementwise op's declared torch form (OpInfo.torch_fn), its parameters from op's args
TORCH_FUNCTIONS: dict[str, Callable] = {o.name: _declared(o) for o in catalog.all_ops() if o.torch_fn is not None}


def check_activation(spec: str) -> Spec:
    """The parsed spec if torch can run it (elementwise ops and normalize); MomentcalcError saying why not."""
    parsed = parse(checks.text("spec", spec))
    for op in parsed.ops:
        if op.kind == catalog.NORMALIZE:
            continue
        if op.kind != catalog.ELEMENTWISE:
            raise MomentcalcError(
                f"an activation spec holds elementwise ops and normalize, not {str(op)!r}; "
                f"use NormPropMaxPool2d/NormPropAvgPool2d/NormPropDropout for {op.name}"
            )
        if op.name not in TORCH_FUNCTIONS:
            known = ", ".join(sorted(TORCH_FUNCTIONS))
            raise MomentcalcError(
                f"{op.name!r} has no torch function (user expressions run in numpy only); use {known}"
            )
    return parsed


def apply(spec: str, x: torch.Tensor, mu: float = 0.0, sigma: float = 1.0) -> torch.Tensor:
    """The spec's chain applied to x; normalize uses the exact constants of its prefix at N(mu, sigma^2)."""
    return compile_chain(spec, mu, sigma)(checks.tensor("x", x))


def compile_chain(spec: str, mu: float = 0.0, sigma: float = 1.0) -> Chain:
    """A function of x doing what apply does, with the constants looked up now (once) rather than per call."""
    return Chain(spec, mu, sigma)


class Chain:
    """The spec's ops as one callable on tensors, constants looked up once.

    It pickles (and deep-copies) as its spec and input, and is rebuilt from them on loading: a model that
    holds one (NormPropActivation) pickles and torch.saves like any module, with no closure in its state.
    """

    def __init__(self, spec: str, mu: float = 0.0, sigma: float = 1.0):
        parsed = check_activation(spec)
        checks.normal_input(mu, sigma)
        self.spec, self.mu, self.sigma = spec, mu, sigma
        self.steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for i, op in enumerate(parsed.ops):
            if op.kind == catalog.NORMALIZE:
                prefix = moments(str(Spec(parsed.ops[:i])), mu, sigma)
                shift, scale = prefix.mean, 1.0 / prefix.std
                self.steps.append(lambda x, shift=shift, scale=scale: (x - shift) * scale)
            else:
                fn = TORCH_FUNCTIONS[op.name]
                self.steps.append(lambda x, fn=fn, op=op: fn(x, op))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def __reduce__(self):
        return Chain, (self.spec, self.mu, self.sigma)

"""compare: the variants of a deep conv net built and propagated side by side, with the prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import MomentcalcError
from ...result import record_dict
from ...settings import Progress, check_depth, check_seed
from .builders import VARIANTS, block_names, check_cost, least_cost, network, parse_block, plan_of
from .hooks import Propagation, propagate
from .prediction import prediction


@dataclass(frozen=True)
class Comparison:
    depth: int
    block: str
    pool: str | None
    pool_every: int
    width: int
    size: int
    batch: int
    seed: int
    runs: dict[str, Propagation]
    prediction: Propagation

    def to_dict(self) -> dict:
        variants = {v: p.to_dict()["layers"] for v, p in self.runs.items()}
        keys = ("depth", "block", "pool", "pool_every", "width", "size", "batch", "seed", "variants", "prediction")
        return record_dict(self, keys, variants=variants, prediction=self.prediction.to_dict()["layers"])


def compare(
    depth: int = 50,
    block: str = "conv3x3 | relu",
    pool: str | None = "maxpool(k=2)",
    pool_every: int = 25,
    width: int = 64,
    size: int = 8,
    batch: int = 4,
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
    progress: Progress | None = None,
) -> Comparison:
    """Build each variant (weights from seed) and propagate one N(0, 1) batch through it."""
    for name, value, lowest in (("depth", depth, 1), ("width", width, 1), ("size", size, 1), ("batch", batch, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise MomentcalcError(f"{name} must be a whole number >= {lowest}, got {value!r}")
    check_seed(seed, most=2**63 - 1)
    if isinstance(variants, str) or not isinstance(variants, (tuple, list)) or not variants:
        raise MomentcalcError(f"variants must be a tuple of names from {', '.join(VARIANTS)}, got {variants!r}")
    check_depth(depth)
    stages = parse_block(block)  # the block's specs are parsed once, here; the stages carry their ops
    least_cost(depth, stages, width, batch)  # arithmetic only: a depth of 10**9 costs nothing to refuse
    blocks = plan_of(depth, stages, pool, pool_every)
    check_cost(blocks, width, size, batch)  # refuse a too small input, or too big a net, before building anything
    runs = {}
    chosen = list(dict.fromkeys(variants))
    for number, variant in enumerate(chosen):
        torch.manual_seed(seed)
        model = network(variant, blocks, width)
        # each variant is one share of the bar: its forward and backward steps, 2 * depth in all
        told = None if progress is None else (lambda d, t, k=number: progress(k * t + d, len(chosen) * t))
        runs[variant] = propagate(
            model, (batch, width, size, size), seed=seed, modules=block_names(depth), progress=told
        )
    every = pool_every if pool is not None else 0
    return Comparison(depth, block, pool, every, width, size, batch, seed, runs, prediction(blocks, size))

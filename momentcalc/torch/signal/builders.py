"""The deep conv nets that `momentcalc propagate` compares: the block language (parse_block: convKxK, activations
and 2-D pools joined by '|'), the plan of a net's blocks, the three variants built from it, and their cost checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ... import catalog
from ...errors import MomentcalcError
from ...settings import PROPAGATE_VALUES_MAX, PROPAGATE_WORK_MAX, check_depth
from ...spec import Op, parse
from ..functional import check_activation, compile_chain
from ..modules import NormPropActivation, NormPropAvgPool2d, NormPropConv2d, NormPropMaxPool2d

VARIANTS = ("normprop", "plain", "batchnorm")

_CONV = re.compile(r"^conv(\d+)x(\d+)$")


@dataclass(frozen=True)
class Stage:
    kind: str  # "conv", "activation" or "pool"
    spec: str  # conv: "conv3x3"; activation: its spec; pool: its window op, e.g. maxpool(k=2,s=1)
    k: int = 0
    s: int = 1
    p: int = 0
    # the parsed op of an activation or pool, so that nothing downstream parses spec again
    op: Op | None = field(default=None, compare=False, repr=False)


def parse_block(text: str) -> tuple[Stage, ...]:
    """A block such as 'conv3x3 | relu | maxpool(k=2,s=1)': odd square convs, activations and 2-D pools."""
    stages = []
    for item in (part.strip() for part in str(text).split("|")):
        match = _CONV.match(item)
        if match:
            kh, kw = int(match[1]), int(match[2])
            if kh != kw or kh % 2 == 0:
                raise MomentcalcError(f"a conv in a block is square with an odd side, e.g. conv3x3, not {item!r}")
            stages.append(Stage("conv", item, kh))
            continue
        op = parse(item).last if item else None
        if op is not None and op.kind == catalog.WINDOW and op.name in ("maxpool", "avgpool"):
            if op.get("n") is not None or op.get("dims") != 2:
                raise MomentcalcError(f"a pool in a block is 2-D with k=K, e.g. maxpool(k=2,s=1), not {item!r}")
            stages.append(Stage("pool", str(op), op.get("k"), op.get("s") or op.get("k"), op.get("p"), op))
        elif op is not None and op.kind == catalog.ELEMENTWISE:
            check_activation(item)
            if stages and stages[-1].kind != "conv":
                # NormPropActivation's constants are those of an N(0, 1) input: what a conv puts out.
                raise MomentcalcError(f"put a conv before the activation {item!r} in {text!r}")
            stages.append(Stage("activation", str(op), op=op))
        else:
            raise MomentcalcError(
                f"a block holds convKxK, activations and maxpool/avgpool, joined by '|', e.g. "
                f"'conv3x3 | relu | maxpool(k=2,s=1)'; got {item!r} in {text!r}"
            )
    if not stages or stages[0].kind != "conv":
        raise MomentcalcError(f"a block starts with a conv, e.g. 'conv3x3 | relu', not {text!r}")
    return tuple(stages)


class Activation(nn.Module):
    """A plain elementwise spec as a module (no normalization): the activation of the plain and BatchNorm nets."""

    def __init__(self, spec: str):
        super().__init__()
        self.spec = spec
        self.fn = compile_chain(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return f"spec='{self.spec}'"


def _pool(stage: Stage, normprop: bool, after: str | None) -> nn.Module:
    torch_pool = nn.MaxPool2d if stage.spec.startswith("maxpool") else nn.AvgPool2d
    if not normprop:
        return torch_pool(stage.k, stage.s, stage.p)
    normprop_pool = NormPropMaxPool2d if torch_pool is nn.MaxPool2d else NormPropAvgPool2d
    return normprop_pool(stage.k, stage.s, stage.p, after=after)


def _he_conv(width: int, k: int) -> nn.Conv2d:
    conv = nn.Conv2d(width, width, k, padding=k // 2, padding_mode="circular", bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return conv


def plan(depth: int, block: str, pool: str | None = None, every: int = 1) -> list[tuple[Stage, ...]]:
    """The stages of each of depth blocks: the block, plus the pool after every every-th block (if given).

    Pools that overlap (stride < kernel) make neighbouring values correlated, while momentcalc's window
    constants are those of iid inputs; a pool of stride = kernel every few blocks keeps closer to them.
    """
    return plan_of(depth, parse_block(block), pool, every)


def plan_of(depth: int, stages: tuple[Stage, ...], pool: str | None = None, every: int = 1) -> list[tuple[Stage, ...]]:
    """plan() of a block parsed already (parse_block)."""
    extra = ()
    if pool is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise MomentcalcError(f"--pool-every must be a whole number >= 1, got {every!r}")
        extra = tuple(s for s in parse_block(f"conv1x1 | {pool}")[1:])
        if len(extra) != 1 or extra[0].kind != "pool":
            raise MomentcalcError(f"--pool takes one pool such as 'maxpool(k=2)', not {pool!r}")
    return [stages + (extra if extra and (i + 1) % every == 0 else ()) for i in range(depth)]


def network(variant: str, plan_: list[tuple[Stage, ...]], width: int) -> nn.Sequential:
    """The blocks of a plan, width channels throughout; convs pad circularly (no border effects).

    normprop: NormPropConv2d (unit-norm filters), NormPropActivation, NormProp pools with the constants
    of the pipeline that feeds them; plain: He-initialised convs (fan_in, gain sqrt 2) and the bare
    activation and pool; batchnorm: the plain net with BatchNorm2d after every conv.
    """
    if variant not in VARIANTS:
        raise MomentcalcError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    blocks = []
    for stages in plan_:
        layers, feed = [], None  # feed: the pipeline that produced the current signal from N(0, 1)
        for st in stages:
            if st.kind == "conv":
                feed = None  # a conv's output is (close to) N(0, 1) again
                if variant == "normprop":
                    layers.append(NormPropConv2d(width, width, st.k, padding=st.k // 2, padding_mode="circular"))
                else:
                    layers.append(_he_conv(width, st.k))
                    if variant == "batchnorm":
                        layers.append(nn.BatchNorm2d(width))
            elif st.kind == "activation":
                layers.append(NormPropActivation(st.spec) if variant == "normprop" else Activation(st.spec))
                feed = f"{st.spec} | normalize"
            else:
                layers.append(_pool(st, variant == "normprop", feed))
                feed = f"{feed} | {st.spec} | normalize" if feed else f"{st.spec} | normalize"
        blocks.append(nn.Sequential(*layers))
    return nn.Sequential(*blocks)


def block_names(depth: int) -> list[str]:
    """The names under which network()'s blocks appear in named_modules: '0', '1', ..."""
    return [str(i) for i in range(depth)]


def output_sizes(plan_: list[tuple[Stage, ...]], size: int) -> list[int]:
    """The side of the feature map after each block; MomentcalcError if a pool leaves nothing."""
    sides, side = [], size
    for number, stages in enumerate(plan_, start=1):
        for st in stages:
            if st.kind == "pool":
                side = (side + 2 * st.p - st.k) // st.s + 1
                if side < 1:
                    raise MomentcalcError(
                        f"a {size}x{size} input is too small for these {len(plan_)} blocks: block {number} "
                        f"has no output; use a larger --size, fewer blocks or fewer pools"
                    )
        sides.append(side)
    return sides


def check_cost(plan_: list[tuple[Stage, ...]], width: int, size: int, batch: int) -> None:
    """Refuse, before anything is built, a net whose memory or conv work is past settings' limits.

    values: the weights plus every stage's output, which autograd keeps for the backward pass; work:
    the convs' multiply-adds in the forward pass. Both per variant, counted at each block's input side.
    """
    sides = [size] + output_sizes(plan_, size)[:-1]
    weights = sum(width * width * st.k * st.k for stages in plan_ for st in stages if st.kind == "conv")
    values = weights + sum(batch * width * side * side * len(stages) for stages, side in zip(plan_, sides))
    work = sum(
        batch * width * width * st.k * st.k * side * side
        for stages, side in zip(plan_, sides)
        for st in stages
        if st.kind == "conv"
    )
    if values > PROPAGATE_VALUES_MAX or work > PROPAGATE_WORK_MAX:
        raise MomentcalcError(
            f"{len(plan_)} blocks of width {width} on a batch of {batch} {size}x{size} inputs hold {values:.2g} "
            f"values and take {work:.2g} multiply-adds per variant, more than the {PROPAGATE_VALUES_MAX:.2g} and "
            f"{PROPAGATE_WORK_MAX:.2g} allowed; use a smaller --width, --size, --batch or --depth"
        )


def check_size_at_least(depth: int, block: str, width: int, batch: int) -> None:
    """Refuse, from the arguments alone (no list of depth blocks, no net), a net whose least possible cost is
    already past check_cost's limits, or one deeper than PROPAGATE_DEPTH_MAX.

    Every block keeps at least its convs' weights and one value per stage, channel and input (a side of 1 after
    the pools), and its convs do at least width * width * k * k multiply-adds per input: lower bounds of what
    check_cost counts, which needs the plan, a list of depth blocks (1.4 GB and 13 s for a depth of 10**8).
    """
    check_depth(depth)
    least_cost(depth, parse_block(block), width, batch)


def least_cost(depth: int, stages: tuple[Stage, ...], width: int, batch: int) -> None:
    """check_size_at_least's cost bound, for a block parsed already (parse_block) and a depth checked already."""
    convs = [st.k * st.k for st in stages if st.kind == "conv"]
    values = depth * (width * width * sum(convs) + batch * width * len(stages))
    work = depth * batch * width * width * sum(convs)
    if values > PROPAGATE_VALUES_MAX or work > PROPAGATE_WORK_MAX:
        raise MomentcalcError(
            f"{depth} blocks of width {width} on a batch of {batch} inputs hold at least {values:.2g} values and "
            f"take at least {work:.2g} multiply-adds per variant, more than the {PROPAGATE_VALUES_MAX:.2g} and "
            f"{PROPAGATE_WORK_MAX:.2g} allowed; use a smaller --width, --batch or --depth"
        )

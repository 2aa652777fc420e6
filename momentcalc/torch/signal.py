"""Signal propagation: the mean, std and gradient RMS of every layer's output for N(0, 1) input.

``propagate(model, input_shape)`` works for any torch module: forward hooks record the outputs of
the modules asked for (by default every leaf module), tensor hooks their gradients, for one
N(0, 1) input and one N(0, 1) gradient injected at the output, both drawn from a fixed seed.

``network(variant, plan(depth, block, pool, every), width)`` builds the deep conv nets that ``momentcalc propagate``
compares, in three variants: NormProp (this package's modules), plain (He initialisation) and
BatchNorm; ``prediction(...)`` is what momentcalc's constants predict for the NormProp variant.
"""

from __future__ import annotations

import copy
import math
import pickle
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import backward, catalog
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..settings import PROPAGATE_VALUES_MAX, PROPAGATE_WORK_MAX, Progress, check_depth, check_seed
from ..spec import parse
from . import checks
from .functional import check_activation, compile_chain
from .modules import NormPropActivation, NormPropAvgPool2d, NormPropConv2d, NormPropMaxPool2d, _Normalized
from .moments import moments

integrate = lazy_module("scipy.integrate")
special = lazy_module("scipy.special")

VARIANTS = ("normprop", "plain", "batchnorm")


@dataclass(frozen=True)
class LayerStats:
    name: str
    depth: int  # 0: the input
    mean: float
    std: float
    grad_rms: float  # sqrt(mean(dL/dy^2)) over the whole output, for an N(0, 1) gradient at the model's output


@dataclass(frozen=True)
class Propagation:
    layers: tuple[LayerStats, ...]

    def to_dict(self) -> dict:
        return {"layers": [asdict(s) for s in self.layers]}


def propagate(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    modules: list[str] | None = None,
    train: bool = True,
    dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
) -> Propagation:
    """Per-layer output mean, std and gradient RMS for an N(0, 1) input of input_shape (batch first).

    modules: names from model.named_modules() to record, in the order they run (default: every leaf
    module, a NormProp module counting as one: its row is its normalized output; a module that runs twice
    is recorded at its first call). train: run in training mode (batch statistics, dropout), as at
    initialisation; the model's mode is restored afterwards. dtype: the precision the model runs in (float16,
    bfloat16, float32, float64); a model whose parameters are in another runs as a copy cast to dtype, the
    model itself untouched; the statistics are computed in float64. progress(done, total) is told after each
    recorded module's forward and backward pass.
    """
    input_shape = _check_propagate(model, input_shape, seed, modules, train, dtype, progress)
    named = dict(model.named_modules())
    wanted = default_modules(model) if modules is None else list(modules)
    unknown = [n for n in wanted if n not in named]
    if unknown:
        raise MomentcalcError(f"no module {unknown[0]!r} in the model; its modules: {', '.join(list(named)[1:12])} ...")
    run = _in_dtype(model, dtype)
    outputs, grads = _record(run, wanted, progress or (lambda done, total: None))
    was_training = run.training
    try:
        run.train(train)
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # dropout draws from the global generator
            gen = torch.Generator().manual_seed(seed)
            x = torch.randn(input_shape, generator=gen, dtype=torch.float32).to(dtype).requires_grad_(True)
            try:
                out = run(x)
                out.backward(torch.randn(out.shape, generator=gen, dtype=torch.float32).to(out.dtype))
            except (RuntimeError, ValueError, TypeError, AttributeError) as why:  # the model's own refusal
                first = (str(why).strip().splitlines() or [type(why).__name__])[0]
                message = f"the model does not run on an input of shape {input_shape} in {dtype}: {first}"
                raise MomentcalcError(message) from None
    finally:
        outputs.handles_off()
        run.train(was_training)
    rows = [_stats("input", 0, x.detach(), x.grad)]
    ran = [n for n in outputs]  # call order
    rows += [_stats(n, depth, outputs[n], grads.get(n)) for depth, n in enumerate(ran, start=1)]
    return Propagation(tuple(rows))


def default_modules(model: nn.Module) -> list[str]:
    """Every leaf module's name, a NormProp module counting as a leaf: its normalized output is what the next
    layer sees, not its inner pool's raw one."""
    chosen = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f"{c}.") for c in chosen):
            continue
        if isinstance(module, _Normalized) or not any(True for _ in module.children()):
            chosen.append(name)
    return chosen


class _Outputs(dict):
    """Recorded outputs by module name, in call order, with the hooks that record them."""

    handles: list

    def handles_off(self) -> None:
        for h in self.handles:
            h.remove()


def _record(model: nn.Module, wanted: list[str], tell) -> tuple[_Outputs, dict]:
    named = dict(model.named_modules())
    outputs, grads = _Outputs(), {}

    def record(name):
        def hook(module, inputs, output):
            if name in outputs or not isinstance(output, torch.Tensor):
                return
            outputs[name] = output.detach()
            tell(len(outputs), 2 * len(wanted))
            if output.requires_grad:
                output.register_hook(lambda g: keep_grad(name, g))

        return hook

    def keep_grad(name, g):
        grads.setdefault(name, g.detach())
        tell(len(wanted) + len(grads), 2 * len(wanted))

    outputs.handles = [named[n].register_forward_hook(record(n)) for n in wanted]
    return outputs, grads


def _in_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """model, or a copy of it cast to dtype where any floating parameter or buffer is in another."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.dtype == dtype for t in tensors if t.is_floating_point()):
        return model
    try:
        return copy.deepcopy(model).to(dtype)
    except (RuntimeError, TypeError, pickle.PicklingError) as why:
        first = (str(why).strip().splitlines() or [type(why).__name__])[0]
        raise MomentcalcError(f"the model cannot be copied to run in {dtype} ({first}); cast it yourself") from None


def _check_propagate(model, input_shape, seed, modules, train, dtype, progress) -> tuple[int, ...]:
    """The input shape as a tuple; MomentcalcError for any bad argument, before anything runs."""
    if not isinstance(model, nn.Module):
        raise MomentcalcError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise MomentcalcError(
            f"input_shape must be a tuple of sizes, batch first, e.g. (8, 3, 32, 32); got {input_shape!r}"
        )
    for size in input_shape:
        checks.whole("every size of input_shape", size, 1)
    if math.prod(input_shape) > PROPAGATE_VALUES_MAX:
        raise MomentcalcError(
            f"an input of shape {tuple(input_shape)} holds {math.prod(input_shape):.2g} values, more than the "
            f"{PROPAGATE_VALUES_MAX:.2g} allowed"
        )
    check_seed(seed, most=2**63 - 1)
    if modules is not None and (
        isinstance(modules, str)
        or not isinstance(modules, (list, tuple))
        or not all(isinstance(n, str) for n in modules)
    ):
        raise MomentcalcError(f"modules must be a list of names from model.named_modules(), got {modules!r}")
    checks.flag("train", train)
    checks.floating_dtype(dtype)
    if progress is not None and not callable(progress):
        raise MomentcalcError(f"progress must be a function of (done, total), got {progress!r}")
    return tuple(input_shape)


def _stats(name: str, depth: int, y: torch.Tensor, g: torch.Tensor | None) -> LayerStats:
    if y.numel() < 2:
        raise MomentcalcError(f"{name}'s output holds {y.numel()} value(s): no std; use a larger input_shape")
    y = y.double()
    if not torch.isfinite(y).all():
        raise MomentcalcError(
            f"{name}'s output holds non-finite values (an overflow in a narrow dtype, or the model's own): "
            "no statistics; use float32 or float64"
        )
    grad_rms = math.nan if g is None else g.double().pow(2).mean().sqrt().item()
    return LayerStats(name, depth, y.mean().item(), y.std().item(), grad_rms)


# ---- the networks of `momentcalc propagate` ----------------------------------------------------------------------

_CONV = re.compile(r"^conv(\d+)x(\d+)$")


@dataclass(frozen=True)
class Stage:
    kind: str  # "conv", "activation" or "pool"
    spec: str  # conv: "conv3x3"; activation: its spec; pool: its window op, e.g. maxpool(k=2,s=1)
    k: int = 0
    s: int = 1
    p: int = 0


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
            stages.append(Stage("pool", str(op), op.get("k"), op.get("s") or op.get("k"), op.get("p")))
        elif op is not None and op.kind == catalog.ELEMENTWISE:
            check_activation(item)
            if stages and stages[-1].kind != "conv":
                # NormPropActivation's constants are those of an N(0, 1) input: what a conv puts out.
                raise MomentcalcError(f"put a conv before the activation {item!r} in {text!r}")
            stages.append(Stage("activation", str(op)))
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
    stages = parse_block(block)
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
    stages = parse_block(block)
    convs = [st.k * st.k for st in stages if st.kind == "conv"]
    values = depth * (width * width * sum(convs) + batch * width * len(stages))
    work = depth * batch * width * width * sum(convs)
    if values > PROPAGATE_VALUES_MAX or work > PROPAGATE_WORK_MAX:
        raise MomentcalcError(
            f"{depth} blocks of width {width} on a batch of {batch} inputs hold at least {values:.2g} values and "
            f"take at least {work:.2g} multiply-adds per variant, more than the {PROPAGATE_VALUES_MAX:.2g} and "
            f"{PROPAGATE_WORK_MAX:.2g} allowed; use a smaller --width, --batch or --depth"
        )


def prediction(plan_: list[tuple[Stage, ...]], size: int) -> Propagation:
    """What momentcalc predicts for the NormProp net: mean 0 and std 1 after every block, and the gradient RMS.

    The gradient's variance changes by a known factor through each layer, for iid upstream gradients:
    a unit-norm conv with circular padding by cout / cin = 1 (backward.py's count with no border);
    an activation f by E[f'(X)^2] / std^2 (the backward constant, then the normalization); a pool by
    the mean of its exact backward map (backward.exact_map) / std^2. A max-pool right after a monotone
    f is taken with f as one step, because the gradient goes only to each window's largest input,
    where f' is not a typical f': the pair's factor is map_mean * m * E[f'(X)^2; X the max of m] /
    (std_f^2 std_pool^2), m = k * k. The RMS is 1 at the output, where the gradient is injected.
    """
    depth = len(plan_)
    sides = [size] + output_sizes(plan_, size)
    factors = []  # per block: Var[grad at its input] / Var[grad at its output]
    for number, stages in enumerate(plan_):
        factor, side, feed, act = 1.0, sides[number], None, None
        for st in stages:
            if st.kind == "activation":
                act = moments(st.spec)
                if act.grad_sq is None:
                    raise MomentcalcError(f"no backward constant E[f'(X)^2] for {st.spec!r}: nothing to predict with")
                factor *= act.grad_sq / act.std**2
                feed = f"{st.spec} | normalize"
            elif st.kind == "pool":
                pipeline = f"{feed} | {st.spec}" if feed else st.spec
                bare = st.spec.split("(")[0]
                layer = backward.Layer(bare, st.k, st.s, st.p)
                map_mean = float(backward.exact_map(layer, side).mean())
                pool_var = moments(pipeline).std ** 2
                if act is not None and bare == "maxpool" and _monotone(act.spec):
                    m = st.k * st.k
                    factor *= (act.std**2 / act.grad_sq) * map_mean * m * _grad_sq_at_max(act.spec, m)
                    factor /= act.std**2 * pool_var
                else:
                    factor *= map_mean / pool_var
                side = backward.output_size(layer, side)
                feed, act = f"{pipeline} | normalize", None
            else:
                feed, act = None, None
        factors.append(factor)
    rms = [1.0] * (depth + 1)
    for d in range(depth - 1, -1, -1):  # the gradient at block d's input is block d's factor times that at its output
        rms[d] = rms[d + 1] * math.sqrt(factors[d])
    rows = [LayerStats("input", 0, 0.0, 1.0, rms[0])]
    rows += [LayerStats(name, d + 1, 0.0, 1.0, rms[d + 1]) for d, name in enumerate(block_names(depth))]
    return Propagation(tuple(rows))


def _monotone(spec: str) -> bool:
    return all(op.info.monotone for op in parse(spec).ops)


def _grad_sq_at_max(spec: str, m: int) -> float:
    """E[f'(X_1)^2; X_1 the largest of m iid N(0, 1)] = integral of f'(x)^2 phi(x) Phi(x)^(m - 1) (f monotone)."""
    op = parse(spec).last
    a, b = op.info.args(op)
    cuts = sorted({-12.0, 12.0, *(c for c in op.info.kinks(a, b) if -12.0 < c < 12.0)})
    integrand = lambda x: op.info.df(x, a, b) ** 2 * special.ndtr(x) ** (m - 1) * math.exp(-x * x / 2)  # noqa: E731
    total = sum(integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-12)[0] for lo, hi in zip(cuts, cuts[1:]))
    return total / math.sqrt(2 * math.pi)


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
        return {
            "depth": self.depth,
            "block": self.block,
            "pool": self.pool,
            "pool_every": self.pool_every,
            "width": self.width,
            "size": self.size,
            "batch": self.batch,
            "seed": self.seed,
            "variants": {v: p.to_dict()["layers"] for v, p in self.runs.items()},
            "prediction": self.prediction.to_dict()["layers"],
        }


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
    check_size_at_least(depth, block, width, batch)  # arithmetic only: a depth of 10**9 costs nothing to refuse
    blocks = plan(depth, block, pool, pool_every)
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

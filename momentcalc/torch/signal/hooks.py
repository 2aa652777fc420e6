"""propagate: forward hooks record the outputs of the modules asked for, tensor hooks their gradients, for one
N(0, 1) input and one N(0, 1) gradient at the output; the mean, std and gradient RMS of each."""

from __future__ import annotations

import copy
import math
import pickle
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import MomentcalcError
from ...result import record_dict
from ...settings import PROPAGATE_VALUES_MAX, Progress, check_seed
from .. import checks
from ..modules import _Normalized


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
        return record_dict(self)


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

"""autoinit(model, example_input, target): rescale each weighted layer (and each residual sum, with a fixed
scalar gain) so that predict() puts its output variance at the target, then measure the result.

One pass in the order the nodes run: each target node's predicted output law, given everything before it already
rescaled, is multiplied by c = sqrt(target / variance). A Linear or Conv module takes c into its weight and bias
(in place, in the model given); any other target node (a functional convolution whose weight is computed, as in
weight-standardized convs; a residual addition) gets a constant multiplication inserted after it, in a
torch.fx.GraphModule of the model that the report returns as `model`. An unmodeled node carries the statistics
measured before rescaling; a second pass (passes=2) measures again and refines.

measured=True adds one correction by measurement after the predicted passes, reported as such: node by node in the
order they run, each target node whose variance measured on the example input (everything before it corrected) is
outside [1 - tolerance, 1 + tolerance] x target is rescaled to the target; the report's `corrections` names each and
the measured variance over the target it had. Its prediction is then no longer the target: it is what predict() says.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from ...errors import MomentcalcError
from .core import predict
from .law import Law
from .ops import Out
from .report import Prediction
from .trace import run as trace_run
from .trace import trace

_SCALED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_FUNCTIONAL = ("conv1d", "conv2d", "conv3d", "linear")
_SUMS = (operator.add, operator.iadd, torch.add)


@dataclass(frozen=True)
class Scaled:
    node: str
    module: str
    how: str  # "weight" (the module's weight and bias) or "gain" (a constant inserted after the node)
    scale: float
    predicted_std: float  # after autoinit, by predict() on the returned model
    measured_std: float


@dataclass(frozen=True)
class AutoinitReport:
    target: float
    layers: tuple[Scaled, ...]
    model: nn.Module  # the model given (weights rescaled in place), or a GraphModule of it with gains inserted
    before: Prediction
    after: Prediction
    # measured=True: (node, its measured variance over the target before the correction), for each node corrected
    corrections: tuple[tuple[str, float], ...] = ()

    def worst(self) -> float:
        """The measured variance farthest from the target, over the rescaled nodes, as a ratio to the target."""
        ratios = [s.measured_std**2 / self.target for s in self.layers if s.measured_std > 0]
        return max(ratios, key=lambda r: abs(math.log(r))) if ratios else math.nan


def _target_of(node: fx.Node, graph: fx.GraphModule, laws_are_data) -> str | None:
    if node.op == "call_module" and isinstance(graph.get_submodule(node.target), _SCALED_MODULES):
        return "weight"
    if node.op == "call_function" and getattr(node.target, "__name__", "") in _FUNCTIONAL:
        return "gain"
    if node.op == "call_function" and node.target in _SUMS and laws_are_data(node):
        return "gain"
    return None


def autoinit(
    model: nn.Module,
    example_input: torch.Tensor,
    target: float = 1.0,
    targets: dict[str, float] | None = None,
    passes: int = 1,
    seed: int = 0,
    measured: bool = False,
    tolerance: float = 0.05,
) -> AutoinitReport:
    """Rescale model so that every weighted layer's (and residual sum's) predicted output variance is target (or
    targets[node name or module path]); then predict and measure it again. Returns the report (data)."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 0 or math.isinf(target):
        raise MomentcalcError(f"target must be a variance > 0, got {target!r}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise MomentcalcError(f"passes must be a whole number >= 1, got {passes!r}")
    targets = dict(targets or {})
    before = predict(model, example_input, seed)
    scales: dict[str, tuple[str, str, float]] = {}
    current = model
    for _ in range(passes):
        found: dict[str, tuple[str, str, float]] = {}
        predict(current, example_input, seed, adjust=_adjuster(target, targets, found))
        current = _apply(model, found, scales)
    corrections: list[tuple[str, float]] = []
    if measured:
        if not 0 < tolerance < 1:
            raise MomentcalcError(f"tolerance must be in (0, 1), got {tolerance!r}")
        current = _correct(model, current, example_input, seed, scales, (target, targets, tolerance), corrections)
    after = predict(current, example_input, seed)
    layers = []
    for name, (how, module, scale) in scales.items():
        row = after.node(_after_name(after, name) if how == "gain" else name)
        layers.append(Scaled(name, module, how, scale, row.std, row.measured_std))
    return AutoinitReport(float(target), tuple(layers), current, before, after, tuple(corrections))


def _correct(model, current, example_input, seed, scales, goals, corrections) -> nn.Module:
    """The measured correction: one run per corrected node, in the order they run (a correction changes what
    follows it, never what precedes it)."""
    target, targets, tolerance = goals
    for name, (how, module, _) in list(scales.items()):
        ran = trace_run(trace(current), example_input, seed)
        real = ran.values.get(name)
        if not isinstance(real, torch.Tensor):
            continue
        gain = scales[name][2] if how == "gain" else 1.0  # the gain follows the node: its output is before it
        var = real.double().var(unbiased=False).item() * gain * gain
        goal = targets.get(name, targets.get(module, target))
        if not var > 0 or abs(var / goal - 1) <= tolerance:
            continue
        c = math.sqrt(goal / var)
        corrections.append((name, var / goal))
        current = _apply(model, {name: (how, module, c * gain)}, scales)
    return current


def _adjuster(target: float, targets: dict, found: dict):
    def adjust(node: fx.Node, graph: fx.GraphModule, out: Out) -> Out:
        def data(n):
            return sum(isinstance(a, fx.Node) for a in n.args[:2]) == 2

        how = _target_of(node, graph, data)
        if how is None or not isinstance(out.law, Law) or not out.law.pooled_var > 0:
            return out
        module = str(node.target) if node.op == "call_module" else ""
        goal = targets.get(node.name, targets.get(module, target))
        c = math.sqrt(goal / out.law.pooled_var)
        found[node.name] = (how, module, c)
        law = out.law.scaled(c)
        return Out(law, out.back, out.note)

    return adjust


def _apply(model: nn.Module, found: dict, scales: dict) -> nn.Module:
    """Weights scaled in place; gains inserted into a fresh trace of the model (with every gain so far)."""
    for name, (how, module, c) in found.items():
        # a weight's scale composes over passes; a gain is found before the gain inserted by the last pass
        old = scales.get(name, (how, module, 1.0))[2] if how == "weight" else 1.0
        scales[name] = (how, module, old * c)
        if how == "weight":
            layer = model.get_submodule(module)
            with torch.no_grad():
                layer.weight.mul_(c)
                if layer.bias is not None:
                    layer.bias.mul_(c)
    gains = {name: s for name, (how, _, s) in scales.items() if how == "gain"}
    if not gains:
        return model
    graph = trace(model)
    for node in list(graph.graph.nodes):
        if node.name in gains:
            with graph.graph.inserting_after(node):
                scaled = graph.graph.call_function(operator.mul, (node, gains[node.name]))
            scaled.meta = dict(node.meta)  # the gain belongs to the node's module (a block's output stays in it)
            node.replace_all_uses_with(scaled, delete_user_cb=lambda user, new=scaled: user is not new)
    graph.recompile()
    return graph


def _after_name(after: Prediction, name: str) -> str:
    """The node that holds a gain node's output in the returned model: the gain's multiplication inserted after it
    (fx names it mul, mul_1, ... next to it). A weight's node is its own (the next node may be a mul of the model's
    own, as in y * y)."""
    names = [n.name for n in after.nodes]
    if name not in names:
        return name
    i = names.index(name)
    if i + 1 < len(names) and after.nodes[i + 1].kind == "mul":
        return names[i + 1]
    return name

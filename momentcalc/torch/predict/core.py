"""predict(model, example_input): the mean, variance and mean squared gradient of every node of a traced model,
from the model's own weights and momentcalc's exact constants, beside what one run on the example measures.

Forward, node by node (ops.py's rules); a node no rule models takes the law measured there, so what follows is
still predicted. Backward, node by node in reverse: each rule's factor times the mean squared gradient at its
output, summed over the node's users (independent gradients), from 1 at the model's output; an unmodeled node
passes on the measured ratio.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import fx, nn

from ...errors import MomentcalcError
from . import dispatch, trace
from .law import Law, channel_axis, measured
from .ops import Out, Unmodeled
from .report import NodePrediction, Prediction


def predict(model: nn.Module, example_input: torch.Tensor, seed: int = 0, adjust=None) -> Prediction:
    """Predicted beside measured statistics of every node of model on example_input (the batch it measures).

    The model is traced and run as a copy (its in-place activations made out-of-place); the model itself is
    untouched and keeps its mode (train or eval), which decides BatchNorm's and dropout's rules. seed: the
    injected N(0, 1) gradient and any dropout masks. adjust(node, graph, out) -> out, if given, may change each
    modeled node's output law before propagation goes on (autoinit's rescaling).
    """
    _check(model, example_input, seed)
    work = copy.deepcopy(model)
    for module in work.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    graph = trace.trace(work)
    for node in graph.graph.nodes:
        if node.kwargs.get("inplace") is True:
            node.kwargs = {**node.kwargs, "inplace": False}
    graph.recompile()
    ran = trace.run(graph, example_input, seed)
    return Prediction(tuple(_rows(ran, adjust)), seed, tuple(example_input.shape))


def _check(model, example_input, seed) -> None:
    if not isinstance(model, nn.Module):
        raise MomentcalcError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or not example_input.is_floating_point():
        raise MomentcalcError(f"example_input must be a floating torch.Tensor, batch first, got {example_input!r:.60}")
    if example_input.dim() < 2 or example_input.shape[0] < 2 or not torch.isfinite(example_input).all():
        raise MomentcalcError(
            f"example_input must hold a batch of at least 2 finite inputs, batch first; got shape "
            f"{tuple(example_input.shape)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise MomentcalcError(f"seed must be a whole number in [0, 2**63), got {seed!r}")


def _rows(ran: trace.Run, adjust=None) -> list[NodePrediction]:
    laws, notes, modeled, backs = {}, {}, {}, {}
    order = []
    for node in ran.graph.graph.nodes:
        real = ran.values.get(node.name)
        if node.op == "placeholder":
            if isinstance(real, torch.Tensor) and real.is_floating_point():
                laws[node.name] = measured(real, _input_axis(node, ran.graph))
                notes[node.name], modeled[node.name] = "the input, measured", True
                order.append(node)
            continue
        if node.op in ("get_attr", "output") or node.name not in ran.data or not _carries_data(real):
            continue
        inputs = _data_arguments(node, laws)
        try:
            out = _model(node, ran, laws)
            if adjust is not None:
                out = adjust(node, ran.graph, out)
            laws[node.name], notes[node.name], modeled[node.name] = out.law, out.note, True
            backs[node.name] = list(zip(inputs, out.back))
        except (Unmodeled, MomentcalcError) as why:
            if not isinstance(real, torch.Tensor):
                raise MomentcalcError(f"node {node.name} ({_kind(node, ran.graph)}) needs {why}") from None
            laws[node.name] = measured(real, _axis_like(real, node, laws))
            notes[node.name], modeled[node.name] = f"needs {why}", False
            backs[node.name] = [(i, _measured_ratio(ran, i, node.name)) for i in dict.fromkeys(inputs)]
        if isinstance(real, torch.Tensor):
            order.append(node)
    grads = _backward(ran, backs)
    return [_row(node, ran, laws[node.name], grads, notes[node.name], modeled[node.name]) for node in order]


def _data_arguments(node: fx.Node, laws: dict) -> list[str]:
    """The node's data inputs in argument order, a repeated one as often as it appears (x * x, cat([x, x]))."""
    found: list[str] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n.name) if n.name in laws else None)
    return found


def _carries_data(real) -> bool:
    if isinstance(real, torch.Tensor):
        return real.is_floating_point()
    return isinstance(real, (tuple, list)) and bool(real) and all(isinstance(t, torch.Tensor) for t in real)


def _model(node: fx.Node, ran: trace.Run, laws: dict) -> Out:
    args = fx.node.map_arg(node.args, lambda n: laws.get(n.name, ran.values.get(n.name)))
    kwargs = fx.node.map_arg(node.kwargs, lambda n: laws.get(n.name, ran.values.get(n.name)))
    real = ran.values[node.name]
    if node.op == "call_module":
        module = ran.graph.get_submodule(node.target)
        if not args or not isinstance(args[0], Law) or any(isinstance(a, Law) for a in args[1:]):
            raise Unmodeled(f"a rule for {type(module).__name__} of several inputs")
        return dispatch.module_rule(module, args[0], real)
    return dispatch.function_rule(node.target, list(args), dict(kwargs), real, node.op == "call_method")


def _input_axis(node: fx.Node, graph: fx.GraphModule) -> int:
    """Channels of the input: on the last axis where a Linear or LayerNorm reads it first, else axis 1."""
    real_users = list(node.users)
    for user in real_users:
        if user.op == "call_module" and isinstance(graph.get_submodule(user.target), (nn.Linear, nn.LayerNorm)):
            return -1
    return 1


def _axis_like(real: torch.Tensor, node: fx.Node, laws: dict) -> int:
    for n in node.all_input_nodes:
        law = laws.get(n.name)
        if isinstance(law, Law) and len(law.shape) == real.dim():
            return law.axis
    return channel_axis(real, features_last=real.dim() == 3)


def _measured_ratio(ran: trace.Run, source: str, node: str) -> float:
    g_in, g_out = ran.grads.get(source), ran.grads.get(node)
    if g_in is None or g_out is None:
        return 1.0
    out_sq = g_out.double().pow(2).mean().item()
    return g_in.double().pow(2).mean().item() / out_sq if out_sq > 0 else 1.0


def _backward(ran: trace.Run, backs: dict) -> dict[str, float]:
    """Mean squared gradient at each node, from 1 at the model's output tensors."""
    grads: dict[str, float] = {}
    output = next(n for n in ran.graph.graph.nodes if n.op == "output")
    for n in output.all_input_nodes:
        grads[n.name] = 1.0
    for node in reversed(list(ran.graph.graph.nodes)):
        g = grads.get(node.name)
        if g is None:
            continue
        for source, factor in backs.get(node.name, ()):
            grads[source] = grads.get(source, 0.0) + factor * g
    return grads


def _kind(node: fx.Node, graph: fx.GraphModule) -> str:
    if node.op == "call_module":
        return type(graph.get_submodule(node.target)).__name__
    return node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))


def _module_of(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1]
        return path[0] if isinstance(path, tuple) else str(path)
    return ""


def _row(node, ran, law, grads, note, modeled) -> NodePrediction:
    real = ran.values[node.name].double()
    g_real = ran.grads.get(node.name)
    g = grads.get(node.name)
    return NodePrediction(
        name=node.name,
        kind=_kind(node, ran.graph),
        module=_module_of(node),
        mean=law.pooled_mean if isinstance(law, Law) else math.nan,
        std=math.sqrt(law.pooled_var) if isinstance(law, Law) else math.nan,
        grad_rms=math.sqrt(g) if g is not None else math.nan,
        measured_mean=real.mean().item(),
        measured_std=real.std(unbiased=False).item(),
        measured_grad_rms=g_real.double().pow(2).mean().sqrt().item() if g_real is not None else math.nan,
        modeled=modeled,
        note=note,
    )

"""Tracing a model with torch.fx and running it once on the example input, keeping every node's real output and
the gradient reaching it from an N(0, 1) gradient injected at the model's output (fixed seed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from ...errors import MomentcalcError
from . import leaves


@dataclass
class Run:
    graph: fx.GraphModule
    values: dict[str, object]  # node name -> its real output (detached tensors; anything else as is)
    grads: dict[str, torch.Tensor]  # node name -> the gradient reaching its output
    data: set[str]  # the nodes that depend on the model's input (the others are weights and constants)


def trace(model: nn.Module) -> fx.GraphModule:
    """The model as an fx graph (torch.fx.symbolic_trace); one MomentcalcError line where it cannot be traced."""
    if isinstance(model, fx.GraphModule):
        return model  # traced already (autoinit's model with its gains): its nodes keep their module paths
    tracer = fx.Tracer()
    if tracer.is_leaf_module(model, ""):
        model = nn.Sequential(model)  # a torch.nn layer alone: traced as a call of it, not through its forward
    try:
        with leaves.patched():  # autograd Functions and unit ops kept whole
            return fx.symbolic_trace(model)
    except Exception as why:  # fx raises TraceError, TypeError, NotImplementedError, ... from the model's own code
        first = (str(why).strip().splitlines() or [type(why).__name__])[0]
        raise MomentcalcError(
            f"torch.fx cannot trace {type(model).__name__} ({type(why).__name__}: {first}); predict needs a model "
            "without data-dependent control flow: trace the part that has none, or wrap the rest in a leaf module"
        ) from None


class _Recorder(fx.Interpreter):
    def __init__(self, graph: fx.GraphModule):
        super().__init__(graph)
        self.values, self.live = {}, {}

    def run_node(self, node):
        out = super().run_node(node)
        if isinstance(out, torch.Tensor):
            if out.requires_grad:
                out.retain_grad()
                self.live[node.name] = out
            self.values[node.name] = out.detach()
        else:
            self.values[node.name] = out
        return out


def run(graph: fx.GraphModule, example: torch.Tensor, seed: int) -> Run:
    """One forward pass with every node's output kept, and one backward pass of an N(0, 1) gradient."""
    recorder = _Recorder(graph)
    x = example.detach().clone().requires_grad_(example.is_floating_point())
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # dropout draws from the global generator
        try:
            out = recorder.run(x)
        except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as why:
            first = (str(why).strip().splitlines() or [type(why).__name__])[0]
            raise MomentcalcError(f"the model does not run on the example input {tuple(x.shape)}: {first}") from None
        outputs = [t for t in _tensors(out) if t.requires_grad]
        if outputs:
            gen = torch.Generator().manual_seed(seed)
            injected = [torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype) for t in outputs]
            torch.autograd.backward(outputs, injected)
    grads = {name: t.grad.detach() for name, t in recorder.live.items() if t.grad is not None}
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    if x.grad is not None and placeholders:
        grads[placeholders[0].name] = x.grad.detach()
    return Run(graph, recorder.values, grads, _data_nodes(graph, recorder.values))


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _tensors(item)]
    if isinstance(out, dict):
        return [t for item in out.values() for t in _tensors(item)]
    return []


def _data_nodes(graph: fx.GraphModule, values: dict) -> set[str]:
    """Nodes computed from the input's values: a number taken from its shape (a unit-scaled linear's batch size,
    scaling its weight's gradient) does not make what it meets data."""
    data = set()
    for node in graph.graph.nodes:
        sources = [a for a in node.all_input_nodes if a.name in data and _is_tensor_data(values.get(a.name))]
        if node.op == "placeholder" or sources:
            data.add(node.name)
    return data


def _is_tensor_data(value) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_is_tensor_data(v) for v in value)
    return isinstance(value, torch.Tensor)

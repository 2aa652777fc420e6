"""What predict() returns: per node of the traced model, the predicted and the measured mean, std and gradient
RMS, whether a rule modeled it, and what an unmodeled node would need."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NodePrediction:
    name: str  # the fx node
    kind: str  # the module type, function or method it runs
    module: str  # the path of the module it belongs to ('' at the top)
    mean: float  # predicted, over the whole tensor
    std: float
    grad_rms: float  # predicted sqrt(E[g^2]) for a unit-variance gradient at the output; nan where none reaches
    measured_mean: float
    measured_std: float
    measured_grad_rms: float
    modeled: bool
    note: str  # the law an activation saw, an assumption met, or (unmodeled) what it would need

    @property
    def variance_ratio(self) -> float:
        """Predicted over measured variance."""
        return self.std**2 / self.measured_std**2 if self.measured_std > 0 else math.nan


@dataclass(frozen=True)
class Prediction:
    nodes: tuple[NodePrediction, ...]
    seed: int
    input_shape: tuple[int, ...]

    @property
    def unmodeled(self) -> tuple[NodePrediction, ...]:
        return tuple(n for n in self.nodes if not n.modeled)

    def node(self, name: str) -> NodePrediction:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def blocks(self, depth: int = 1) -> tuple[NodePrediction, ...]:
        """The last node of each module at the given depth of the module tree (e.g. 'layer1' at 1, 'layer1.0' at
        2), in the order they run: a block's output. Nodes outside any such module are left out."""
        last: dict[str, NodePrediction] = {}
        for n in self.nodes:
            parts = n.module.split(".") if n.module else []
            if len(parts) >= depth:
                key = ".".join(parts[:depth])
                last.pop(key, None)
                last[key] = n
        return tuple(last.values())

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "input_shape": list(self.input_shape),
            "nodes": [asdict(n) for n in self.nodes],
        }

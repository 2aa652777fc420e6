"""Geometry of a map's output positions: the window ops with their map sizes, the receptive field of each
output index, and the grouping of output positions into kinds (identically distributed positions)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .. import catalog
from ..convshape import conv_shape
from ..errors import MomentcalcError
from ..spec import Op, Spec

_CLASS_NAMES = {
    1: ("interior", "ends"),
    2: ("interior", "edges", "corners"),
    3: ("interior", "faces", "edges", "corners"),
}


@dataclass(frozen=True)
class Layer:
    """One window op on the map, per axis: it reads size_in values and gives size_out."""

    depth: int  # its index in the spec
    op: Op
    k: int
    s: int
    p: int
    size_in: int
    size_out: int

    def reads(self, u: int, clip: bool = True) -> list[int]:
        """Indices below that window u reads; with clip, the real ones only (not padding)."""
        start = u * self.s - self.p
        return [t for t in range(start, start + self.k) if not clip or 0 <= t < self.size_in]


def layers_of(spec: Spec, size: int) -> tuple[int, list[Layer]]:
    """(dims, the window ops with their map sizes); MomentcalcError where a window does not fit."""
    dims, layers, width = None, [], size
    for depth, op in enumerate(spec.ops):
        if op.kind != catalog.WINDOW:
            continue
        if op.get("n") is not None:
            raise MomentcalcError(
                f"size= needs window shapes: '{op}' gives only a count n; write it with k=, e.g. {op.name}(k=3)"
            )
        if dims is not None and op.get("dims") != dims:
            raise MomentcalcError(
                f"size= needs every window op of '{spec}' on maps of the same dims, got dims {dims} and "
                f"{op.get('dims')}"
            )
        dims = op.get("dims")
        k, p = op.get("k"), op.get("p")
        s = op.get("s") or k
        try:
            shape = conv_shape(width, k, s, p, pool=True)
        except MomentcalcError as why:
            raise MomentcalcError(
                f"size={size}: '{op}' (stage {depth + 1}) gets a map of side {width}: {why}"
            ) from None
        layers.append(Layer(depth, op, k, s, p, width, shape.output))
        width = shape.output
    return dims or 2, layers


def axis_signature(layers: list[Layer], j: int, clip: bool = True) -> tuple:
    """The receptive field of output index j along one axis, up to translation and mirroring.

    For each window op from the last down: which indices below each window
    reads (its real ones with clip; all k without, as deep inside a map).
    """
    nodes, levels = [j], []
    for layer in reversed(layers):
        reads = {u: layer.reads(u, clip) for u in nodes}
        below = sorted(set().union(*reads.values()))
        levels.append((nodes, reads, below))
        nodes = below

    def encode(sign: int) -> tuple:
        out = []
        for nodes, reads, below in levels:
            top, base = min(sign * u for u in nodes), min(sign * t for t in below)
            out.append(tuple(sorted((sign * u - top, tuple(sorted(sign * t - base for t in reads[u]))) for u in nodes)))
        return tuple(out)

    return min(encode(1), encode(-1))


@dataclass(frozen=True)
class PositionGroup:
    key: tuple
    positions: tuple[tuple[int, ...], ...]
    label: str
    real_inputs: int | None


def group_positions(layers: list[Layer], dims: int, size: int) -> list[PositionGroup]:
    """Output positions grouped by kind: the interior first, then edges, corners (most frequent first among equals)."""
    width = layers[-1].size_out if layers else size
    sig = [axis_signature(layers, j) for j in range(width)]
    border = [sig[j] != axis_signature(layers, j, clip=False) for j in range(width)]
    real = [len(layers[-1].reads(j)) for j in range(width)] if layers else None
    found: dict[tuple, list] = {}
    classes: dict[tuple, set] = {}
    for pos in itertools.product(range(width), repeat=dims):
        key = tuple(sorted(sig[j] for j in pos))
        found.setdefault(key, []).append(pos)
        classes.setdefault(key, set()).add(sum(border[j] for j in pos))
    names = _CLASS_NAMES[dims]
    groups = [
        PositionGroup(
            key,
            tuple(positions),
            " + ".join(names[c] for c in sorted(classes[key])),
            None if real is None else math.prod(real[j] for j in positions[0]),
        )
        for key, positions in found.items()
    ]
    return sorted(groups, key=lambda g: (min(classes[g.key]), -len(g.positions), g.positions[0]))


def map_work(layers: list[Layer], dims: int, size: int) -> int:
    """Values one simulated map touches: its inputs, and every tap of every window of each window op."""
    return size**dims + sum((layer.size_out * layer.k) ** dims for layer in layers)

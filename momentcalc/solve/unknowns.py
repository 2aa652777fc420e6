"""What a solve is posed on: the unknowns marked `name=?` in a spec and in the affine wrap a f(b x + c) + d."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import MomentcalcError
from ..spec import parse

UNKNOWN = re.compile(r"([A-Za-z_]\w*)\s*=\s*\?")
AFFINE_DEFAULTS = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
# Symmetries of the equations in the wrap a f(b x + c) + d, X ~ N(mu, sigma^2): each maps a root onto a root.
MIRRORS = {
    "b": "b -> -b, c -> c + 2 b mu: f's input b X + c keeps its law, so every target is kept",
    "a": "a -> -a, d -> d + 2 a E[f]: the same mean, variance and E[y'^2]",
}


@dataclass(frozen=True)
class Unknown:
    stage: int  # index of the op in the pipeline
    op: str
    name: str
    default: float
    positive: bool  # the parameter accepts only x > 0: solved for log(x)

    @property
    def label(self) -> str:
        return self.name


def parse_affine(text: str | None) -> tuple[dict[str, float], tuple[Unknown, ...]]:
    """'a=?,b=2,d=?' -> ({fixed a, b, c, d}, the unknowns among them). a and b may be negative (never 0): each sign
    is searched (as +-exp(u)), and roots that a symmetry maps onto each other are listed as mirrors (MIRRORS)."""
    fixed, unknowns = dict(AFFINE_DEFAULTS), []
    if text is None:
        return fixed, ()
    for item in text.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if key not in AFFINE_DEFAULTS or not eq or not value:
            raise MomentcalcError(f"bad --affine item {item.strip()!r}: write a, b, c, d as name=number or name=?")
        if value == "?":
            unknowns.append(Unknown(-1, "affine", key, AFFINE_DEFAULTS[key] or 0.0, key in ("a", "b")))
            continue
        try:
            fixed[key] = float(value)
        except ValueError:
            raise MomentcalcError(f"bad --affine value {item.strip()!r}: expected a number or ?") from None
        if not math.isfinite(fixed[key]):
            raise MomentcalcError(f"bad --affine value {item.strip()!r}: expected a finite number")
    return fixed, tuple(unknowns)


def find_unknowns(spec: str, required: bool = True) -> tuple[Unknown, ...]:
    """The parameters written `name=?` in spec text, in order; a MomentcalcError unless each is a float
    parameter of its op."""
    matches = list(UNKNOWN.finditer(spec))
    if not matches and not required:
        parse(spec)
        return ()
    if not matches:
        raise MomentcalcError(
            f"no unknowns in {spec!r}: mark the parameters to solve for with '?', e.g. 'selu(alpha=?,scale=?)'"
        )
    if spec.count("?") != len(matches):
        raise MomentcalcError(f"malformed unknown in {spec!r}: write name=? inside an op's parentheses")
    parsed = parse(with_ones(spec))
    unknowns = []
    for m in matches:
        stage = _stage_at(spec, m.start())
        op = parsed.ops[stage]
        param = op.info.param(m.group(1))
        if param is None or param.kind is not float:
            raise MomentcalcError(f"{op.name}'s parameter {m.group(1)!r} is not a number that can be solved for")
        default = float(param.default) if param.default is not None else 1.0
        positive = not param.accepts(0.0) and not param.accepts(-1.0)
        unknowns.append(Unknown(stage, op.name, param.name, default, positive))
    labels = [u.label for u in unknowns]
    if len(set(labels)) != len(labels):
        raise MomentcalcError(f"solve takes each parameter name once; {spec!r} repeats one")
    return tuple(unknowns)


def with_ones(spec: str) -> str:
    """spec with each `name=?` written `name=1`: parseable, for what does not depend on the values."""
    return UNKNOWN.sub(lambda m: f"{m.group(1)}=1", spec)


def _stage_at(text: str, position: int) -> int:
    depth, stage = 0, 0
    for ch in text[:position]:
        depth += ch == "("
        depth -= ch == ")"
        stage += ch == "|" and depth == 0
    return stage

"""Derived views of the activation constants at N(0, 1), beside the published tables.

For each activation f and X ~ N(0, 1):

* PyTorch-style gain: 1 / sqrt(E[f(X)^2]) (what torch.nn.init.calculate_gain
  approximates: the weight scale that keeps the second moment at 1);
* NF-Nets-style gamma: 1 / std(f(X)) (the constants baked into
  deepmind-research nfnets/base.py ``nonlinearities``);
* the NormProp affine: y = (f(x) - mean) * (1 / std);
* the backward constant E[f'(X)^2].

Each comes from the engine's exact value of record (certified where it applies, else the closed form
or quadrature), and
sits beside the published value (momentcalc/data/published_gains.json,
cited by repository, file and commit) with the relative difference
(published - exact) / exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from . import catalog
from ._lazy import lazy_module
from .errors import MomentcalcError

engine = lazy_module("momentcalc.engine")  # numba and scipy: only when gains are computed

DATA = Path(__file__).parent / "data" / "published_gains.json"


@dataclass(frozen=True)
class Published:
    value: float
    rel_diff: float  # (published - exact) / exact
    source: str  # repository:file@commit


@dataclass(frozen=True)
class GainRow:
    spec: str
    mean: float
    std: float
    second_moment: float  # E[f(X)^2]
    gain: float  # 1 / sqrt(E[f(X)^2])
    gamma: float  # 1 / std
    normprop_shift: float  # subtract this ...
    normprop_scale: float  # ... then multiply by this
    grad_sq: float | None
    method: str
    pytorch: Published | None
    nfnets: Published | None

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def published() -> dict:
    """The cited published constants, as stored."""
    return json.loads(DATA.read_text())


def _source(entry: dict) -> str:
    return f"{entry['repository']}:{entry['file']}@{entry['commit'][:12]}"


def _published_by_spec(key: str) -> dict[str, tuple[float, str]]:
    entry = published()["sources"][key]
    return {v["spec"]: (float(v["value"]), _source(entry)) for v in entry["values"].values()}


def default_specs() -> list[str]:
    """Every built-in activation with default parameters, plus the published variants (e.g. gelu(approximate=tanh))."""
    names = [op.name for op in catalog.all_ops() if op.kind == catalog.ELEMENTWISE and op.f is not None]
    extra = [s for key in ("pytorch", "nfnets") for s in _published_by_spec(key) if s not in names]
    return sorted(names) + sorted(set(extra))


EXACT = ("certified", "closed", "quadrature")  # each where it applies; the engine picks the record per quantity


def gain_row(spec: str) -> GainRow:
    r = engine.estimate(spec, methods=EXACT)
    mean, std, grad_sq = r.mean, r.std, r.grad_sq
    second = std * std + mean * mean
    if not std > 0:  # a constant output (expr(x*0), hardtanh far from its slope ...) has no scale to undo
        raise MomentcalcError(f"{spec!r} puts out a constant at N(0, 1) (std {std!r}): it has no gain or gamma")
    gain, gamma = 1.0 / math.sqrt(second), 1.0 / std
    pyt, nf = _published_by_spec("pytorch").get(spec), _published_by_spec("nfnets").get(spec)
    return GainRow(
        spec,
        mean,
        std,
        second,
        gain,
        gamma,
        mean,
        gamma,
        grad_sq,
        r.record.method,
        Published(pyt[0], (pyt[0] - gain) / gain, pyt[1]) if pyt else None,
        Published(nf[0], (nf[0] - gamma) / gamma, nf[1]) if nf else None,
    )


def gains(specs: list[str] | None = None) -> list[GainRow]:
    """One row per activation at N(0, 1); specs default to every built-in activation."""
    return [gain_row(s) for s in (specs or default_specs())]

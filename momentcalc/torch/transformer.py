"""A decoder-only transformer in three variants, and the RMS of every op's output and gradient per block at init.

    from momentcalc.torch.transformer import Config, measure
    profile = measure(Config(depth=24, width=256, heads=4, seq=128, batch=8), "exact")

Each block is pre-norm: causal multi-head attention, then a SwiGLU MLP (expansion 4), each a residual branch.
The variants differ only in their ops and initialization:
- "unit-scaling": unit-scaling 0.3.5's functional ops (an optional package), wired as its own MHSA, MLP and
  TransformerLayer are (a fused q, k, v linear of constraint "to_output_scale", separate value and gate linears
  and an output linear of constraint None, its unit-scaled rms_norm); unit-variance weights;
- "exact": momentcalc.torch.unit's ops, whose scales are exact (silu_glu, scaled_dot_product_attention per
  attended-key count), a plain RMS normalization without weight, the fused q, k, v and value-gate linears of
  constraint None, so that the gradients their outputs send back, each of unit scale, sum to unit scale; each
  attention is told the covariance across positions of its q, k, v and of its output's gradient that momentcalc
  propagates through the blocks (transformer_positions; Config.positions = "independent" tells it nothing);
- "standard": torch's ops, nn.Linear's default initialization (kaiming_uniform, a = sqrt(5)), RMSNorm with a
  weight of ones, attention with scale 1 / sqrt(d), x + branch(x).
The two unit-scaled variants weight their residual branches by u-muP's rule (Blake et al. 2024, appendix G, at
residual_mult = residual_attn_ratio = 1: the embedding weighs as much as all 2 * depth branches together, each
branch the same): branch i of L = 2 * depth gets tau_i = 1 / sqrt(L / 2 + i). No linear has a bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MomentcalcError
from ..settings import Progress, check_seed
from . import checks
from . import unit as U
from .positions import PositionCovariance
from .transformer_positions import predict

VARIANTS = ("unit-scaling", "exact", "standard")
# every tensor recorded in a block, in the order the block computes it; "stream" is the block's input
OPS = ("stream", "attn_norm", "q", "k", "v", "attention", "attn_out", "mid", "mlp_norm", "value", "gate", "glu")
OPS += ("mlp_out",)
EXPANSION = 4
DATA_SEED = 0x9E3779B9  # the input's and the injected gradient's generator: (DATA_SEED + seed) mod 2^63
POSITIONS = ("propagated", "independent")
VALUES_MAX = 2**26  # batch * seq * width * expansion: the largest activation one op may hold


@dataclass(frozen=True)
class Config:
    depth: int = 24
    width: int = 256
    heads: int = 4
    seq: int = 128
    batch: int = 8
    mult: float = 1.0  # the attention logits' mult (unit-scaling's), unit-scaled variants only
    positions: str = "propagated"  # exact variant: attention scales for the predicted position covariance, or
    # "independent" (the op's default: positions independent, as every unit attention assumes)

    def __post_init__(self):
        for name in ("depth", "width", "heads", "seq", "batch"):
            checks.whole(name, getattr(self, name), 1)
        if self.width % self.heads:
            raise MomentcalcError(f"width must be a multiple of heads, not {self.width} with {self.heads} heads")
        checks.real("mult", self.mult)
        if self.positions not in POSITIONS:
            raise MomentcalcError(f"positions is one of {', '.join(POSITIONS)}, not {self.positions!r}")
        if self.batch * self.seq * self.width * EXPANSION > VALUES_MAX:
            raise MomentcalcError(f"batch * seq * width * {EXPANSION} must be at most {VALUES_MAX:.3g}")

    @property
    def head_size(self) -> int:
        return self.width // self.heads


def residual_taus(depth: int) -> list[float]:
    """u-muP's tau for each of the 2 * depth residual branches (attention, MLP, attention, ...)."""
    layers = 2 * depth
    return [1.0 / math.sqrt(layers / 2 + i) for i in range(layers)]


def unit_scaling_functional():
    """unit-scaling's functional module, or one line saying it is not installed."""
    try:
        import unit_scaling.functional as US
    except ImportError:
        raise MomentcalcError(
            "the variant 'unit-scaling' needs the package unit-scaling: pip install unit-scaling==0.3.5"
        ) from None
    return US


class Recorder:
    """RMS of each tapped tensor and of the gradient that reaches it, by (block, op)."""

    def __init__(self):
        self.rms: dict[tuple[int, str], float] = {}
        self.grad_rms: dict[tuple[int, str], float] = {}

    def tap(self, block: int, op: str, x: Tensor) -> Tensor:
        self.rms[(block, op)] = _rms(x)
        if x.requires_grad:
            x.register_hook(lambda g: self._keep(block, op, g))
        return x

    def _keep(self, block: int, op: str, g: Tensor) -> None:
        self.grad_rms.setdefault((block, op), _rms(g))


def _rms(x: Tensor) -> float:
    return x.detach().double().pow(2).mean().sqrt().item()


class Block(nn.Module):
    """Pre-norm attention and SwiGLU MLP branches, the ops those of one variant."""

    def __init__(
        self,
        config: Config,
        variant: str,
        index: int,
        taus: tuple[float, float] = (1.0, 1.0),
        positions: PositionCovariance | None = None,
    ):
        super().__init__()
        self.positions = positions  # exact variant: what the attention is told of its positions
        w, e = config.width, EXPANSION * config.width
        self.config, self.variant, self.index, self.taus = config, variant, index, taus
        shapes = {"qkv": (3 * w, w), "attn_out": (w, w), "mlp_in": (2 * e, w), "mlp_out": (w, e)}
        self.weights = nn.ParameterDict({name: nn.Parameter(torch.empty(shape)) for name, shape in shapes.items()})
        if variant == "standard":
            self.norm_weights = nn.ParameterDict({n: nn.Parameter(torch.ones(w)) for n in ("attn", "mlp")})
        self.recorder: Recorder | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight in self.weights.values():
            if self.variant == "standard":
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's default
            else:
                nn.init.normal_(weight)  # unit scaling: unit-variance weights, the scale is in the op

    def _tap(self, op: str, x: Tensor) -> Tensor:
        return x if self.recorder is None else self.recorder.tap(self.index, op, x)

    def forward(self, x: Tensor) -> Tensor:
        x = self._tap("stream", x)
        x = self._residual(x, self._attention, 0)
        x = self._tap("mid", x)
        return self._residual(x, self._mlp, 1)

    def _residual(self, x: Tensor, branch, which: int) -> Tensor:
        if self.variant == "standard":
            return x + branch(x)
        ops, tau = _ops(self.variant), self.taus[which]
        residual, skip = ops.residual_split(x, tau)
        return ops.residual_add(branch(residual), skip, tau)

    def _norm(self, x: Tensor, name: str) -> Tensor:
        shape = (self.config.width,)
        if self.variant == "standard":
            return F.rms_norm(x, shape, self.norm_weights[name])
        if self.variant == "unit-scaling":
            return unit_scaling_functional().rms_norm(x, shape)
        return F.rms_norm(x, shape)  # plain: unit RMS per position, nothing to learn

    def _linear(self, x: Tensor, name: str, constraint: str | None = None, weight: Tensor | None = None) -> Tensor:
        weight = self.weights[name] if weight is None else weight
        if self.variant == "standard":
            return F.linear(x, weight)
        return _ops(self.variant).linear(x, weight, None, constraint)

    def _attention(self, x: Tensor) -> Tensor:
        h = self._tap("attn_norm", self._norm(x, "attn"))
        qkv_constraint = "to_output_scale" if self.variant == "unit-scaling" else None  # as MHSA; see the docstring
        qkv = self._linear(h, "qkv", qkv_constraint)
        b, s, _ = qkv.shape
        q, k, v = qkv.view(b, s, 3, self.config.heads, self.config.head_size).permute(2, 0, 3, 1, 4)
        q, k, v = self._tap("q", q), self._tap("k", k), self._tap("v", v)
        if self.variant == "standard":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = self._unit_attention(q, k, v)
        a = self._tap("attention", a).transpose(1, 2).reshape(b, s, self.config.width)
        constraint = None if self.variant == "exact" else "to_output_scale"  # square: the two agree
        return self._tap("attn_out", self._linear(a, "attn_out", constraint))

    def _unit_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mult = self.config.mult
        if self.variant == "unit-scaling":
            return unit_scaling_functional().scaled_dot_product_attention(q, k, v, is_causal=True, mult=mult)
        return U.scaled_dot_product_attention(q, k, v, is_causal=True, mult=mult, position_covariance=self.positions)

    def _mlp(self, x: Tensor) -> Tensor:
        h = self._tap("mlp_norm", self._norm(x, "mlp"))
        if self.variant == "unit-scaling":  # MLP's two linears, each of constraint None
            value_weight, gate_weight = self.weights["mlp_in"].chunk(2)
            value, gate = self._linear(h, "", None, value_weight), self._linear(h, "", None, gate_weight)
        else:
            value, gate = self._linear(h, "mlp_in").chunk(2, dim=-1)
        value, gate = self._tap("value", value), self._tap("gate", gate)
        if self.variant == "standard":
            z = value * F.silu(gate)
        else:
            z = _ops(self.variant).silu_glu(value, gate)
        return self._tap("mlp_out", self._linear(self._tap("glu", z), "mlp_out"))


def _ops(variant: str):
    return unit_scaling_functional() if variant == "unit-scaling" else U


class Stack(nn.Module):
    """depth blocks on a (batch, seq, width) stream; no embedding or readout (measure feeds N(0, 1) in)."""

    def __init__(self, config: Config, variant: str):
        super().__init__()
        if variant not in VARIANTS:
            raise MomentcalcError(f"unknown variant {variant!r}; use {', '.join(VARIANTS)}")
        if variant == "unit-scaling":
            unit_scaling_functional()
        taus = residual_taus(config.depth)
        told = [None] * config.depth
        if variant == "exact" and config.positions == "propagated":
            told = predict(config, taus).attention
        self.blocks = nn.ModuleList(
            Block(config, variant, i, (taus[2 * i], taus[2 * i + 1]), told[i]) for i in range(config.depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def record(self, recorder: Recorder | None) -> None:
        for block in self.blocks:
            block.recorder = recorder


@dataclass(frozen=True)
class Profile:
    """One variant at init: per block, each op's output RMS and the RMS of the gradient reaching it."""

    variant: str
    config: Config
    rms: dict[str, list[float]] = field(default_factory=dict)  # op -> one value per block
    grad_rms: dict[str, list[float]] = field(default_factory=dict)
    output_rms: float = math.nan  # the last block's output

    def to_dict(self) -> dict:
        return {"variant": self.variant, "rms": self.rms, "grad_rms": self.grad_rms, "output_rms": self.output_rms}


def measure(config: Config, variant: str, seed: int = 0, progress: Progress | None = None) -> Profile:
    """Build the variant with seeded weights, feed N(0, 1) input, inject an N(0, 1) gradient at the output."""
    check_seed(seed, most=2**63 - 1)
    tell = progress or (lambda done, total: None)
    if variant == "exact":
        warm_attention_scales(config, tell)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Stack(config, variant)
        gen = torch.Generator().manual_seed((DATA_SEED + seed) % 2**63)  # not seed: it would repeat the weights'
        shape = (config.batch, config.seq, config.width)
        x = torch.randn(shape, generator=gen).requires_grad_(True)
        recorder = Recorder()
        model.record(recorder)
        out = model(x)
        tell(1, 2)
        out.backward(torch.randn(out.shape, generator=gen))
        tell(2, 2)
    blocks = range(config.depth)
    return Profile(
        variant,
        config,
        {op: [recorder.rms[(b, op)] for b in blocks] for op in OPS},
        {op: [recorder.grad_rms.get((b, op), math.nan) for b in blocks] for op in OPS},
        _rms(out),
    )


def warm_attention_scales(config: Config, tell: Progress) -> None:
    """Compute the causal attention's scales for 1..seq attended keys up front (seconds each), telling progress."""
    from .unit_attention import softmax_law, temperature

    t = temperature(config.head_size, config.mult)
    for n in range(1, config.seq + 1):
        softmax_law(n, t)
        tell(n, config.seq + 2)


def predicted_grad_rms(config: Config, op: str) -> float:
    """momentcalc's prediction of the gradient RMS at op in the exact variant for a unit gradient at the output.

    Every exact op sends back a unit-scale gradient to each input, and the residual pair keeps the stream's at
    unit scale; the one exception is the query: row 0 attends to one key and gets no gradient, so its RMS over
    seq rows is sqrt((seq - 1) / seq), and the attention's normalized input, whose gradient averages the
    variances of q's, k's and v's, gets sqrt((2 + (seq - 1) / seq) / 3). With positions = "independent" this
    holds at the first block only: after it the stream's positions are correlated by the causal averaging,
    which the attention's default scales do not see.
    """
    rows_with_grad = (config.seq - 1) / config.seq
    if op == "q":
        return math.sqrt(rows_with_grad)
    if op == "attn_norm":  # the fused q, k, v linear averages the three gradients' variances
        return math.sqrt((2 + rows_with_grad) / 3)
    return 1.0


def deviations(profile: Profile) -> list[tuple[str, float, str, float]]:
    """Per block: (op whose output RMS is farthest from 1, that distance, op whose gradient RMS is farthest
    from predicted_grad_rms, that relative distance); gradients that did not arrive are left out."""
    rows = []
    for b in range(profile.config.depth):
        out = max(OPS, key=lambda op: abs(profile.rms[op][b] - 1))
        grads = {
            op: abs(g / predicted_grad_rms(profile.config, op) - 1)
            for op in OPS
            if math.isfinite(g := profile.grad_rms[op][b])
        }
        grad = max(grads, key=grads.get) if grads else "-"
        rows.append((out, abs(profile.rms[out][b] - 1), grad, grads.get(grad, math.nan)))
    return rows


def available_variants() -> tuple[str, ...]:
    """Every variant whose ops are installed (unit-scaling's is optional)."""
    try:
        unit_scaling_functional()
    except MomentcalcError:
        return tuple(v for v in VARIANTS if v != "unit-scaling")
    return VARIANTS

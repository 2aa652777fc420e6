"""momentcalc's prediction of the exact transformer's covariance across positions, block by block, at init.

    from momentcalc.torch.transformer_positions import predict
    prediction = predict(config)  # prediction.attention[b]: what block b's attention is told

The exact variant (momentcalc.torch.transformer) gives each block's attention the covariance of its q, k, v
across positions and of its output's gradient, so that its scales see the correlation the causal averaging
of earlier blocks put into the stream (positions.py has the rules). Forward, from an N(0, 1) input
independent across positions (C = I), per block:
    R = corr(C)                                        the RMS norm; q, k, v each of covariance R
    O = corr(attention_forward(R))                     the unit-scaled attention output
    C_mid = (tau_a^2 O + C) / (1 + tau_a^2)            residual_add of independent branches
    C' = (tau_m^2 gated_forward(corr(C_mid)) + C_mid) / (1 + tau_m^2)
Backward, from an N(0, 1) output gradient (G = I), through the same ops in reverse: the gated unit's two
unit-scaled gradients average through the fused input linear, the RMS norm divides by each position's RMS, the
unit-scaled q, k, v gradients average through the fused q, k, v linear, and residual_split weighs branch and
skip gradients tau^2 : 1. Every linear of unit-variance weights keeps the covariance (the weights are
independent of everything else, so branch and skip are uncorrelated).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import positions as P
from .unit_attention import lookup, temperature


@dataclass(frozen=True)
class Prediction:
    """Per block: the stream's covariance entering it, after its attention branch, and the attention's input."""

    stream: list[Tensor]
    mid: list[Tensor]
    attention: list[P.PositionCovariance]
    stream_grad: list[Tensor]  # the gradient's covariance reaching each block's input


def _unit(cov: Tensor) -> Tensor:
    """The covariance of a unit-scaled tensor: each position divided by its std (none where it is 0)."""
    d = cov.diagonal()
    s = torch.where(d > 0, d, torch.ones_like(d)).rsqrt()
    return cov * s.unsqueeze(-1) * s.unsqueeze(-2)


def _mix(branch: Tensor, skip: Tensor, tau: float) -> Tensor:
    return (tau**2 * branch + skip) / (1.0 + tau**2)


def _through_norm(grad: Tensor, cov: Tensor) -> Tensor:
    """An RMS norm's backward divides position i's gradient by its input's RMS, sqrt(C_ii)."""
    s = cov.diagonal().rsqrt()
    return grad * s.unsqueeze(-1) * s.unsqueeze(-2)


def predict(config, taus: list[float]) -> Prediction:
    """The exact variant's covariances for config (transformer.Config) and its 2 * depth residual taus."""
    seq = config.seq
    allowed = P.causal(seq)
    t = temperature(config.head_size, config.mult)
    m2, grad_sq = lookup(allowed.sum(-1), t)
    cov = torch.eye(seq, dtype=torch.float64)
    streams, mids, values = [], [], []
    for b in range(config.depth):
        streams.append(cov)
        r = P.correlation(cov)
        values.append(r)
        mid = _mix(P.correlation(P.attention_forward(r, allowed, m2)), cov, taus[2 * b])
        mids.append(mid)
        cov = _mix(P.gated_forward(mid), mid, taus[2 * b + 1])
    grad = torch.eye(seq, dtype=torch.float64)
    attention, stream_grads = [None] * config.depth, [None] * config.depth
    for b in reversed(range(config.depth)):
        value, gate = P.gated_backward(mids[b], grad)
        grad_mid = _mix(_through_norm((value + gate) / 2, mids[b]), grad, taus[2 * b + 1])
        attention[b] = P.PositionCovariance(values[b], grad_mid, config.width)
        found = P.attention_covariances(attention[b], allowed, m2, grad_sq, t, 1.0)
        qkv = sum(_unit(found[name]) for name in ("query", "key", "value")) / 3
        grad = _mix(_through_norm(qkv, streams[b]), grad_mid, taus[2 * b])
        stream_grads[b] = grad
    return Prediction(streams, mids, attention, stream_grads)

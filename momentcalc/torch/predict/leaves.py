"""What torch.fx keeps whole while predict() traces a model, and the rules of those leaves.

- Every torch.autograd.Function: fx would trace into its forward and lose its backward (a unit-scaled op's
  separate backward scale), so `Fn.apply(...)` becomes one node whose target runs Fn.apply. momentcalc's scale
  primitives (scale_fwd, scale_bwd, the attention's per-row scale) have a rule: the input times the forward scale,
  the gradient times the backward scale squared. Any other Function is reported as unmodeled.
- momentcalc.torch.unit's ops that cannot be traced or whose traced form would mislead (scaled_dot_product_attention
  computes its scales from shapes; silu and the gated units multiply a value by a function of itself): one node
  each, modeled as the plain op times its forward scale, each input's gradient times its backward scale.
"""

from __future__ import annotations

import contextlib
from functools import cache

import torch
from torch import fx

from .. import unit as U
from .. import unit_attention, unit_base, unit_scales
from . import attention, ops
from .law import Law
from .ops import Out, Unmodeled

_FUNCTION = torch.autograd.function.Function
_SCALES = (unit_base._ScaleGrad, unit_attention._Scale)  # (x, forward, backward) -> x * forward; grad * backward
_LEAVES = ("scaled_dot_product_attention", "silu_glu", "sigmoid_glu", "gelu_glu", "relu_glu", "silu", "softmax")
_GATES = {"silu_glu": "silu", "sigmoid_glu": "sigmoid", "gelu_glu": "gelu", "relu_glu": "relu"}


def _proxy_in(args, kwargs) -> fx.Proxy | None:
    found = []
    fx.node.map_aggregate((args, kwargs), lambda a: found.append(a) if isinstance(a, fx.Proxy) else None)
    return found[0] if found else None


def _leaf(fn):
    def call(*args, **kwargs):
        proxy = _proxy_in(args, kwargs)
        if proxy is None:
            return fn(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", fn, args, kwargs)

    return call


@cache
def applier(cls):
    """A function that runs cls.apply: the target of its fx node (the generated code calls it by this object)."""

    def run(*args, **kwargs):
        return cls.apply(*args, **kwargs)

    run.__name__ = run.__qualname__ = f"apply_{cls.__name__}"
    run.autograd_function = cls
    return run


@contextlib.contextmanager
def patched():
    """While tracing: Function.apply and momentcalc.torch.unit's leaf ops emit one node each."""
    original_apply = _FUNCTION.__dict__["apply"]

    def apply(cls, *args, **kwargs):
        proxy = _proxy_in(args, kwargs)
        if proxy is None:
            return original_apply.__get__(None, cls)(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", applier(cls), args, kwargs)

    originals = {name: getattr(U, name) for name in _LEAVES}
    _FUNCTION.apply = classmethod(apply)
    try:
        for name, fn in originals.items():
            setattr(U, name, _leaf(fn))
        yield
    finally:
        _FUNCTION.apply = original_apply
        for name, fn in originals.items():
            setattr(U, name, fn)


# ---- rules
def rule(target, args: list, kwargs: dict, shape):
    """The rule of a leaf node, or None where target is no leaf."""
    cls = getattr(target, "autograd_function", None)
    if cls is not None:
        if cls not in _SCALES:
            raise Unmodeled(f"a rule for the custom autograd function {cls.__name__}")
        return _scale(*args, **kwargs, shape=shape)
    for name in _LEAVES:
        if target is getattr(U, name, None) or target is _ORIGINALS.get(name):
            return _UNIT_RULES[name](args, kwargs, shape)
    return None


def _scale(x, forward, backward, shape) -> Out:
    if not isinstance(x, Law):
        raise Unmodeled("a rule for a scale of something that is not data")
    f2 = _mean_square(backward)
    if isinstance(forward, torch.Tensor) and forward.numel() > 1:
        out = ops.constant_times(x, forward.double(), shape)
        return Out(out.law, (f2,))
    factor = float(forward)
    return Out(x.scaled(factor), (f2,))


def _mean_square(scale) -> float:
    return float(scale.double().pow(2).mean()) if isinstance(scale, torch.Tensor) else float(scale) ** 2


def _unit_attention(args, kwargs, shape) -> Out:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "mult")
    given = dict(zip(names, args)) | kwargs
    q, k, v = given["query"], given["key"], given["value"]
    if not all(isinstance(x, Law) for x in (q, k, v)):
        raise Unmodeled("a rule for attention of a query, key or value that is not data")
    if given.get("position_covariance") is not None:  # its scales come from a covariance predict does not carry
        raise Unmodeled("a covariance across positions for attention told one (position_covariance)")
    mult, dropout = float(given.get("mult", 1.0)), float(given.get("dropout_p", 0.0) or 0.0)
    mask, causal = given.get("attn_mask"), bool(given.get("is_causal", False))
    allowed = attention._allowed(q, k, mask, causal)
    d, d_v = int(q.shape[-1]), int(v.shape[-1])
    scales = unit_attention.attention_scales(allowed, d, d_v, mult, dropout)
    pooled = {n: s.reshape(-1, s.shape[-2]).pow(2).mean(0).sqrt() for n, s in scales.items()}
    plain = {"query": q, "key": k, "value": v, "attn_mask": mask, "dropout_p": dropout, "is_causal": causal}
    backs = (pooled["query"], pooled["key"], pooled["value"])
    out = attention.scaled_dot_product_attention([], plain | {"scale": mult / d}, shape, pooled["output"], backs)
    return Out(out.law, out.back, out.note + "; momentcalc's unit scales per row")


def _unit_glu(name: str):
    def rule_of(args, kwargs, shape) -> Out:
        given = dict(zip(("input", "gate", "mult"), args)) | kwargs
        value, gate = given["input"], given["gate"]
        if not isinstance(value, Law) or not isinstance(gate, Law):
            raise Unmodeled(f"a rule for {name} of inputs that are not data")
        mult = float(given.get("mult", 1.0)) if name == "silu_glu" else 1.0
        scales = unit_scales.silu_glu(mult) if name == "silu_glu" else unit_scales.gated(_GATES[name])
        h = _activation(gate, _GATES[name], mult, shape)
        product = ops.multiply(value, h.law, shape)
        value_scale, gate_scale = scales.backward
        back = (value_scale**2 * product.back[0], gate_scale**2 * product.back[1] * h.back[0])
        return Out(product.law.scaled(scales.forward), back, h.note)

    return rule_of


def _activation(law: Law, spec: str, mult: float, shape) -> Out:
    """f(mult x) / mult (momentcalc's silu(mult x) convention); its gradient in x is f'(mult x)."""
    fn = getattr(torch.nn.functional, spec)
    h = ops.activation(law.scaled(mult), spec, fn, shape)
    return Out(h.law.scaled(1.0 / mult), h.back, h.note)


def _unit_silu(args, kwargs, shape) -> Out:
    given = dict(zip(("input", "mult", "constraint"), args)) | kwargs
    mult = float(given.get("mult", 1.0))
    scales = unit_scales.silu(mult)
    constraint = given.get("constraint", "to_output_scale")
    forward, backward = unit_base.constrain(constraint, scales.forward, *scales.backward)
    h = _activation(given["input"], "silu", mult, shape)
    return Out(h.law.scaled(forward), (backward**2 * h.back[0],), h.note)


def _unit_softmax(args, kwargs, shape) -> Out:
    given = dict(zip(("input", "dim", "dtype", "constraint", "mult"), args)) | kwargs
    law, dim, mult = given["input"], int(given["dim"]), float(given.get("mult", 1.0))
    if not isinstance(law, Law):
        raise Unmodeled("a rule for softmax of something that is not data")
    scales = unit_scales.softmax(int(shape[dim]), mult)
    constraint = given.get("constraint", "to_output_scale")
    forward, backward = unit_base.constrain(constraint, scales.forward, *scales.backward)
    plain = attention.softmax(law, dim, shape, mult)
    return Out(plain.law.scaled(forward), (backward**2 * plain.back[0],), plain.note)


_ORIGINALS = {name: getattr(U, name) for name in _LEAVES}
_UNIT_RULES = {"scaled_dot_product_attention": _unit_attention, "silu": _unit_silu, "softmax": _unit_softmax}
_UNIT_RULES |= {name: _unit_glu(name) for name in _GATES}

"""Ops that only move values around (view, reshape, flatten, permute, transpose, squeeze, indexing, chunk):
the same op applied to a law's per-element mean and variance maps (batch 1), and the channels found again."""

from __future__ import annotations

import torch

from .law import Law
from .ops import Out, Unmodeled, from_maps, maps


def rearranged(law: Law, fn, shape, axis: int | None = None, keep_acf: bool = False) -> Out:
    """fn applied to the maps; the output's channels on axis (default: 1 for maps, the last for vectors and
    sequences of features)."""
    if shape[0] != law.shape[0]:
        raise Unmodeled("a rule for an op that changes the batch axis")
    mean_map, var_map = maps(law)
    try:
        mean, var = fn(mean_map), fn(var_map)
    except (RuntimeError, ValueError, IndexError, TypeError) as why:
        raise Unmodeled(f"a rule for this rearrangement ({str(why).splitlines()[0]})") from None
    if tuple(mean.shape[1:]) != tuple(shape[1:]):
        raise Unmodeled("a rule for a rearrangement that does not keep the batch first")
    if axis is None:
        axis = law.axis if len(shape) == len(law.shape) else (1 if len(shape) >= 4 else -1)
    acf = law.acf if keep_acf else None
    return Out(from_maps(mean, var, shape, axis, acf), (1.0,))


def call(law, target, rest, kwargs, method: bool, shape) -> Out:
    if not isinstance(law, Law):
        raise Unmodeled("a data tensor as the first argument")
    name = target if method else target.__name__
    if name in ("view", "reshape"):
        return rearranged(law, lambda m: m.reshape((1,) + tuple(shape[1:])), shape)
    if name == "contiguous":
        return Out(law, (1.0,))
    if name == "permute":
        dims = tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else tuple(rest)
        dims = dims or tuple(kwargs.get("dims", ()))
        ndim = len(law.shape)
        axis = [d % ndim for d in dims].index(law.axis % ndim)
        return rearranged(law, lambda m: m.permute(*dims), shape, axis=axis if axis != ndim - 1 else -1)
    if name == "transpose":
        a, b = (d % len(law.shape) for d in rest[:2])
        here = law.axis % len(law.shape)
        axis = b if here == a else a if here == b else here
        axis = -1 if axis == len(law.shape) - 1 else axis
        return rearranged(law, lambda m: m.transpose(a, b), shape, axis=axis)
    fn = getattr(torch.Tensor, name)
    return rearranged(law, lambda m: fn(m, *rest, **kwargs), shape)


def getitem(law: Law, index, shape) -> Out:
    """Indexing that keeps the batch axis whole: x[:, :c], x[..., a:b]."""
    items = index if isinstance(index, tuple) else (index,)
    if not items or not (items[0] == slice(None) or items[0] is Ellipsis):
        raise Unmodeled("a rule for indexing that does not keep the batch axis whole")
    return rearranged(law, lambda m: m[index], shape, axis=law.axis)


def chunks(law: Law, target, rest, kwargs, method: bool, outputs) -> Out:
    """chunk / split: a tuple of laws, one per piece."""
    fn = getattr(torch.Tensor, target if method else target.__name__)
    mean_map, var_map = maps(law)
    means, variances = fn(mean_map, *rest, **kwargs), fn(var_map, *rest, **kwargs)
    laws = tuple(from_maps(m, v, tuple(o.shape), law.axis) for m, v, o in zip(means, variances, outputs))
    return Out(laws, (1.0,))

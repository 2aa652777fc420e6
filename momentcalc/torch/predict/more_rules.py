"""Rules dispatch.py looks up before its own: attention (softmax, products of two data tensors,
scaled_dot_product_attention), the functional norms, a permute that moves the batch axis (a fused q, k, v split),
and the leaves of leaves.py. None where none applies."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from . import attention, leaves, ops
from .law import Law
from .ops import Out, Unmodeled

_SOFTMAX = {F.softmax, torch.softmax}
_MATMUL = {torch.matmul, operator.matmul, torch.bmm}


def function_rule(target, args: list, kwargs: dict, out, method: bool) -> Out | None:
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    x = args[0] if args else kwargs.get("input")
    if not method:
        found = leaves.rule(target, args, kwargs, shape)
        if found is not None:
            return found
    name = target if method else None
    if (target in _SOFTMAX or name == "softmax") and isinstance(x, Law):
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is None:
            raise Unmodeled("a rule for softmax without a dim")
        return attention.softmax(x, int(dim), shape)
    if target in _MATMUL or name in ("matmul", "bmm", "__matmul__"):
        b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
        if isinstance(x, Law) and isinstance(b, Law):
            return attention.matmul(x, b, shape)
        return None
    if target is F.scaled_dot_product_attention:
        return attention.scaled_dot_product_attention(args, kwargs, shape)
    if target in (F.rms_norm, F.layer_norm) and isinstance(x, Law):
        return _norm(target, args, kwargs, out, shape)
    if name == "permute" and isinstance(x, Law):
        return _batch_moved(x, args[1:], out)
    return None


def _norm(target, args, kwargs, out, shape) -> Out:
    names = ("input", "normalized_shape", "weight", "bias", "eps") if target is F.layer_norm else None
    names = names or ("input", "normalized_shape", "weight", "eps")
    given = dict(zip(names, args)) | kwargs
    normalized = given["normalized_shape"]
    if len(tuple(normalized) if isinstance(normalized, (tuple, list)) else (normalized,)) != 1:
        raise Unmodeled("a rule for a norm over more than the last axis")
    eps = given.get("eps")
    if eps is None:
        eps = 1e-5 if target is F.layer_norm else torch.finfo(out.dtype).eps
    return ops.feature_norm(given["input"], given.get("weight"), given.get("bias"), eps, target is F.layer_norm, shape)


def _batch_moved(law: Law, rest, out) -> Out | None:
    """permute(k, 0, ...): the batch axis to second place, axis k first (q, k, v of a fused linear, unpacked
    next): one law per index along the new first axis, each batch first, channels on the last axis."""
    dims = tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else tuple(rest)
    ndim = len(law.shape)
    dims = tuple(d % ndim for d in dims)
    if not dims or dims[0] == 0 or len(dims) < 2 or dims[1] != 0 or dims[-1] != ndim - 1:
        return None
    mean_map, var_map = (m.permute(*dims) for m in ops.maps(law))
    pieces = tuple(
        ops.from_maps(mean_map[i : i + 1, 0], var_map[i : i + 1, 0], tuple(out.shape[1:]), -1)
        for i in range(mean_map.shape[0])
    )
    return Out(pieces, (1.0,), "split along the new first axis")

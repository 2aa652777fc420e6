"""Which rule of ops.py models an fx node: modules by type, functions and tensor methods by target. A node with
no rule raises Unmodeled saying what it is."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from . import more_rules, ops, shapes
from .law import Law
from .ops import Unmodeled

# module type -> (spec, torch function) from the module's own parameters
ACTIVATION_MODULES = {
    nn.ReLU: lambda m: "relu",
    nn.GELU: lambda m: "gelu" if m.approximate == "none" else "gelu(approximate=tanh)",
    nn.SiLU: lambda m: "silu",
    nn.Tanh: lambda m: "tanh",
    nn.Sigmoid: lambda m: "sigmoid",
    nn.Mish: lambda m: "mish",
    nn.ELU: lambda m: f"elu(alpha={float(m.alpha)!r})",
    nn.CELU: lambda m: f"celu(alpha={float(m.alpha)!r})",
    nn.SELU: lambda m: "selu",
    nn.LeakyReLU: lambda m: f"leaky_relu(slope={float(m.negative_slope)!r})",
    nn.Softplus: lambda m: f"softplus(beta={float(m.beta)!r})",
    nn.Hardswish: lambda m: "hardswish",
    nn.Hardsigmoid: lambda m: "hardsigmoid",
    nn.Hardtanh: lambda m: f"hardtanh(min_val={float(m.min_val)!r},max_val={float(m.max_val)!r})",
    nn.ReLU6: lambda m: "relu6",
    nn.Softsign: lambda m: "softsign",
    nn.LogSigmoid: lambda m: "log_sigmoid",
}

# function or method name -> spec from its arguments after the input
ACTIVATION_FUNCTIONS = {
    "relu": lambda a, k: "relu",
    "gelu": lambda a, k: "gelu" if k.get("approximate", "none") == "none" else "gelu(approximate=tanh)",
    "silu": lambda a, k: "silu",
    "tanh": lambda a, k: "tanh",
    "sigmoid": lambda a, k: "sigmoid",
    "mish": lambda a, k: "mish",
    "elu": lambda a, k: f"elu(alpha={float(a[0] if a else k.get('alpha', 1.0))!r})",
    "selu": lambda a, k: "selu",
    "leaky_relu": lambda a, k: f"leaky_relu(slope={float(a[0] if a else k.get('negative_slope', 0.01))!r})",
    "softplus": lambda a, k: f"softplus(beta={float(a[0] if a else k.get('beta', 1.0))!r})",
    "hardswish": lambda a, k: "hardswish",
    "hardsigmoid": lambda a, k: "hardsigmoid",
    "relu6": lambda a, k: "relu6",
    "softsign": lambda a, k: "softsign",
    "logsigmoid": lambda a, k: "log_sigmoid",
}

_SHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze", "permute", "transpose"}
_SHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose}
_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
_MUL = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}


def module_rule(module: nn.Module, law: Law, out: torch.Tensor) -> ops.Out:
    shape = tuple(out.shape)
    for kind, spec_of in ACTIVATION_MODULES.items():
        if type(module) is kind:
            return ops.activation(law, spec_of(module), module, shape)
    if isinstance(module, nn.Linear):
        return ops.linear(law, module.weight, module.bias, shape)
    if type(module).forward in (nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward):
        run = lambda x, w, b: module._conv_forward(x, w, b)  # noqa: E731
        return ops.conv(law, module.weight, module.bias, run, module.groups, module.stride, module.dilation, shape)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return ops.avgpool(law, module.kernel_size, module.stride, module.padding, shape)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return ops.maxpool(law, module.kernel_size, module.stride, shape)
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return _adaptive(law, shape)
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
        return ops.dropout(law, module.p, module.training)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        use_batch = module.training or module.running_mean is None
        return ops.batchnorm(
            law, module.weight, module.bias, module.running_mean, module.running_var, module.eps, use_batch
        )
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        return ops.feature_norm(law, module.weight, module.bias, module.eps, True, shape)
    if isinstance(module, getattr(nn, "RMSNorm", ())) and len(module.normalized_shape) == 1:
        eps = module.eps if module.eps is not None else torch.finfo(out.dtype).eps
        return ops.feature_norm(law, module.weight, None, eps, False, shape)
    if isinstance(module, nn.GroupNorm):
        return ops.groupnorm(law, module.num_groups, module.weight, module.bias, module.eps)
    if isinstance(module, nn.Identity):
        return ops.Out(law, (1.0,))  # the law whole: its correlation, borders and chain (rearranged keeps none)
    if isinstance(module, (nn.Flatten, nn.Unflatten)):
        return shapes.rearranged(law, lambda x: module(x), shape)
    raise Unmodeled(f"a rule for the module {type(module).__name__}")


def _adaptive(law: Law, shape) -> ops.Out:
    spatial_in, spatial_out = law.shape[2:], shape[2:]
    if all(s == 1 for s in spatial_out):
        return ops.global_average(law, shape)
    if all(i % o == 0 for i, o in zip(spatial_in, spatial_out)):
        k = tuple(i // o for i, o in zip(spatial_in, spatial_out))
        return ops.avgpool(law, k, k, 0, shape)
    raise Unmodeled("an adaptive pool whose output side divides its input side")


def function_rule(target, args: list, kwargs: dict, out, method: bool) -> ops.Out:
    """A call_function (method=False) or call_method node; args hold Laws where the argument is data."""
    found = more_rules.function_rule(target, args, kwargs, out, method)  # attention, leaves: checked first
    if found is not None:
        return found
    name = target if method else getattr(target, "__name__", str(target))
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    x = args[0] if args else None
    if name in ACTIVATION_FUNCTIONS and isinstance(x, Law) and (method or _is_torch(target)):
        fn = getattr(torch.Tensor, name, None) if method else target
        if not method and target in (F.leaky_relu, F.elu, F.softplus):
            fn = lambda t, f=target, a=tuple(args[1:]), k=dict(kwargs): f(t, *a, **k)  # noqa: E731
        return ops.activation(x, ACTIVATION_FUNCTIONS[name](args[1:], kwargs), fn, shape)
    if (method and name in ("chunk", "split")) or (not method and target in (torch.chunk, torch.split)):
        return shapes.chunks(x, target, args[1:], kwargs, method, out)
    if not method and target is operator.getitem and isinstance(x, tuple):
        return ops.Out(x[args[1]], (1.0 / len(x),))
    if (method and name in _SHAPE_METHODS) or (not method and target in _SHAPE_FUNCTIONS):
        return shapes.call(x, target, args[1:], kwargs, method, shape)
    if not method and target in (operator.getitem,) and isinstance(x, Law):
        return shapes.getitem(x, args[1], shape)
    if not method and target in _ADD | _MUL or method and name in ("add", "sub", "mul", "div"):
        return _arith(target if not method else name, args, kwargs, shape)
    if not method and target is torch.cat:
        laws = args[0]
        if not all(isinstance(v, Law) for v in laws):
            raise Unmodeled("torch.cat of data tensors only")
        return ops.concatenate(list(laws), kwargs.get("dim", args[1] if len(args) > 1 else 0), shape)
    if not method and target in (F.linear,):
        return ops.linear(x, args[1], args[2] if len(args) > 2 else kwargs.get("bias"), shape)
    if not method and target in (F.conv1d, F.conv2d, F.conv3d, torch.conv2d):
        return _functional_conv(target, args, kwargs, shape)
    if not method and target in (F.dropout, torch.dropout):
        p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
        training = args[2] if len(args) > 2 else kwargs.get("training", True)
        return ops.dropout(x, p, training)
    if not method and target in (F.adaptive_avg_pool2d, F.adaptive_avg_pool1d):
        return _adaptive(x, shape)
    if not method and target in (F.avg_pool2d,):
        k = args[1] if len(args) > 1 else kwargs["kernel_size"]
        s = (args[2] if len(args) > 2 else kwargs.get("stride")) or k
        return ops.avgpool(x, k, s, args[3] if len(args) > 3 else kwargs.get("padding", 0), shape)
    if not method and target in (F.max_pool2d,):
        k = args[1] if len(args) > 1 else kwargs["kernel_size"]
        return ops.maxpool(x, k, (args[2] if len(args) > 2 else kwargs.get("stride")) or k, shape)
    if method and name == "mean" and isinstance(x, Law):
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if x.axis % len(x.shape) == 1 and dims is not None and _spatial(dims, len(x.shape)):
            return ops.global_average(x, shape)
    raise Unmodeled(f"a rule for {'the method ' if method else ''}{name}")


def _is_torch(target) -> bool:
    return getattr(target, "__module__", "") in ("torch.nn.functional", "torch", "torch._C._nn") or target in (
        torch.relu,
        torch.tanh,
        torch.sigmoid,
    )


def _spatial(dims, ndim: int) -> bool:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return sorted(d % ndim for d in dims) == list(range(2, ndim))


def _functional_conv(target, args, kwargs, shape) -> ops.Out:
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    given = dict(zip(names, args)) | kwargs
    dims = given["weight"].dim() - 2
    stride, padding, dilation = (given.get(k, d) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1)))
    groups = given.get("groups", 1)
    fn = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    run = lambda x, w, b: fn(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    stride, dilation = ops._tuple(stride, dims), ops._tuple(dilation, dims)
    return ops.conv(given["input"], given["weight"], given.get("bias"), run, groups, stride, dilation, shape)


def _arith(op, args, kwargs, shape) -> ops.Out:
    a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
    subtract = op in (operator.sub, operator.isub, torch.sub, "sub")
    divide = op in (operator.truediv, operator.itruediv, torch.div, "div")
    additive = subtract or op in (operator.add, operator.iadd, torch.add, "add")
    alpha = float(kwargs.get("alpha", 1.0)) * (-1.0 if subtract else 1.0)
    if isinstance(a, Law) and isinstance(b, Law):
        if additive:
            return ops.add(a, b, alpha, shape)
        if divide:
            raise Unmodeled("a rule for the quotient of two data tensors")
        return ops.multiply(a, b, shape)
    if not isinstance(a, Law):  # number or constant first: only + and * commute
        if not additive and divide or subtract:
            raise Unmodeled("a rule for a constant minus or over a data tensor")
        a, b = b, a
    if isinstance(b, (int, float)):
        if additive:
            return ops.Out(a.scaled(1.0, alpha * b), (1.0,))
        factor = 1.0 / b if divide else float(b)
        return ops.Out(a.scaled(factor), (factor * factor,))
    if isinstance(b, torch.Tensor):
        if additive:
            return ops.constant_plus(a, alpha * b, shape)
        return ops.constant_times(a, 1.0 / b if divide else b, shape)
    raise Unmodeled(f"a rule for {op} with {type(b).__name__}")

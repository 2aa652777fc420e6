"""Parse spec text such as ``relu | normalize | maxpool(k=3)`` into an immutable tree.

``str()`` of a parsed spec is its canonical spelling, the key of every table:
parameters in declared order, defaults left out, no spaces inside a stage.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from . import catalog, exprlang
from .errors import MomentcalcError
from .settings import PIPELINE_MAX, WINDOW_MAX

_BOOL_WORDS = {"true": True, "false": False}


@dataclass(frozen=True)
class Op:
    name: str
    params: tuple[tuple[str, object], ...] = ()

    @property
    def info(self) -> catalog.OpInfo:
        return catalog.lookup(self.name)

    @property
    def kind(self) -> str:
        return self.info.kind

    def get(self, name: str, default=None):
        for key, value in self.params:
            if key == name:
                return value
        param = self.info.param(name)
        return param.default if param is not None and param.default is not None else default

    @property
    def window_size(self) -> int:
        """Values in one window: n, or k ** dims."""
        n = self.get("n")
        return n if n is not None else self.get("k") ** self.get("dims")

    def __str__(self) -> str:
        if not self.params:
            return self.name
        info = self.info
        args = ",".join(
            _format_value(v) if info.param(k) is not None and info.param(k).raw else f"{k}={_format_value(v)}"
            for k, v in self.params
        )
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Spec:
    ops: tuple[Op, ...]

    def __str__(self) -> str:
        return " | ".join(str(op) for op in self.ops)

    @property
    def prefix(self) -> Spec:
        """Everything before the last op."""
        return Spec(self.ops[:-1])

    @property
    def last(self) -> Op:
        return self.ops[-1]


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def canonical(text: str) -> str:
    return str(parse(text))


def parse(text: str) -> Spec:
    """Parse and validate spec text; raise MomentcalcError saying what is wrong."""
    if not isinstance(text, str):  # before the cache, which would raise TypeError for unhashable values
        raise MomentcalcError(
            f"a spec is text such as 'relu' or 'relu | maxpool(k=3)', got {type(text).__name__} {text!r:.60}"
        )
    return _parse_checked(text)


@lru_cache(maxsize=512)
def _parse_checked(text: str) -> Spec:
    spec = _parse(text)
    if len(spec.ops) > PIPELINE_MAX:
        raise MomentcalcError(
            f"a pipeline has at most {PIPELINE_MAX} stages, got {len(spec.ops)}; "
            "split it, or estimate a callable that runs the stages (quadrature and Monte Carlo take one)"
        )
    layers = [str(op) for op in spec.ops if op.kind == catalog.LAYER]
    if layers:
        raise MomentcalcError(
            f"{layers[0]!r} in {text!r} is a layer for `momentcalc backward`, not an op whose output moments "
            f"momentcalc computes; see `momentcalc list`"
        )
    return spec


def parse_layer(text: str) -> Op:
    """One layer for `momentcalc backward` (conv or a window op), by the same parser as every spec."""
    spec = _parse(text)
    if len(spec.ops) != 1 or spec.last.kind not in (catalog.LAYER, catalog.WINDOW):
        raise MomentcalcError(
            f"backward takes one layer, conv(...) or a pooling op such as maxpool(k=3,s=2), not {text!r}"
        )
    return spec.last


def _parse(text: str) -> Spec:
    if not isinstance(text, str) or not text.strip():
        raise MomentcalcError("empty spec: give an op such as 'relu' or a pipeline such as 'relu | maxpool(k=3)'")
    stages = _split_top_level(text, "|", text)
    ops = []
    for position, stage in enumerate(stages):
        if not stage.strip():
            raise MomentcalcError(
                f"malformed pipeline {text!r}: empty stage {position + 1}; join ops with a single '|'"
            )
        ops.append(_parse_stage(stage.strip(), text))
    _check_expr_pipeline(ops, text)
    if ops[0].kind == catalog.NORMALIZE:
        raise MomentcalcError(
            f"malformed pipeline {text!r}: 'normalize' needs something before it to normalize, e.g. 'relu | normalize'"
        )
    return Spec(tuple(ops))


def _check_expr_pipeline(ops: list[Op], whole: str) -> None:
    # Numpy-only ops (expr) run Monte Carlo in numpy, which handles elementwise ops, normalize and dropout only.
    numpy_only = [op for op in ops if op.info.vectorized is not None]
    if numpy_only:
        windows = [str(op) for op in ops if op.kind == catalog.WINDOW]
        if windows:
            raise MomentcalcError(
                f"{numpy_only[0].name}(...) can be combined only with elementwise ops, normalize and dropout, "
                f"not with {windows[0]!r} in {whole!r}"
            )


def _split_top_level(text: str, sep: str, whole: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise MomentcalcError(f"malformed spec {whole!r}: unbalanced ')'")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise MomentcalcError(f"malformed spec {whole!r}: unbalanced '('")
    parts.append(text[start:])
    return parts


def _parse_stage(stage: str, whole: str) -> Op:
    name, _, rest = stage.partition("(")
    name = name.strip()
    if rest and not rest.rstrip().endswith(")"):
        raise MomentcalcError(f"malformed stage {stage!r} in {whole!r}: expected name(key=value, ...)")
    info = catalog.lookup(name)
    if info is None:
        raise MomentcalcError(
            f"unknown op {name!r} in {whole!r}; {_suggest(name, [o.name for o in catalog.all_ops()])}"
        )
    args = rest.rstrip()[:-1] if rest else ""
    raw = next((p for p in info.params if p.raw), None)
    if raw is not None:
        given = {raw.name: _raw_value(raw, args, info.name)} if args.strip() else {}
    else:
        given = _parse_args(args, info, whole) if args.strip() else {}
    return Op(name, _resolve_params(info, given, whole))


def _parse_args(args: str, info: catalog.OpInfo, whole: str) -> dict[str, object]:
    given: dict[str, object] = {}
    for item in _split_top_level(args, ",", whole):
        key, eq, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or not key or not raw:
            raise MomentcalcError(f"malformed parameter {item.strip()!r} of {info.name} in {whole!r}: write key=value")
        param = info.param(key)
        if param is None:
            accepted = ", ".join(p.name for p in info.params) or "no parameters"
            raise MomentcalcError(f"unknown parameter {key!r} of {info.name}; it accepts {accepted}")
        if key in given:
            raise MomentcalcError(f"parameter {key!r} of {info.name} given twice in {whole!r}")
        given[key] = _convert(param, raw, info.name)
    return given


def _raw_value(param: catalog.Param, text: str, op_name: str) -> str:
    try:
        return exprlang.canonical(text)
    except MomentcalcError as why:
        raise MomentcalcError(f"bad {op_name}(...): {why}") from None


def _convert(param: catalog.Param, raw: str, op_name: str):
    shown = raw if len(raw) <= 40 else raw[:20] + "..." + raw[-10:]  # a 5000-digit value is not echoed whole
    what = f"{op_name}({param.name}={shown})"
    try:
        if param.kind is bool:
            value = _BOOL_WORDS[raw.lower()]
        elif param.kind is int:
            # Digits only: a float such as 1e200 or 3.0 is refused, never rounded (and never made a 200-digit int).
            if not raw.lstrip("+-").isdigit():
                raise ValueError
            value = int(raw)
        elif param.kind is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
        else:
            value = raw
    except (ValueError, KeyError, OverflowError):
        kind = {bool: "true or false", int: "an integer", float: "a finite number"}.get(param.kind, "text")
        kind = param.describe() if param.bounds is not None else kind
        raise MomentcalcError(f"bad value in {what}: expected {kind}") from None
    if param.choices and value not in param.choices:
        raise MomentcalcError(f"bad value in {what}: expected one of {', '.join(param.choices)}")
    if not param.check(value):
        raise MomentcalcError(f"out of range in {what}: expected {param.describe()}")
    if param.bounds is not None and not param.bounds[0] <= value <= param.bounds[1]:
        raise MomentcalcError(
            f"out of range in {what}: {param.name}"
            + (f" ({param.accepted})" if param.accepted else "")
            + f" must be within {param.range_text()} (the input domain)"
        )
    return value


def _resolve_params(info: catalog.OpInfo, given: dict, whole: str) -> tuple[tuple[str, object], ...]:
    if info.kind == catalog.WINDOW:
        _check_window(info, given, whole)
    for param in info.params:
        if param.raw and param.name not in given:
            raise MomentcalcError(
                f"{info.name} needs {param.accepted} inside its parentheses, e.g. {info.name}(x * tanh(log1p(exp(x))))"
            )
        if param.default is None and param.name not in given and info.kind != catalog.WINDOW:
            raise MomentcalcError(
                f"{info.name} needs {param.name}=<{param.describe()}>, e.g. "
                f"{info.name}({param.name}={3 if param.kind is int else 0.8})"
            )
    if info.constraint is not None:
        values = {p.name: given.get(p.name, p.default) for p in info.params}
        if not info.constraint(values):
            shown = ",".join(f"{k}={_format_value(v)}" for k, v in values.items())
            raise MomentcalcError(f"out of range in {info.name}({shown}): expected {info.constraint_text}")
    # Declared order, defaults left out: one canonical spelling per spec.
    return tuple((p.name, given[p.name]) for p in info.params if p.name in given and given[p.name] != p.default)


def _check_window(info: catalog.OpInfo, given: dict, whole: str) -> None:
    if "n" in given and ("k" in given or "dims" in given):
        raise MomentcalcError(f"{info.name} takes either n=N or k=K (with dims), not both, in {whole!r}")
    if "n" not in given and "k" not in given:
        raise MomentcalcError(
            f"{info.name} needs a window: k=K (K x K by default) or n=N values, e.g. {info.name}(k=3)"
        )
    shaped = [name for name in ("s", "p", "count_include_pad") if name in given]
    if shaped and "n" in given:
        raise MomentcalcError(
            f"{info.name} takes {', '.join(shaped)} only with a window shape k=K, not with n=N, in {whole!r}; "
            f"e.g. {info.name}(k=3,s=1,p=1)"
        )
    k = given.get("k")
    if k is not None and 2 * given.get("p", 0) > k:
        raise MomentcalcError(
            f"out of range in {info.name}(k={k},p={given['p']}): "
            f"pooling padding must be <= k/2 (at most {k // 2}), as PyTorch requires"
        )
    size = given["n"] if "n" in given else k ** given.get("dims", 2)
    if size > WINDOW_MAX:
        shape = "" if "n" in given else f" (k**dims = {k}**{given.get('dims', 2)})"
        raise MomentcalcError(
            f"out of range in {info.name}: a window holds at most {WINDOW_MAX} values (the input domain), "
            f"got {size}{shape}"
        )
    if k is not None and given.get("s") == k:
        del given["s"]  # the default stride is the window side: one canonical spelling
    if given.get("p", 0) == 0:
        given.pop("count_include_pad", None)  # without padding the flag changes nothing


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known ops: " + ", ".join(sorted(candidates))

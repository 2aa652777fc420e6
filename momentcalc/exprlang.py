"""User expressions in x, such as ``x * tanh(log1p(exp(x)))``: validated and compiled, never eval'd.

The text is parsed with Python's ``ast`` and checked against a whitelist:
numbers, the constants ``pi`` and ``e``, the single variable ``x``, the
operators ``+ - * / **`` (and unary ``-``/``+``), comparisons, and calls of
the functions in ``FUNCTIONS``. ``compile_numpy`` then builds a vectorized
callable from the tree node by node (closures over numpy ufuncs). This
module imports only the standard library at import time: ``canonical`` is
used by the spec parser, which must stay light.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from ._lazy import lazy_module
from .errors import MomentcalcError

MAX_LENGTH = 1000
# The deepest nesting of the tree: checking, printing and compiling it recurse once per level, and Python's
# stack holds about 1000 frames (400 unary minuses, or 330 x's joined by +, overflowed it).
MAX_DEPTH = 100

# name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "expm1": 1,
    "log": 1,
    "log1p": 1,
    "log2": 1,
    "log10": 1,
    "sqrt": 1,
    "square": 1,
    "tanh": 1,
    "sinh": 1,
    "cosh": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "arctan": 1,
    "arcsinh": 1,
    "abs": 1,
    "sign": 1,
    "erf": 1,
    "erfc": 1,
    "sigmoid": 1,
    "softplus": 1,
    "maximum": 2,
    "minimum": 2,
    "logaddexp": 2,
    "where": 3,
    "clip": 3,
}
CONSTANTS = ("pi", "e")
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY = (ast.USub, ast.UAdd)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


def canonical(text: str) -> str:
    """The expression in one spelling (ast.unparse, spaces removed); MomentcalcError if not allowed."""
    tree = _parse(text)
    return ast.unparse(tree).replace(" ", "")


def _parse(text: str) -> ast.Expression:
    if not isinstance(text, str) or not text.strip():
        raise MomentcalcError("empty expression: write a function of x, e.g. expr(x * tanh(log1p(exp(x))))")
    if len(text) > MAX_LENGTH:
        raise MomentcalcError(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as why:
        raise MomentcalcError(
            f"malformed expression {text!r}: {why.msg}; write a function of x, e.g. x * tanh(x)"
        ) from None
    except (RecursionError, MemoryError):  # the parser's own stack, on deeply nested text
        raise MomentcalcError(f"expression nests too deeply (at most {MAX_DEPTH} levels)") from None
    depth = _depth(tree.body)
    if depth > MAX_DEPTH:
        raise MomentcalcError(
            f"expression nests too deeply ({depth} levels, at most {MAX_DEPTH}): write x+x+x as 3*x, "
            "--x as x, or split a long sum into fewer terms"
        )
    _check(tree.body, text)
    return tree


def _depth(root: ast.AST) -> int:
    """Levels of the tree, counted without recursion (so any tree ast.parse returns can be measured)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check(node: ast.AST, text: str) -> None:
    where = f"in expression {text!r}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise MomentcalcError(f"constant {node.value!r} {where}: only real numbers are allowed")
        return
    if isinstance(node, ast.Name):
        if node.id != "x" and node.id not in CONSTANTS:
            raise MomentcalcError(f"unknown name {node.id!r} {where}: the only variable is x; constants are pi and e")
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
        _check(node.left, text)
        _check(node.right, text)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        _check(node.operand, text)
        return
    if isinstance(node, ast.Compare) and all(isinstance(op, _COMPARE) for op in node.ops):
        for part in [node.left, *node.comparators]:
            _check(part, text)
        return
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            raise MomentcalcError(
                f"attribute access {ast.unparse(node.func)!r} {where} is not allowed: "
                "call functions by name, e.g. exp(x)"
            )
        if not isinstance(node.func, ast.Name):
            raise MomentcalcError(f"only named functions may be called {where}")
        name = node.func.id
        if name not in FUNCTIONS:
            raise MomentcalcError(f"unknown function {name!r} {where}; known functions: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords or len(node.args) != FUNCTIONS[name] or any(isinstance(a, ast.Starred) for a in node.args):
            raise MomentcalcError(f"{name} takes {FUNCTIONS[name]} positional argument(s) {where}")
        for arg in node.args:
            _check(arg, text)
        return
    if isinstance(node, ast.Attribute):
        raise MomentcalcError(f"attribute access {ast.unparse(node)!r} {where} is not allowed")
    raise MomentcalcError(
        f"{type(node).__name__} {ast.unparse(node)!r} is not allowed {where}: "
        "use numbers, x, pi, e, + - * / **, comparisons and the known functions"
    )


def compile_numpy(text: str) -> Callable:
    """A vectorized callable for the expression: float array (or scalar) in, float array of the same shape out."""
    # numpy and scipy on first use: the spec parser imports this module and must stay light.
    np, special = lazy_module("numpy"), lazy_module("scipy.special")

    tree = _parse(text)
    table = {
        "exp": np.exp,
        "expm1": np.expm1,
        "log": np.log,
        "log1p": np.log1p,
        "log2": np.log2,
        "log10": np.log10,
        "sqrt": np.sqrt,
        "square": np.square,
        "tanh": np.tanh,
        "sinh": np.sinh,
        "cosh": np.cosh,
        "sin": np.sin,
        "cos": np.cos,
        "tan": np.tan,
        "arctan": np.arctan,
        "arcsinh": np.arcsinh,
        "abs": np.abs,
        "sign": np.sign,
        "erf": special.erf,
        "erfc": special.erfc,
        "sigmoid": special.expit,
        "softplus": lambda v: np.logaddexp(0.0, v),
        "maximum": np.maximum,
        "minimum": np.minimum,
        "logaddexp": np.logaddexp,
        "where": np.where,
        "clip": np.clip,
    }
    binary = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide, ast.Pow: np.power}
    compare = {
        ast.Lt: np.less,
        ast.LtE: np.less_equal,
        ast.Gt: np.greater,
        ast.GtE: np.greater_equal,
        ast.Eq: np.equal,
        ast.NotEq: np.not_equal,
    }
    constants = {"pi": float(np.pi), "e": float(np.e)}

    def build(node):
        if isinstance(node, ast.Constant):
            try:
                value = float(node.value)
            except OverflowError:
                raise MomentcalcError(f"constant {node.value} in expression {text!r} is too large") from None
            return lambda x: value
        if isinstance(node, ast.Name):
            if node.id == "x":
                return lambda x: x
            value = constants[node.id]
            return lambda x: value
        if isinstance(node, ast.BinOp):
            op, left, right = binary[type(node.op)], build(node.left), build(node.right)
            return lambda x: op(left(x), right(x))
        if isinstance(node, ast.UnaryOp):
            operand = build(node.operand)
            return (lambda x: np.negative(operand(x))) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Compare):
            parts = [build(p) for p in [node.left, *node.comparators]]
            ops = [compare[type(o)] for o in node.ops]

            def chained(x):  # a < x < b means (a < x) and (x < b), elementwise
                values = [p(x) for p in parts]
                out = ops[0](values[0], values[1])
                for i in range(1, len(ops)):
                    out = np.logical_and(out, ops[i](values[i], values[i + 1]))
                return out

            return chained
        func, args = table[node.func.id], [build(a) for a in node.args]
        return lambda x: func(*(a(x) for a in args))

    body = build(tree.body)

    def f(x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = np.asarray(body(x), dtype=np.float64)
        return np.broadcast_to(out, x.shape).copy() if out.shape != x.shape else out

    f.__name__ = "expr"
    f.__doc__ = f"expr({canonical(text)})"
    return f

"""Moments of a product of independent one-input factors, y = u(x) h(g), from each factor's own moments.

With x and g independent, E[y] = E[u] E[h] and E[y^2] = E[u^2] E[h^2], so
Var[y] = Var[u] Var[h] + Var[u] E[h]^2 + E[u]^2 Var[h] (a sum of non-negative
terms: no cancellation). The backward rule: dy/dx = u'(x) h(g) and
dy/dg = u(x) h'(g), so the mean squared gradient reaching x from a unit-variance
output gradient is E[u'^2] E[h^2], and reaching g it is E[u^2] E[h'^2].
The same formulas serve floats (closed, quadrature) and balls (certified).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Factor:
    """One factor's mean, variance and E[f'^2], as floats or balls, with absolute error bounds for floats."""

    mean: object
    var: object
    grad: object
    mean_err: float = 0.0
    var_err: float = 0.0
    grad_err: float = 0.0


def combine(factors: tuple[Factor, ...], wrt: int):
    """(mean, var, grad) of the product; grad is the mean squared gradient reaching input number `wrt`."""
    mean, second = 1, 1
    for f in factors:
        mean = mean * f.mean
        second = second * (f.var + f.mean * f.mean)
    var = _product_var(factors)
    grad = 1
    for i, f in enumerate(factors):
        grad = grad * (f.grad if i == wrt else f.var + f.mean * f.mean)
    return mean, var, grad


def _product_var(factors: tuple[Factor, ...]):
    """Var of a product of independent factors without cancellation: fold Var[ab] = Va Vb + Va mb^2 + ma^2 Vb."""
    mean, var = factors[0].mean, factors[0].var
    for f in factors[1:]:
        mean, var = mean * f.mean, var * f.var + var * f.mean * f.mean + mean * mean * f.var
    return var


def combine_errors(factors: tuple[Factor, ...], wrt: int) -> tuple[float, float, float]:
    """First-order bounds on the errors of (mean, std, grad) of combine() from the factors' float error bounds
    (for quadrature, whose factors' errors are far below their values): d(prod a_i) = sum_i da_i prod_j!=i a_j."""
    mean, var, _ = combine(factors, wrt)
    second = [(f.var + f.mean * f.mean, f.var_err + 2 * abs(f.mean) * f.mean_err) for f in factors]
    mean_err = _product_err([(f.mean, f.mean_err) for f in factors])
    var_err = _product_err(second) + 2 * abs(mean) * mean_err
    std_err = var_err / (2 * math.sqrt(var)) if var > 0 else math.sqrt(var_err)
    grads = [(f.grad, f.grad_err) if i == wrt else second[i] for i, f in enumerate(factors)]
    return mean_err, std_err, _product_err(grads)


def _product_err(parts: list[tuple[float, float]]) -> float:
    """Error bound of a product of values with these error bounds, to first order."""
    return sum(err * math.prod(abs(v) for j, (v, _) in enumerate(parts) if j != i) for i, (_, err) in enumerate(parts))

"""The methods: their names, what 'auto' and 'all' run and when auto may stop, and which of them treat an op.

`momentcalc list` reads method_support; estimate() reads the rest.
"""

from __future__ import annotations

from .. import catalog
from .._lazy import lazy_module
from ..estimators import closed, support
from ..result import Estimate, informative
from ..settings import METHODS

products = lazy_module("momentcalc.products")

AUTO = {
    "auto": ("certified", "closed", "quadrature", "montecarlo"),
    "all": ("certified", "closed", "quadrature", "qmc", "montecarlo"),
}
# auto runs these only while the estimates so far do not check each other (cross_checked): quadrature costs
# scipy's import (about 0.2 s), Monte Carlo numba's and its kernels' (0.3-0.5 s), where certified and a closed form
# take milliseconds. A table build runs every one of them (EVERY_EXACT_AND_MONTECARLO).
AUTO_IF_NEEDED = ("quadrature", "montecarlo")
EVERY_EXACT_AND_MONTECARLO = AUTO["auto"]


def cross_checked(estimates: list[Estimate]) -> bool:
    """Every quantity that some estimate gives (mean, std, E[f'^2]), two of them give with a usable bound: the
    value of record has an independent method to agree with (crosscheck.compare compares exactly these)."""
    given = [sum(informative(e, q) for e in estimates) for q in ("mean", "std", "grad_sq")]
    return given[0] >= 2 and all(n == 0 or n >= 2 for n in given[1:])


SAMPLING = ("montecarlo", "qmc")  # the methods that run compiled kernels


def sampling(methods: tuple[str, ...]) -> bool:
    """Some of these methods samples (runs numba kernels)."""
    return any(m in SAMPLING for m in methods)


def method_support(info: catalog.OpInfo) -> dict[str, str | None]:
    """Per method, None where it treats some use of the op, else why it treats none: each method reads the op's
    declaration (`momentcalc list`). Whether it treats a given spec still depends on the spec (its parameters,
    what precedes it): `estimate --method all` tells."""
    found = _method_support(info)
    return {m: info.declined_by(m) or why for m, why in found.items()}


def _method_support(info: catalog.OpInfo) -> dict[str, str | None]:
    if info.kind == catalog.LAYER:
        return dict.fromkeys(METHODS[2:], "a layer for `momentcalc backward` only")
    if info.kind == catalog.PRODUCT:
        return {m: products.declines(info, m) for m in ("certified", "closed", "quadrature", "qmc", "montecarlo")}
    if info.kind == catalog.RESIDUAL:
        why = "only quadrature and Monte Carlo integrate x F(x)"
        return {m: None if m in ("quadrature", "montecarlo") else why for m in METHODS[2:]}
    found = {
        "certified": support.certified(info),
        "closed": closed.declines(info),
        "quadrature": support.quadrature(info),
        "qmc": support.kernels(info, numpy_path=False),
        "montecarlo": support.kernels(info),
    }
    # A lone op that declares its law for a method (products.LAW_ROUTES) is treated by it.
    return {
        m: None if getattr(info, products.LAW_ROUTES.get(m, ""), None) is not None else why for m, why in found.items()
    }

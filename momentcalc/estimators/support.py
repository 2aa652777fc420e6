"""Which ops each method treats, read from their declarations alone, without loading the methods.

`momentcalc list` asks every method about every op; loading the methods to ask would load scipy (quadrature),
numba (the Monte Carlo kernels) and python-flint (certified), most of a second of a command that computes nothing.
So the answers live here, on the standard library, and the methods refuse by them too (one source). Each method
keeps its own list of window reductions, not the registry's, so that a reduction declared elsewhere is refused
until that method learns it.
"""

from __future__ import annotations

from .. import catalog
from ..ops import pooling

# The window reductions each method treats: certified_chain._window, quadrature._window, and the kernels'
# mc_kernels.REDUCTION_CODES (a test holds that one to this list).
CERTIFIED_REDUCTIONS = (pooling.MAX, pooling.MIN, pooling.MEAN)
QUADRATURE_REDUCTIONS = (pooling.MAX, pooling.MIN, pooling.MEAN)
KERNEL_REDUCTIONS = (pooling.MAX, pooling.MEAN, pooling.MIN)


def certified(info: catalog.OpInfo) -> str | None:
    """Why the certified method certifies no use of the op; None where some use is certified."""
    if info.kind == catalog.ELEMENTWISE:
        return None if info.ball is not None else "it declares no ball arithmetic"
    if info.kind == catalog.WINDOW:
        if info.reduction not in CERTIFIED_REDUCTIONS:
            return f"the certified method does not know the reduction {info.reduction!r}"
        return None if info.reduction == pooling.MEAN or info.ball_density else "it declares no density in balls"
    if info.kind == catalog.DROPOUT:
        return None if info.ball_moments is not None else "it declares no moments in balls"
    if info.kind == catalog.NORMALIZE:
        return None
    return f"the certified method does not know ops of kind {info.kind!r}"


def quadrature(info: catalog.OpInfo) -> str | None:
    """Why quadrature treats no use of the op; None where some use is treated."""
    if info.kind == catalog.ELEMENTWISE:
        has_f = info.f is not None and info.df is not None
        return None if has_f or info.vectorized is not None else "it declares no scalar function"
    if info.kind == catalog.WINDOW:
        known = info.reduction in QUADRATURE_REDUCTIONS
        return None if known else f"it does not know the reduction {info.reduction!r}"
    if info.kind in (catalog.DROPOUT, catalog.NORMALIZE):
        return None
    return f"it does not know ops of kind {info.kind!r}"


def kernels(info: catalog.OpInfo, numpy_path: bool = True) -> str | None:
    """Why the Monte Carlo kernels run no use of the op (numpy_path: the numpy Monte Carlo of user expressions
    counts, as for montecarlo; qmc has none); None where some use runs.

    The kernels' activations are the registry's jitted ones (catalog.jitted_activations), the list that the
    generated dispatch.py is held to (dispatch_gen.require_fresh, where a run loads them)."""
    if info.kind == catalog.ELEMENTWISE:
        if info.vectorized is not None:
            return None if numpy_path else "it has only a numpy form, and quasi-Monte Carlo runs compiled kernels"
        jitted = any(a.name == info.name for a in catalog.jitted_activations())
        return None if jitted else "the kernels have no compiled function for it"
    if info.kind == catalog.WINDOW:
        known = info.reduction in KERNEL_REDUCTIONS
        return None if known else f"the kernels do not know the reduction {info.reduction!r}"
    if info.kind in (catalog.DROPOUT, catalog.NORMALIZE):
        return None
    return f"Monte Carlo does not know ops of kind {info.kind!r}"

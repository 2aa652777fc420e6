"""Seconds numba spends compiling while a run goes on: charged to the run's kernels, not to its estimates.

A run that samples nothing compiles nothing, and must not pay 0.5 s to import numba to listen.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from types import SimpleNamespace

from .._lazy import lazy_module
from .methods import AUTO, sampling

jit = lazy_module("momentcalc.estimators.jit")  # numba (0.5-0.7 s to import): only where something samples

NOTHING_COMPILED = SimpleNamespace(seconds=0.0)  # the clock of a run that compiles nothing


def compile_clock(notify: Callable[[bool], None] | None = None, method: str = "auto") -> AbstractContextManager:
    """Seconds numba spends compiling while the block runs (jit.compile_clock), for a run of `method`;
    notify(True/False) as a compilation starts and ends.

    For 'auto', which samples only where its exact methods do not check each other, numba is not loaded up front:
    notify passes to the clock that estimate() starts where Monte Carlo runs, and this one reads 0 seconds."""
    if method == "auto":
        return _deferred(notify)
    return _compile_clock(AUTO.get(method, (method,)), notify)


_DEFERRED_NOTIFY: ContextVar = ContextVar("momentcalc_compile_notify", default=None)


def started() -> AbstractContextManager:
    """The clock of a run of 'auto' where something samples: it tells the notify that compile_clock deferred."""
    return jit.compile_clock(_DEFERRED_NOTIFY.get())


@contextmanager
def _deferred(notify):
    token = _DEFERRED_NOTIFY.set(notify)
    try:
        yield NOTHING_COMPILED
    finally:
        _DEFERRED_NOTIFY.reset(token)


def _compile_clock(methods: tuple[str, ...], notify=None) -> AbstractContextManager:
    # Listening needs numba; a run that samples nothing compiles nothing and must not pay 0.5 s to import it.
    return jit.compile_clock(notify) if sampling(methods) else nullcontext(NOTHING_COMPILED)

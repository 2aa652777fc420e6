"""The engine: estimate() runs every method that applies to a spec and cross-checks them.

estimation.py: estimate() and the order it runs the methods in; checks.py: what it refuses before any work;
methods.py: the methods, what auto runs, and which treat an op (`momentcalc list`); clock.py: the seconds numba
compiles; runner.py: one method on one spec; callables.py: estimate(fn) of a user's vectorized callable.

The package loads lazily (`lazy_module("momentcalc.engine")`): callers that must not load numba or scipy up front
read its modules through it, as engine.methods.method_support and engine.clock.compile_clock.
"""

from . import checks, clock, methods
from .estimation import estimate

__all__ = ["checks", "clock", "estimate", "methods"]

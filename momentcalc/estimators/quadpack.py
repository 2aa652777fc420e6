"""QUADPACK's adaptive 21-point Gauss-Kronrod rule (qagse), as scipy.integrate.quad runs it, without loading the
rest of scipy.integrate.

`import scipy.integrate` runs the package's __init__, which imports every solver it exports: solve_bvp and
solve_ivp bring scipy.optimize, scipy.sparse and linprog, 0.3-0.5 s of a one-entry quadrature run (bench/startup.py
--floor) for the one function quadrature uses. scipy's quad itself is a thin wrapper: over a finite interval it
calls the compiled `scipy.integrate._quadpack._qagse(f, a, b, args, full_output, epsabs, epsrel, limit)` and
turns a nonzero status into a warning, which every caller here silences anyway (its error bound is what we
report). So the extension is loaded here from its file, under its own name in sys.modules, so that a later
`import scipy.integrate` finds and shares the same module; calling it directly also saves the wrapper's few
microseconds on each of the hundred-odd pieces of one estimate. Where scipy lays its files out otherwise, or
the extension does not load, scipy.integrate.quad serves: the same rule, the same numbers, only slower to import.
Our own Gauss-Kronrod rule on numpy was not taken: QUADPACK's error estimate and its adaptive subdivision are
what the error bounds of quadrature.py were tested against. (The max of normals alone, whose density is known
in closed form and vectorises, has its own rule in max_normal.py.)
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
import warnings
from collections.abc import Callable

from .._lazy import lazy_module

integrate = lazy_module("scipy.integrate")  # the public quad: only where the extension cannot be loaded

NAME = "scipy.integrate._quadpack"


def quad(f: Callable[[float], float], a: float, b: float, epsabs: float, epsrel: float, limit: int):
    """(integral, QUADPACK's error estimate) of f over the finite interval [a, b], a <= b."""
    if not (math.isfinite(a) and math.isfinite(b)) or b < a:
        raise ValueError(f"quadpack.quad takes a finite interval a <= b, got [{a!r}, {b!r}]")
    value, error, _status = _qagse()(f, a, b, (), 0, epsabs, epsrel, limit)
    return value, error


def _qagse():
    global _QAGSE
    if _QAGSE is None:
        _QAGSE = _load()
    return _QAGSE


_QAGSE = None


def _load():
    module = sys.modules.get(NAME) or _from_file()
    if module is not None and hasattr(module, "_qagse"):
        return module._qagse
    return _public_quad  # pragma: no cover (a scipy without the extension file where it is looked for)


def _from_file():
    """scipy.integrate._quadpack loaded from its file beside scipy/__init__.py, without its package's __init__;
    None where it is not there or does not load."""
    scipy_spec = importlib.util.find_spec("scipy")
    if scipy_spec is None or not scipy_spec.submodule_search_locations:
        return None
    folder = scipy_spec.submodule_search_locations[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = f"{folder}/integrate/_quadpack{suffix}"
        spec = importlib.util.spec_from_file_location(NAME, path)
        if spec is None:
            continue
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except (ImportError, OSError):
            continue
        return sys.modules.setdefault(NAME, module)
    return None


def _public_quad(f, a, b, args, full_output, epsabs, epsrel, limit):
    """The same rule through scipy's own wrapper, with its status as _qagse returns it (0: unknown here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, error = integrate.quad(f, a, b, args, full_output, epsabs, epsrel, limit)
    return value, error, 0

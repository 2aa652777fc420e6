"""The optional extras a command may need, and the one-line refusal where one is missing, before any work.

A command checks its extra first (`require(PLOTS, "cmap --plot")`), so that a missing matplotlib costs no
computation and prints one line naming what to install instead of a traceback at the end.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import MomentcalcError


@dataclass(frozen=True)
class Extra:
    module: str  # the top-level module the extra brings
    what: str
    install: str


TORCH = Extra("torch", "PyTorch", "pip install torch==2.13.0 'momentcalc[torch]' (torch 2.13.0: a CPU build)")
PLOTS = Extra("matplotlib", "matplotlib", "pip install 'momentcalc[plots]'")
DASK = Extra("distributed", "Dask's distributed", "pip install 'momentcalc[dask]'")
EXTRAS = (TORCH, PLOTS, DASK)


def missing_message(extra: Extra, feature: str) -> str:
    return f"{feature} needs {extra.what}, which is not installed: {extra.install}"


def require(extra: Extra, feature: str) -> None:
    """Raise MomentcalcError (exit 2) unless extra's module imports; importing it is the check (a broken
    install counts as missing), and the feature needs it loaded anyway."""
    try:
        importlib.import_module(extra.module)
    except ImportError:
        raise MomentcalcError(missing_message(extra, feature)) from None

"""Checks of the arguments of momentcalc.torch's functions and modules: a bad one is one MomentcalcError line.

torch itself accepts some bad arguments silently (nn.Linear(0, 4), a batch of 0 whose statistics are NaN) and
refuses others with its own messages, some only at the first forward pass; these checks run first, at
construction or call, and say what would be right.
"""

from __future__ import annotations

import math

import torch

from ..errors import MomentcalcError


def whole(name: str, value, lowest: int) -> int:
    """value if it is a whole number >= lowest (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise MomentcalcError(f"{name} must be a whole number >= {lowest}, got {value!r}")
    return value


def pair(name: str, value, lowest: int) -> tuple[int, int]:
    """A whole number or a pair of them (torch's _pair), each >= lowest."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise MomentcalcError(f"{name} must be a whole number or a pair of them, got {value!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < lowest:
            raise MomentcalcError(f"{name} must be a whole number >= {lowest} or a pair of them, got {value!r}")
    return items


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise MomentcalcError(f"{name} must be True or False, got {value!r}")
    return value


def real(name: str, value) -> float:
    """value as a float if it is a finite real number (not a bool, not a tensor)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MomentcalcError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def normal_input(mu, sigma) -> tuple[float, float]:
    """(mu, sigma) of an N(mu, sigma^2) input: finite, sigma > 0."""
    mu, sigma = real("mu", mu), real("sigma", sigma)
    if sigma <= 0:
        raise MomentcalcError(f"sigma must be > 0 (the input is N(mu, sigma^2)), got {sigma!r}")
    return mu, sigma


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise MomentcalcError(f"{name} must be text such as 'relu', got {type(value).__name__} {value!r}")
    return value


FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def floating_dtype(value) -> torch.dtype:
    if not isinstance(value, torch.dtype) or value not in FLOATING:
        names = ", ".join(str(d) for d in FLOATING)
        raise MomentcalcError(f"dtype must be one of {names}, got {value!r}")
    return value


def tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise MomentcalcError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value

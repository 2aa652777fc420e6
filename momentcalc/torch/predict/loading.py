"""load_model('module:callable') or 'timm:NAME': the model a user names, and nothing else imported.

Importing a module runs its code: that is what naming it asks for. Only what is named is imported, and never from
the working folder implicitly: '' and the working folder are left out of sys.path while it is imported (a
`torch.py` or `timm.py` lying in the folder where the command is typed does not run). A module in the working
folder is found only where the user says so, e.g. PYTHONPATH=$PWD (an entry after the first one of sys.path).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys

import torch
from torch import nn

from ...errors import MomentcalcError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@contextlib.contextmanager
def _without_working_folder():
    here = os.path.realpath(os.getcwd())
    saved = list(sys.path)
    # '' and '.' anywhere, then a first entry that is the working folder (python -m and -c put it there); a folder
    # named in PYTHONPATH on purpose comes after that one and stays
    kept = [p for p in saved if p not in ("", ".")]
    if kept and os.path.realpath(kept[0]) == here:
        kept = kept[1:]
    sys.path[:] = kept
    try:
        yield
    finally:
        added = [p for p in sys.path if p not in saved]  # what the imported code added on purpose stays
        sys.path[:] = saved + added


def load_model(name: str) -> nn.Module:
    """The nn.Module that 'module:callable' (called with no arguments) or 'timm:NAME' (timm.create_model) gives."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise MomentcalcError(
            f"--model takes MODULE:CALLABLE or timm:NAME, e.g. torchvision.models:resnet18; got {name!r}"
        )
    module_name, attr = (part.strip() for part in name.split(":"))
    if module_name == "timm":
        return _timm(attr)
    if not _DOTTED.match(module_name) or not _DOTTED.match(attr):
        raise MomentcalcError(f"--model takes MODULE:CALLABLE with dotted Python names, not {name!r}")
    with _without_working_folder():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as why:
            raise MomentcalcError(
                f"no module {why.name or module_name!r} to import for --model {name!r} (the working folder is not "
                "searched: set PYTHONPATH to the folder that holds it)"
            ) from None
        except Exception as why:  # the named module's own code failed
            raise MomentcalcError(f"importing {module_name!r} raised {type(why).__name__}: {_first(why)}") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise MomentcalcError(f"{module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise MomentcalcError(f"{name!r} is not callable")
    return _built(target, name)


def _timm(model_name: str) -> nn.Module:
    with _without_working_folder():
        try:
            timm = importlib.import_module("timm")
        except ImportError:
            raise MomentcalcError("--model timm:NAME needs timm, which is not installed: pip install timm") from None
    if not model_name or model_name not in timm.list_models():
        raise MomentcalcError(f"timm has no model {model_name!r}; `python -c 'import timm; print(timm.list_models())'`")
    return _built(lambda: timm.create_model(model_name, pretrained=False), f"timm:{model_name}")


def _built(make, name: str) -> nn.Module:
    try:
        model = make()
    except Exception as why:  # the user's callable failed
        raise MomentcalcError(f"{name} raised {type(why).__name__}: {_first(why)}") from None
    if not isinstance(model, nn.Module):
        raise MomentcalcError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def normal_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """An N(0, 1) batch of shape from seed (torch's generator: the same on every machine)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def input_shape_of(model: nn.Module, batch: int) -> tuple[int, ...] | None:
    """timm's declared input size with the batch in front; None where the model declares none."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return (batch, *size) if size else None


def _first(why: BaseException) -> str:
    return (str(why).strip().splitlines() or [type(why).__name__])[0]

"""The one mechanism for imports deferred for start-up speed: a module loaded on first attribute access.

Used where a heavy module (numba, scipy, jsonschema, the engine) is not needed
by every run: `momentcalc --help` and `import momentcalc.constants` load neither
numba nor scipy, and a Monte Carlo-only run never pays for scipy. Write
`engine = lazy_module("momentcalc.engine")` at module level, never an import
inside a function (and never one to dodge an import cycle: the layers and
acyclic contracts in pyproject.toml forbid cycles outright).
"""

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str, needs: str | None = None) -> ModuleType:
    """The module `name`, executed the first time one of its attributes is read.

    needs: the top-level module of an optional extra that `name` imports (torch, matplotlib). Where it is not
    installed, the module returned is a stand-in kept out of sys.modules, whose attributes raise
    ModuleNotFoundError; where it is, a handle (_Deferred) that imports the module on first use. A lazy module in
    sys.modules whose import must fail would fail in whatever code
    scans sys.modules: hypothesis's pytest plugin reads every module's __file__ (getattr(m, "__file__", None)
    tolerates AttributeError, not the ImportError that the deferred import raises).
    """
    if name in sys.modules:
        return sys.modules[name]
    if needs is not None:
        if not _installed(needs):
            return _Missing(name, f"{name} needs {needs}, which is not installed")
        return _Deferred(name)
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses the name, or a module without a spec
        return False


class _Missing(ModuleType):
    """A module whose optional dependency is not installed: reading any of its attributes says so."""

    def __init__(self, name: str, hint: str):
        super().__init__(name)
        self._hint = hint

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # module metadata (__file__, __path__): absent, as hasattr expects
            raise AttributeError(attr)
        raise ModuleNotFoundError(self._hint, name=self.__name__)


class _Deferred(ModuleType):
    """A handle on a module of an optional extra (torch, matplotlib), imported on first use and kept out of
    sys.modules until then. Not a LazyLoader module in sys.modules: code that scans sys.modules (hypothesis's plugin,
    torch's own import) would execute it at any moment, even in the middle of `import torch`, where its
    `import torch` meets a half-initialized torch, the error is swallowed by the scanner's getattr, and the package
    stays half-executed (momentcalc.torch without its later names). Reads, writes and deletes of attributes go to
    the real module, so a monkeypatch through the handle patches the module."""

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self.__name__), attr)

    def __setattr__(self, attr: str, value) -> None:
        setattr(importlib.import_module(self.__name__), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(importlib.import_module(self.__name__), attr)

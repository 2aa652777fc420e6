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


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed the first time one of its attributes is read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

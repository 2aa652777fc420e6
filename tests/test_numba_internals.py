"""numba's private cache internals that estimators/jit.py builds on: numba offers no public hook for cache locators,
so a numba release that changes them must fail here, loudly, and at import with one line saying what changed."""

import numba
import pytest
from numba.core import caching

from momentcalc.estimators import jit, normals


def test_the_locator_classes_jit_subclasses_exist_with_the_methods_it_overrides():
    for name in jit.LOCATOR_BASES:
        base = jit._named(name)
        for method in ("from_function", "get_source_stamp", "get_cache_path"):
            assert callable(getattr(base, method, None)), f"numba {numba.__version__}: {name}.{method} is gone"


def test_the_momentcalc_locators_head_numbas_private_list():
    classes = jit._named("CacheImpl")._locator_classes
    names = [c.__name__ for c in classes[: len(jit.LOCATOR_BASES) + 1]]
    assert names == ["MomentcalcPackageKernels"] + [f"Momentcalc{n}" for n in jit.LOCATOR_BASES], names
    # A package kernel is cached through them, keyed on the package's sources too.
    locator = normals.fill._cache._impl.locator
    assert type(locator).__name__.startswith("Momentcalc")
    assert locator.get_source_stamp()[1] == jit.sources_stamp()


def test_a_numba_without_the_internals_fails_with_one_line(monkeypatch):
    for name in ("CacheImpl", "_CacheImpl"):
        monkeypatch.delattr(caching, name, raising=False)
    with pytest.raises(ImportError, match=r"changed the private cache internals .*has no class CacheImpl"):
        jit._named("CacheImpl")

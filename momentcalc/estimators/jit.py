"""The one numba decorator of momentcalc's kernels, and a disk cache that notices edits to any kernel source.

``jit(**options)`` is ``numba.njit(cache=True, nogil=True, ...)``: compiled
once, cached on disk, and releasing the GIL so that the driver's threads run
kernels in parallel.

Why a cache locator of our own: numba keys a cached function on its own
file only, but our kernels inline functions from other files (the generated
activation dispatch, the ops' scalar functions, normals.py). After an op was
added or edited, a kernel would load stale machine code from the cache:
adding swish shifted the dispatch codes and cached kernels computed other
activations. Our locator adds a stamp of every source file under
momentcalc/ops and momentcalc/estimators to each momentcalc kernel's cache
key, so any edit there recompiles them; other numba users are unaffected.
A file outside the package whose kernels inline the package's (the tests'
mirrors of the kernels, tests/kernel_samples.py) is cached the same way once
it is added to MIRRORS.

Where: the package's own kernels are cached in one folder, kernels_folder():
MOMENTCALC_KERNELS where it is set, else the package's _kernels folder, which
the wheel ships filled (hatch_build.py compiles the default table's kernels
when pip builds the package). numba keys an entry on the content of the
sources, the function's bytecode, numba's version and the CPU, never on
where the files lie, so kernels compiled in the build's copy of the package
load, without compiling, wherever pip puts it: a first `momentcalc estimate
relu` then takes a warm run's time. Any mismatch (an edited kernel, another
numba, another CPU) only misses, and numba compiles and saves the kernel as
before. Where the package's folder cannot be written (an install by another
user), a copy of it in the user's cache serves (cache_root); where no folder
can be written, numba's own places (NUMBA_CACHE_DIR, the user's cache).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numba
from numba import njit, typeof
from numba.core import caching, event, types

from . import kernel_cache

_PACKAGE = Path(__file__).resolve().parent.parent
_SOURCES = ("ops", "estimators")
KERNELS_VARIABLE = "MOMENTCALC_KERNELS"
# Files outside the package whose kernels inline the package's kernel code (the tests' mirrors of the kernels):
# cached under sources_stamp() too, once added here, so that an edited package kernel does not leave them stale.
MIRRORS: set[Path] = set()


@functools.lru_cache(maxsize=1)
def sources_stamp() -> str:
    """A hash of the kernels' source files (contents): changes whenever one of them does."""
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted((_PACKAGE / folder).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _resolved(py_file: str) -> Path:
    # Once per file, not per kernel: resolving stats every folder of the path, and ~240 kernels are declared at
    # import (a tenth of a second of every command's start-up, uncached).
    return Path(py_file).resolve()


def _stamped(base: type) -> type:
    """A numba cache locator like `base`, for momentcalc's own files (and MIRRORS) only, with sources_stamp()
    in its key."""

    class Stamped(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            path = _resolved(py_file)
            if not (path.is_relative_to(_PACKAGE) or path in MIRRORS):
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return (super().get_source_stamp(), sources_stamp())

    Stamped.__name__ = f"Momentcalc{base.__name__}"
    return Stamped


def kernels_folder() -> Path:
    """Where the package's kernels are cached: MOMENTCALC_KERNELS, else the package's _kernels folder (shipped
    filled by the wheel)."""
    return Path(os.environ.get(KERNELS_VARIABLE) or _PACKAGE / "_kernels")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


@functools.cache
def cache_root(folder: Path, shipped: bool) -> Path | None:
    """The folder the package's kernels are cached in: `folder` where it can be written. Else, for the shipped
    folder (an install its user cannot write to: root's pip and another user, a container's non-root user, a
    cluster's shared install), a copy of it in the user's cache, made once per installed copy and sources, so that
    its kernels still load and what compiles later is saved. None where neither serves: numba's own places."""
    if _writable(folder):
        return folder
    if not shipped:
        return None  # MOMENTCALC_KERNELS names a folder that cannot be written
    key = hashlib.sha256(f"{folder}\0{sources_stamp()}".encode()).hexdigest()[:16]
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "momentcalc"
    copy = home / f"kernels-{key}"
    try:
        if not copy.exists():
            # Into a scratch folder, then renamed: another process sees the whole copy or none (and a copy
            # made once is never overwritten, which would drop entries compiled since).
            home.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=home, prefix=".kernels-"))
            if folder.is_dir():
                shutil.copytree(folder, scratch, dirs_exist_ok=True)
            with contextlib.suppress(OSError):  # another process renamed its copy first: keep that one
                scratch.rename(copy)
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError:
        return None
    return copy if _writable(copy) else None


def _package_root() -> Path | None:
    return cache_root(kernels_folder(), not os.environ.get(KERNELS_VARIABLE))


def _package_kernels(stamped: type) -> type:
    """A locator for the package's own files that caches in kernels_folder(), a subfolder per package folder
    (ops, estimators): a path relative to the package, so that the folder's entries serve any copy of it."""

    class PackageKernels(stamped):
        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = str(_package_root() / _resolved(py_file).parent.relative_to(_PACKAGE))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _resolved(py_file).is_relative_to(_PACKAGE):
                return None  # the tests' mirrors: numba's places, stamped
            return None if _package_root() is None else super().from_function(py_func, py_file)

    PackageKernels.__name__ = "MomentcalcPackageKernels"
    return PackageKernels


LOCATOR_BASES = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")


def _install() -> None:
    # numba has no public hook for cache locators (its documentation offers cache=True and NUMBA_CACHE_DIR only):
    # its private list CacheImpl._locator_classes is the one place, checked here and by tests/test_numba_internals.py.
    stamped = [_stamped(_named(name)) for name in LOCATOR_BASES]
    classes = getattr(_named("CacheImpl"), "_locator_classes", None)
    if not isinstance(classes, list):
        raise ImportError(_CHANGED.format(version=numba.__version__, what="CacheImpl._locator_classes is not a list"))
    if not any(getattr(c, "__name__", "").startswith("Momentcalc") for c in classes):
        # InTreeCacheLocator's from_function checks that the folder can be written; its path is replaced.
        classes[:0] = [_package_kernels(stamped[1]), *stamped]


_CHANGED = (
    "numba {version} changed the private cache internals momentcalc's kernel cache uses ({what}): "
    "update momentcalc, or install an earlier numba"
)


def _named(name: str):
    # Recent numba names these classes without a leading underscore; older versions with one.
    found = getattr(caching, name, None) or getattr(caching, "_" + name, None)
    if not isinstance(found, type):
        raise ImportError(_CHANGED.format(version=numba.__version__, what=f"numba.core.caching has no class {name}"))
    return found


_install()


def jit(**options):
    """numba.njit(cache=True, nogil=True, **options): every kernel of momentcalc is compiled through this.

    Its disk cache is kernel_cache's: each file checked before numba loads it, a broken one removed and compiled
    again. Where no cache folder can be written, the kernel compiles in memory (one line says so, once)."""
    cached = njit(cache=True, nogil=True, **options)

    def decorate(py_func):
        try:
            dispatcher = cached(py_func)
        except RuntimeError as error:  # numba: "cannot cache function ...: no locator available for file ..."
            if "no locator" not in str(error):
                raise
            kernel_cache.no_cache_folder()
            return njit(nogil=True, **options)(py_func)
        kernel_cache.heal(dispatcher)
        return dispatcher

    return decorate


def shared(*functions: types.FunctionType, **options) -> Callable[[Callable], SharedKernel]:
    """jit(**options) for a kernel that all activations share: its first arguments are an activation's own
    compiled functions, of the numba function types `functions`, which it calls by their addresses.

    Why: numba specialises a kernel to each jitted function passed to it, and compiles it again per activation
    (1 to 9 s each in a first run). A kernel that calls an activation's loop once per block of normals (not
    once per value) loses nothing by an indirect call, and compiles once for all of them."""

    def wrap(py_func: Callable) -> SharedKernel:
        return SharedKernel(jit(**options)(py_func), functions)

    return wrap


class SharedKernel:
    """A kernel compiled once, on its first call: for `functions` (numba first-class function types) and the
    types of the other arguments it is called with then; never again (later calls must pass the same types,
    and jitted functions of those function types, which numba compiles for them)."""

    def __init__(self, dispatcher, functions: tuple[types.FunctionType, ...]):
        self.dispatcher, self.functions, self._ready, self._lock = dispatcher, functions, False, threading.Lock()

    def __call__(self, *args):
        if not self._ready:
            with self._lock:  # the driver's threads may all make the first call
                if not self._ready:
                    rest = args[len(self.functions) :]
                    self.dispatcher.compile((*self.functions, *(typeof(a) for a in rest)))
                    self.dispatcher.disable_compile()  # no specialisation per activation passed
                    self._ready = True
        return self.dispatcher(*args)


class CompileClock(event.Listener):
    """Seconds spent compiling (numba's "numba:compile" events: cache misses only, not cache loads),
    outermost compilations only; notify(True) when one starts, notify(False) when it ends."""

    def __init__(self, notify: Callable[[bool], None] | None = None):
        self.seconds, self._notify, self._depth, self._start = 0.0, notify, 0, 0.0

    def on_start(self, ev) -> None:
        self._depth += 1
        if self._depth == 1:
            self._start = time.perf_counter()
            if self._notify is not None:
                self._notify(True)

    def on_end(self, ev) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start
            if self._notify is not None:
                self._notify(False)


@contextmanager
def compile_clock(notify: Callable[[bool], None] | None = None) -> Iterator[CompileClock]:
    """A CompileClock listening while the block runs (compilation happens in the calling thread)."""
    clock = CompileClock(notify)
    with event.install_listener("numba:compile", clock):
        yield clock

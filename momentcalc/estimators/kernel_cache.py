"""Cache files of compiled kernels that are checked before numba trusts them, and heal when they are broken.

numba loads a cached kernel by unpickling its index (.nbi) and data (.nbc) files and handing the machine code in
them to LLVM. A file that was cut short, zeroed or had bytes flipped (a full disk, a killed copy, bad storage) then
fails on every later run, since numba never rewrites it: with a traceback, or with no chance to catch anything
(LLVM aborts, or the damaged code runs into SIGILL or SIGSEGV). So each file momentcalc's kernels write starts
with a magic and the SHA-256 of the rest, checked before a byte of it is unpickled; a file that fails the check, or
whose kernel fails to load in any other way, is removed with one line on stderr, and numba compiles and saves the
kernel again. A cache folder that cannot be written (no home, a read-only install) leaves the kernels compiled in
memory, with one line too.

The lines go through logging ("momentcalc.kernels"): with no logging set up, Python prints a warning's message
alone on stderr; an application that set up logging gets them where it sends its own.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import pickle

from numba.core import caching

log = logging.getLogger("momentcalc.kernels")

MAGIC = b"MCKERN1\n"  # a file of ours: MAGIC, SHA-256 of the payload, the payload (what numba would write)
_DIGEST_BYTES = 32
_PICKLE = b"\x80"  # how numba's own (unchecked) index starts: a pickle of protocol 2 or later


class BrokenEntry(Exception):
    """A cache file that fails its check: cut short, zeroed, bytes changed, or not numba's format."""


def seal(payload: bytes) -> bytes:
    """The bytes of a cache file holding `payload`."""
    return MAGIC + hashlib.sha256(payload).digest() + payload


def unseal(data: bytes, path: str) -> bytes:
    """The payload of a cache file's bytes; BrokenEntry if they fail the check."""
    head = len(MAGIC) + _DIGEST_BYTES
    if len(data) < head or not data.startswith(MAGIC):
        raise BrokenEntry(f"{os.path.basename(path)} is not a checked cache file ({len(data)} bytes)")
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : head]:
        raise BrokenEntry(f"{os.path.basename(path)} does not match its checksum")
    return payload


class CheckedCacheFile(caching.IndexDataCacheFile):
    """numba's index and data files, each sealed (seal/unseal) and checked before it is unpickled."""

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        if data.startswith(_PICKLE):
            return {}  # numba's own format, left by a momentcalc before this one: stale, replaced when saved
        payload = unseal(data, self._index_path)
        version, stamp, overloads = pickle.loads(payload)
        if version != self._version or stamp != self._source_stamp:
            return {}  # another numba, or edited sources: compiled again, and the index replaced
        return overloads

    def _save_index(self, overloads):
        payload = self._dump((self._version, self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            f.write(seal(payload))

    def _load_data(self, name):
        path = self._data_path(name)
        with open(path, "rb") as f:
            data = f.read()
        return pickle.loads(unseal(data, path))

    def _save_data(self, name, data):
        with self._open_for_write(self._data_path(name)) as f:
            f.write(seal(self._dump(data)))

    def remove_all(self) -> list[str]:
        """Remove the index and every data file of this function; the names of those removed."""
        base = self._index_path[: -len(".nbi")]
        removed = []
        for path in [self._index_path, *glob.glob(glob.escape(base) + ".*.nbc")]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        return removed


class HealingCache(caching.FunctionCache):
    """numba's cache of one function, over a CheckedCacheFile: an entry that fails to load for any reason is removed
    (one line on stderr) and the kernel compiled again; a save that fails (a full disk) only leaves it unsaved."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 (whatever broke, the cure is the same: compile it again)
            removed = self._cache_file.remove_all()
            where = os.path.dirname(removed[0]) if removed else self._cache_path
            log.warning(
                "momentcalc: the cached kernel %s in %s could not be loaded (%s: %s); removed it, compiling again",
                self._py_func.__qualname__,
                where,
                type(error).__name__,
                " ".join(str(error).split())[:200],
            )
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except (OSError, BrokenEntry) as error:
            _warn_once(
                f"momentcalc: could not save compiled kernels in {self._cache_path} ({error}); later runs "
                "compile them again"
            )


def heal(dispatcher) -> None:
    """Make a numba dispatcher's disk cache a HealingCache over a CheckedCacheFile (cheaply: no second lookup)."""
    cache = dispatcher._cache
    if not isinstance(cache, caching.FunctionCache):
        return  # caching off (NullCache)
    cache.__class__ = HealingCache
    old = cache._cache_file
    cache._cache_file = CheckedCacheFile(old._cache_path, cache._impl.filename_base, old._source_stamp)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def no_cache_folder() -> None:
    """Say, once per process, that kernels are compiled in memory for want of a cache folder."""
    _warn_once(
        "momentcalc: no folder to cache compiled kernels in (none of the package's folder, MOMENTCALC_KERNELS, "
        "NUMBA_CACHE_DIR and the user's cache can be written); compiling them in memory, in every run"
    )

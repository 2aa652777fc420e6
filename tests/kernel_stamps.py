"""Test files whose numba kernels inline the package's kernel code, cached under the package sources' stamp."""

from pathlib import Path

from momentcalc.estimators import jit


def stamp_kernels_of(py_file: str) -> None:
    """Cache the jit kernels of `py_file`, a file outside the package that inlines the package's kernel code,
    under jit.sources_stamp() too: keyed on their own file alone they would load stale code after a package kernel
    was edited, and uncached they would compile again in every process."""
    jit.MIRRORS.add(Path(py_file).resolve())

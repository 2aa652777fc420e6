"""Compile the Monte Carlo kernels of a long list of specs in a child process, ahead of the entries that need them.

numba compiles in the calling thread and holds the GIL while it does, so a cold
`tables build` compiled its twenty-odd kernels one after another on one core.
``Ahead`` starts a child process (``python -m momentcalc.warmup SPEC...``) that
compiles the kernels of the later specs, last first, into numba's disk cache
(the child inherits NUMBA_CACHE_DIR, and its source stamp is this process's),
while this process runs the entries in order and compiles the first ones itself;
past the point where they meet, this process loads what the child compiled,
and the child is stopped. A kernel loaded from the cache is the one this process
would have compiled, so no result changes.

The child starts only where it can pay: after the first entry compiled something
(a cold cache: a warm one would have it load every kernel for nothing), with
more than one CPU, and not when the chunks run on a Dask cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence

from .errors import MomentcalcError
from .estimators import NotApplicable


class Ahead:
    """Kernels of specs[i] compiled in a child while this process works through the specs in order."""

    def __init__(self, specs: Sequence[str], enabled: bool = True):
        self.specs, self.enabled = list(specs), enabled and (os.cpu_count() or 1) > 1
        self.child: subprocess.Popen | None = None
        self.lowest = len(self.specs)  # the child works on specs[lowest - 1] (it has done lowest and above)

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def first_done(self, compiled_seconds: float) -> None:
        """Entry 0 is done, having compiled for this long: start the child on specs[1:] if that was a cold start."""
        if self.enabled and compiled_seconds > 0.0 and len(self.specs) > 2 and self.child is None:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "momentcalc.warmup", *reversed(self.specs[1:])],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            threading.Thread(target=self._follow, args=(self.child,), daemon=True).start()

    def starting(self, index: int) -> None:
        """This process starts entry `index`: stop the child once it has nothing left that this process needs."""
        if self.child is not None and self.lowest <= index + 1:
            self.stop()

    def _follow(self, child: subprocess.Popen) -> None:
        # The child prints each spec's index (in self.specs) as it finishes it.
        for line in child.stdout:
            self.lowest = min(self.lowest, int(line))

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()  # numba writes its cache files whole (to a temporary name, then renamed)
            self.child.wait()
            self.child = None


def main(specs: list[str]) -> None:
    """Load or compile the Monte Carlo kernels of each spec, in the order given; print each one's index in the
    parent's list (the specs given are its specs[1:], reversed) as it is done."""
    from . import engine

    for i, text in enumerate(specs):
        try:
            engine.prepare_kernels(text)
        except (MomentcalcError, NotApplicable):
            pass  # the entry itself will say why
        print(len(specs) - i, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

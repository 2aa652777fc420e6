"""normalize: subtract the exact mean and divide by the exact std of what precedes it.

Its constants depend on the whole prefix of the pipeline, so the engine
works them out once (by the most exact method) and hands them to every
method; no method computes them on its own.
"""

from __future__ import annotations

from ..catalog import NORMALIZE, OpInfo, register

register(OpInfo("normalize", NORMALIZE, "subtract the exact mean and divide by the exact std of what precedes it"))

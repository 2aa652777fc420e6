"""Monte Carlo with fused Numba kernels, reproducible to the bit.

The samples are split into chunks of about CHUNK_NORMALS normal draws
(fewer outputs per chunk for wider windows) whose boundaries depend only
on the spec and the sample count. driver.py runs them: chunk j draws from
its own SFC64 stream (normals.py turns its words into normals), slices of
chunks run on numba.get_num_threads() threads in jitted nogil batch kernels,
and their rows are combined in chunk order. So the result has the same bits
on 1 thread or many, and a run with ``tol`` that stops after m chunks equals
a run of exactly those m chunks.

Pipelines with max pooling run in antithetic pairs (antithetic.py, with its
own rows and standard errors). The others sample plainly, with the chunk
statistics of moments.py. This module is the entry point (``run``) and
re-exports what a run is (program.py) and its statistics for the engine,
spatial maps and tests.
"""

from __future__ import annotations

import numpy as np

from ..settings import DEFAULT_SAMPLES, MAX_SAMPLES, Progress, RunSettings  # noqa: F401 (re-exported)
from . import antithetic, driver
from .driver import chunk_generator, chunk_sizes, chunk_states  # noqa: F401 (re-exported: tests)
from .moments import PLAIN_ROWS, Summary, merge, moment_stats, samples_needed, summarize  # noqa: F401
from .program import CHUNK_NORMALS, Program, compile_program, program_chunks, run_chunks  # noqa: F401


def prepare(program: Program) -> None:
    """Load the program's kernel from the disk cache (compile it, on a first run) by running it on no chunks:
    what run() would do first, so that the engine can time it apart from the sampling.

    Also with a Dask scheduler, here (each worker loads it on its first chunk task): a first compile here fills
    numba's cache, from which workers that share it load (a LocalCluster's do). A warm-up task on every worker
    before the chunk tasks did not measurably help: first runs on 2 fresh local workers (bench/cluster.py,
    first_run, two runs at load 4-5) took 3.2 and 3.5 s this way against 6.3 and 6.5 s warmed with a full
    cache, 9.1 and 18.0 s against 26.2 and 14.8 s with an empty one (warmed, N workers compile N times)."""
    states, sizes = np.empty((0, 4), dtype=np.uint64), np.empty(0, dtype=np.int64)
    launch = antithetic.launch(program, 0.0) if program.antithetic else program_chunks(program, 0).launch
    launch(states, sizes)


def run(program: Program, settings: RunSettings = RunSettings()) -> Summary:
    """Plain (or, with max pooling, antithetic) Monte Carlo of the program, as settings say."""
    if program.antithetic:
        return antithetic.run(program, settings)
    return driver.drive(program_chunks(program, settings.seed), PLAIN_ROWS, settings, DEFAULT_SAMPLES)

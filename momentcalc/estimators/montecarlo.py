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

from ..settings import DEFAULT_SAMPLES, MAX_SAMPLES, Progress, RunSettings  # noqa: F401 (re-exported)
from . import antithetic, driver
from .driver import chunk_generator, chunk_sizes, chunk_states  # noqa: F401 (re-exported: tests)
from .moments import PLAIN_ROWS, Summary, merge, moment_stats, samples_needed, summarize  # noqa: F401
from .program import CHUNK_NORMALS, Program, compile_program, program_chunks, run_chunks  # noqa: F401


def run(program: Program, settings: RunSettings = RunSettings()) -> Summary:
    """Plain (or, with max pooling, antithetic) Monte Carlo of the program, as settings say."""
    if program.antithetic:
        return antithetic.run(program, settings)
    return driver.drive(program_chunks(program, settings.seed), PLAIN_ROWS, settings, DEFAULT_SAMPLES)

"""What a Monte Carlo run is: a spec compiled into the flat arrays the kernels interpret, its chunks, its summary.

``compile_program`` turns a spec into ``Program`` arrays (codes and params of
the elementwise stages, the segments between window ops, the window ops'
reductions and sizes); ``program_chunks`` gives the driver its chunks (the
kernels' SFC64 streams and the launch that turns chunks into rows). The plain
statistics live in montecarlo.py, the antithetic ones in antithetic.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import catalog
from .._lazy import lazy_module
from ..ops import dropout as dropout_op
from ..spec import Spec
from . import NotApplicable, chain_kernels, dispatch, dispatch_gen, driver, mc_kernels, moments, normals, support
from .dispatch import CODES

_NAMES = {code: name for name, code in CODES.items()}

quadrature = lazy_module("momentcalc.estimators.quadrature")  # scipy: only pipelines with normalize need it

CHUNK_NORMALS = 1 << 18  # about 1.5 ms of drawing: set-up per chunk costs a few percent
# A full chunk's kernel work, at least (bench/cluster.py: 0.74 ms for 'relu | normalize | maxpool(k=3)' on one
# loaded core; other pipelines take longer): a Dask run groups chunks into tasks of at least its min_task_s on it.
CHUNK_SECONDS = 5e-4


@dataclass(frozen=True)
class Program:
    mu: float
    sigma: float
    codes: np.ndarray
    params: np.ndarray
    seg: np.ndarray
    win_kind: np.ndarray
    win_n: np.ndarray
    # Where the max of the stages before the first window lies when that window is a max pool
    # (mc_kernels.AT_GREATEST, AT_LEAST or both; 0: unknown), from the stages' declared shapes.
    max_at: int = 0
    # When the first stage is a valley op (gelu): its valley_split; the max is then at the greatest input
    # whenever that is >= it. inf: no such shortcut.
    max_split: float = math.inf

    @property
    def act(self) -> int:
        """Which activation the kernels are specialised to: its code, dispatch.NONE or dispatch.MIXED."""
        used = set(self.codes[self.codes > 0].tolist())
        return used.pop() if len(used) == 1 else dispatch.MIXED if used else dispatch.NONE

    def kernel_args(self):
        return (self.mu, self.sigma, self.codes, self.params, self.seg, self.win_kind, self.win_n)

    @property
    def normals_per_output(self) -> int:
        return int(np.prod(self.win_n)) if self.win_n.size else 1

    @property
    def antithetic(self) -> bool:
        """Runs in antithetic pairs (estimators/antithetic.py): pipelines with max pooling, where they pay."""
        return bool(np.any(self.win_kind == mc_kernels.MAX))

    @property
    def chunk(self) -> int:
        """Outputs per chunk: enough work per chunk that its set-up costs little."""
        return max(1, CHUNK_NORMALS // self.normals_per_output)


def compile_program(spec: Spec, mu: float, sigma: float, norms: tuple | None = None) -> Program:
    """Flatten a spec into the arrays the kernel interprets; norms: the constants of its normalize ops, as
    quadrature.normalize_constants gives them (worked out there when not given)."""
    if norms is None and any(op.kind == catalog.NORMALIZE for op in spec.ops):
        norms = quadrature.normalize_constants(spec, mu, sigma)
    codes, params, seg, win_kind, win_n = [], [], [0], [], []
    for depth, op in enumerate(spec.ops):
        if op.kind == catalog.WINDOW:
            seg.append(len(codes))
            win_kind.append(_window_code(op))
            win_n.append(op.window_size)
            continue
        codes_params = _stage(op, norms[depth] if norms else None)
        codes.append(codes_params[0])
        params.append(codes_params[1:])
    seg.append(len(codes))
    first_window = len(seg) > 2 and win_kind[0] == mc_kernels.MAX
    return Program(
        float(mu),
        float(sigma),
        np.array(codes, dtype=np.int64),
        np.array(params, dtype=np.float64).reshape(len(codes), 2),
        np.array(seg, dtype=np.int64),
        np.array(win_kind, dtype=np.int64),
        np.array(win_n, dtype=np.int64),
        _max_at(codes[: seg[1]], params[: seg[1]]) if first_window else 0,
        _max_split(codes[: seg[1]]) if first_window else math.inf,
    )


def skip_program(inner: Program, a: float, b: float) -> Program:
    """y = a x + b F(x), F the chain of `inner` (elementwise stages, no windows): F's stages between a skip
    connection's two ends (mc_kernels.SKIP_OPEN, SKIP_CLOSE), for the chain kernel, which alone knows them."""
    if inner.win_n.size:
        raise NotApplicable("a skip connection takes a chain of elementwise stages, not window ops")
    codes = np.concatenate(([mc_kernels.SKIP_OPEN], inner.codes, [mc_kernels.SKIP_CLOSE])).astype(np.int64)
    params = np.concatenate(([[0.0, 0.0]], inner.params, [[a, b]])).reshape(len(codes), 2)
    empty = np.empty(0, dtype=np.int64)
    return Program(inner.mu, inner.sigma, codes, params, np.array([0, len(codes)], dtype=np.int64), empty, empty)


# Shapes of a chain of stages: how a max over a window of its outputs can be found from the window's least and
# greatest inputs alone. A valley falls, then rises (gelu); a peak rises, then falls. None: neither.
RISING, FALLING, VALLEY, PEAK = "rising", "falling", "valley", "peak"
_FLIPPED = {RISING: FALLING, FALLING: RISING, VALLEY: PEAK, PEAK: VALLEY}
_AT = {
    RISING: mc_kernels.AT_GREATEST,
    FALLING: mc_kernels.AT_LEAST,
    VALLEY: mc_kernels.AT_GREATEST | mc_kernels.AT_LEAST,
}


def _max_at(codes: list[int], params: list[tuple[float, float]]) -> int:
    """Where the max of these stages over a window lies (mc_kernels.AT_*), 0 where their shapes do not tell."""
    shape = RISING
    for code, (_, b) in zip(codes, params):
        shape = _then(shape, _stage_shape(code, b))
    return _AT.get(shape, 0)


def _max_split(codes: list[int]) -> float:
    """The first stage's valley_split if it is a valley op (its input is then the window's own)."""
    info = catalog.lookup(_NAMES[codes[0]]) if codes and codes[0] > 0 else None
    return info.valley_split if info is not None and info.valley else math.inf


def _stage_shape(code: int, b: float) -> str | None:
    if code == mc_kernels.AFFINE:
        return RISING if b > 0.0 else FALLING if b < 0.0 else None
    if code > 0:
        info = catalog.lookup(_NAMES[code])
        return RISING if info.monotone else VALLEY if info.valley else None
    return None  # dropout: random


def _then(shape: str | None, stage: str | None) -> str | None:
    """The shape of stage(chain(x)) from the chain's shape and the stage's."""
    if shape is None or stage is None:
        return None
    if stage in (RISING, FALLING):
        return shape if stage == RISING else _FLIPPED[shape]
    # A valley or a peak after a monotone chain keeps its shape; after another valley or peak, no telling.
    return stage if shape in (RISING, FALLING) else None


declines = support.kernels  # read from the declaration alone (`momentcalc list` asks without loading numba)


def _window_code(op) -> int:
    if op.info.reduction not in mc_kernels.REDUCTION_CODES:
        raise NotApplicable(f"the Monte Carlo kernels do not know the reduction {op.info.reduction!r} of {op}")
    return mc_kernels.REDUCTION_CODES[op.info.reduction]


def _stage(op, norm: tuple | None) -> tuple[int, float, float]:
    if op.kind == catalog.ELEMENTWISE:
        dispatch_gen.require_fresh(CODES)
        if op.name not in CODES:
            raise NotApplicable(f"the Monte Carlo kernels have no compiled function for {op}")
        return (CODES[op.name], *op.info.args(op))
    if op.kind == catalog.DROPOUT:
        p = op.get("p")
        return (mc_kernels.DROPOUT, p, 1.0 / dropout_op.divisor(p, op.get("scale")))
    if op.kind == catalog.NORMALIZE:
        mean, std = norm[:2]
        return (mc_kernels.AFFINE, -mean / std, 1.0 / std)
    raise NotApplicable(f"Monte Carlo does not know ops of kind {op.kind!r} ({op})")


def program_chunks(
    program: Program, seed: int, launch: driver.Launch | None = None, size: int | None = None
) -> driver.Chunks:
    """The program's chunks for the driver: kernel streams of `seed`, plain moments unless another launch is given."""
    return driver.Chunks(
        size or program.chunk,
        partial(driver.chunk_states, seed),
        launch or _plain_launch(program),
        seconds=CHUNK_SECONDS * (size or program.chunk) / program.chunk,
    )


def run_chunks(
    program: Program, seed: int, first: int, sizes: list[int], launch: driver.Launch | None = None
) -> np.ndarray:
    """Rows of chunks first, first+1, ..., in chunk order, from `launch` (plain moments by default).

    A plain row is [n, mean, M2, M3, M4] of the output, followed for chains
    without windows by the same for the squared derivative.
    """
    return driver.run_chunks(program_chunks(program, seed, launch), first, sizes)


def _plain_launch(program: Program) -> driver.Launch:
    """The plain kernel for the program's shape, specialised to its activation: a first run compiles only it.
    Its rows of sums become rows of moments here (moments.central_rows, chain_rows)."""
    p = program
    if p.win_n.size == 0 and p.codes.size == 1 and p.codes[0] > 0:
        code, a, b = int(p.codes[0]), float(p.params[0, 0]), float(p.params[0, 1])
        rows = dispatch.kernel("activation", code)
        return _chain_launch(
            lambda states, counts, out: rows(states, counts, p.mu, p.sigma, code, a, b, out, *_fused_buffers())
        )
    if p.win_n.size == 0:
        rows = dispatch.kernel("chain", p.act)
        return _chain_launch(
            lambda states, counts, out: rows(states, counts, p.mu, p.sigma, p.codes, p.params, out, *_chain_buffers())
        )
    n = p.normals_per_output
    if p.win_n.size == 1 and p.codes.size == 0:
        kind = int(p.win_kind[0])
        kernel = mc_kernels.bare_window_rows
        return _window_launch(
            lambda states, counts, out: kernel(states, counts, p.mu, p.sigma, kind, n, out, *window_buffers(n))
        )
    if p.win_n.size == 1:
        rows = dispatch.kernel("one_window", p.act)
        args = (*p.kernel_args(), p.max_at, p.max_split)
        return _window_launch(lambda states, counts, out: rows(states, counts, *args, out, *window_buffers(n)))
    rows = dispatch.kernel("nested", p.act)
    return _window_launch(
        lambda states, counts, out: rows(states, counts, *p.kernel_args(), out, *window_buffers(n), *level_buffers(p))
    )


def _rows_launch(width: int, finish: Callable[[np.ndarray], np.ndarray]):
    """Launches from kernels that fill rows of `width` raw sums per chunk, which `finish` makes rows of moments."""

    def wrap(fill: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> driver.Launch:
        def launch(states: np.ndarray, counts: np.ndarray) -> np.ndarray:
            out = np.zeros((len(counts), width))
            fill(states, counts, out)
            return finish(out)

        return launch

    return wrap


_window_launch = _rows_launch(mc_kernels.PLAIN_SUMS, moments.central_rows)
_chain_launch = _rows_launch(chain_kernels.CHAIN_SUMS, moments.chain_rows)


# The kernels' scratch arrays, allocated here in numpy (each np.empty inside a kernel is one more function for
# numba to compile on a first run): a fresh set per launch, as launches run on several threads at once.
def window_buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """normals.buffers for the window kernels: a fill's worth of outputs of n inputs each."""
    return normals.buffers(normals.BLOCK // n * n if n <= normals.BLOCK else n)


def values_buffers(n: int) -> tuple[np.ndarray, ...]:
    """(xs, both, e, e2, scale, ys) of the batched max-pool pair kernel (pair_kernels.one_window_pair_values_rows),
    for fills of normals.per_fill(n) windows: up to two inputs for each of their two outputs a window."""
    per = max(1, normals.BLOCK // n)
    size = 4 * per
    xs, e, e2, scale = np.empty(size), np.empty(size), np.empty(size), np.empty(size, dtype=np.int64)
    return xs, np.empty(2 * per, dtype=np.bool_), e, e2, scale, np.empty(2 * per)


def level_buffers(program: Program) -> tuple[np.ndarray, np.ndarray]:
    """(acc, cnt): the nested windows' accumulators and counts, one per window op."""
    levels = program.win_n.size
    return np.zeros(levels), np.zeros(levels, dtype=np.int64)


def _chain_buffers() -> tuple:
    """(z, missed, words, g, acc) of the chain kernel."""
    return (*normals.buffers(normals.BLOCK), np.empty(normals.BLOCK), np.zeros(6))


def _fused_buffers() -> tuple:
    """(z, missed, words, e, e2, scale, acc) of the activation kernels (fused or not)."""
    block = normals.BLOCK
    return (*normals.buffers(block), np.empty(block), np.empty(block), np.empty(block, dtype=np.int64), np.zeros(6))

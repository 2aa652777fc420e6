"""Monte Carlo over whole simulated maps, in numpy: the ops of a spec as stages over batches of maps, run by the
Monte Carlo driver (estimators/driver.py) in chunks merged in chunk order, with per-position moments and
standard errors."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from .. import catalog
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..estimators import NotApplicable, quadrature, vectorized
from ..ops import dropout as dropout_op
from ..ops import pooling
from ..settings import MAX_SAMPLES, MIN_CUT_SAMPLES, RunSettings
from ..spec import Op, Spec
from .results import MapEstimate

# The sampling code imports numba (0.5 s): exact-only runs of a map (`--method closed`) never need it.
driver = lazy_module("momentcalc.estimators.driver")
moments = lazy_module("momentcalc.estimators.moments")

CHUNK_VALUES = 1 << 18  # input values per chunk of simulated maps
DEFAULT_VALUES = 1 << 24  # input values simulated by default: samples = DEFAULT_VALUES / I^dims maps
MIN_DEFAULT_MAPS = 1 << 10


def pool_nd(
    x: np.ndarray, dims: int, k: int, s: int, p: int, ufunc: str, pad: float, count_include_pad: bool = True
) -> np.ndarray:
    """Pooling over the last dims axes as PyTorch does: numpy's `ufunc` over each window, padded with `pad`
    (pooling.MAP_REDUCE: maximum with -inf, add with 0). A sum ("add") is divided into a mean: by k**dims,
    or with count_include_pad=False by each window's real inputs only."""
    width = x.shape[-1]
    o = (width + 2 * p - k) // s + 1
    xp = np.pad(x, [(0, 0)] * (x.ndim - dims) + [(p, p)] * dims, constant_values=pad)
    combine = getattr(np, ufunc)
    out = None
    for taps in itertools.product(range(k), repeat=dims):
        view = xp[(...,) + tuple(slice(t, t + s * (o - 1) + 1, s) for t in taps)]
        out = view.copy() if out is None else combine(out, view, out=out)
    if ufunc != "add":
        return out
    if count_include_pad:
        return out / k**dims
    return out / (pool_nd(np.ones((width,) * dims), dims, k, s, p, "add", 0.0) * k**dims)


def _map_stages(spec: Spec, dims: int, mu: float, sigma: float) -> list[Callable]:
    """One function (maps, generator) -> maps per op of the spec."""
    stages = []
    for depth, op in enumerate(spec.ops):
        if op.kind == catalog.ELEMENTWISE:
            f = vectorized.jitted_arrays(op)[0]
            stages.append(lambda x, gen, f=f: f(x))
        elif op.kind == catalog.DROPOUT:
            keep, c = op.get("p"), dropout_op.divisor(op.get("p"), op.get("scale"))
            stages.append(lambda x, gen, keep=keep, c=c: np.where(gen.random(x.shape) < keep, x / c, 0.0))
        elif op.kind == catalog.NORMALIZE:
            try:
                mean, std = quadrature.normalize_constants(spec, mu, sigma)[depth][:2]
            except NotApplicable as why:
                raise MomentcalcError(str(why)) from None
            stages.append(lambda x, gen, m=mean, sd=std: (x - m) / sd)
        elif op.kind == catalog.WINDOW:
            stages.append(_window_stage(op, dims))
        else:
            raise MomentcalcError(f"whole-map Monte Carlo does not know ops of kind {op.kind!r} ({op})")
    return stages


def _window_stage(op: Op, dims: int) -> Callable:
    # pool_nd, not tests/reference_conv.py's maxpool2d/avgpool2d: it reduces tap by tap instead of stacking
    # all k^dims taps (4x faster); the tests check it against reference_conv.
    k, p = op.get("k"), op.get("p")
    s = op.get("s") or k
    if op.info.reduction not in pooling.MAP_REDUCE:
        raise MomentcalcError(f"whole-map Monte Carlo does not know the reduction {op.info.reduction!r} of {op}")
    ufunc, pad = pooling.MAP_REDUCE[op.info.reduction]
    include = bool(op.get("count_include_pad", True))
    return lambda x, gen: pool_nd(x, dims, k, s, p, ufunc, pad, include)


def _chunk_moments(y: np.ndarray) -> np.ndarray:
    """[n, mean, M2, M3, M4] per output position of a batch of maps: shape (5, positions)."""
    y = y.reshape(y.shape[0], -1)
    m = y.mean(axis=0)
    d = y - m
    d2 = d * d
    return np.stack([np.full_like(m, y.shape[0]), m, d2.sum(axis=0), (d2 * d).sum(axis=0), (d2 * d2).sum(axis=0)])


def _map_launch(stages: list[Callable], dims: int, size: int, mu: float, sigma: float) -> driver.Launch:
    """Rows (5, positions) of chunks of maps, one generator per chunk: the driver runs slices on its threads."""

    def launch(gens, counts) -> np.ndarray:
        return np.stack([_chunk_rows(stages, dims, size, mu, sigma, gen, int(n)) for gen, n in zip(gens, counts)])

    return launch


def _chunk_rows(stages, dims, size, mu, sigma, gen: np.random.Generator, maps: int) -> np.ndarray:
    """Moments per position of one chunk of maps: inputs, then dropout masks, drawn from the chunk's generator."""
    x = mu + sigma * gen.standard_normal((maps,) + (size,) * dims)
    for stage in stages:
        x = stage(x, gen)
    return _chunk_moments(x)


@dataclass(frozen=True)
class MapSummary:
    """Per-position moments and standard errors of whole-map rows: the rows kind of maps for the driver."""

    mean: np.ndarray
    std: np.ndarray
    mean_se: np.ndarray
    std_se: np.ndarray
    samples: int

    def within(self, tol: float) -> bool:
        """Every position's standard errors at most tol: the worst one decides where a tol run stops."""
        return self.mean_se.max() <= tol and self.std_se.max() <= tol


def _fold(rows: np.ndarray) -> np.ndarray:
    """Rows merged into one as they come (merge is a left fold, so the bits are those of merging all at the end):
    a 512 x 512 map's 1024 chunk rows held to the end took 10 GB."""
    return moments.merge(rows)[None]


def _summarize(rows: np.ndarray) -> MapSummary:
    merged = moments.merge(rows)
    return MapSummary(*moments.moment_stats(merged), int(merged[0].flat[0]))


def _maps_needed(rows: np.ndarray, tol: float) -> int:
    """Maps that bring every position's standard errors down to tol."""
    return moments.samples_needed(moments.merge(rows), tol)


def _map_rows(size: int, dims: int) -> driver.Rows:
    """The rows kind of maps: per-position statistics, and at most MAX_SAMPLES values in a tol run."""
    return driver.Rows(_summarize, _maps_needed, MAX_SAMPLES // size**dims, f"maps of side {size}")


def _default_maps(size: int, dims: int) -> int:
    return max(MIN_DEFAULT_MAPS, DEFAULT_VALUES // size**dims)


def maps_within_budget(settings: RunSettings, per_map: int, size: int, dims: int) -> RunSettings:
    """settings whose map count fits MAX_SAMPLES values touched, refused up front where even the least does not."""
    if per_map * MIN_CUT_SAMPLES > MAX_SAMPLES:
        raise MomentcalcError(
            f"size={size}: one simulated map touches {per_map:.2g} values, and the {MIN_CUT_SAMPLES} maps of the "
            f"smallest check {per_map * MIN_CUT_SAMPLES:.2g}, more than the {MAX_SAMPLES:.2g} allowed; use --method "
            "quadrature (exact values only), or a smaller size"
        )
    if settings.samples is not None and settings.samples * per_map > MAX_SAMPLES:
        raise MomentcalcError(
            f"samples={settings.samples} maps of {per_map:,} values touched each is more than the "
            f"{MAX_SAMPLES:.2g} values allowed; use samples <= {MAX_SAMPLES // per_map}"
        )
    if settings.samples is None and settings.tol is None and _default_maps(size, dims) * per_map > MAX_SAMPLES:
        return replace(settings, samples=MAX_SAMPLES // per_map)
    return replace(settings, max_samples=min(settings.max_samples, MAX_SAMPLES // per_map))


MAP_BATCH = 4  # chunks of maps per thread between progress reports: 15-20 ms of numpy work each


def simulate(
    spec: Spec, dims: int, size: int, mu: float, sigma: float, settings: RunSettings, out_shape: tuple
) -> MapEstimate:
    """Per-position moments from whole simulated maps (chunks of maps through the driver, merged in chunk order)."""
    start = time.perf_counter()
    launch = _map_launch(_map_stages(spec, dims, mu, sigma), dims, size, mu, sigma)
    per_chunk = max(1, CHUNK_VALUES // size**dims)
    chunks = driver.Chunks(per_chunk, partial(driver.generators, settings.seed), launch, MAP_BATCH, fold=_fold)
    s = driver.drive(chunks, _map_rows(size, dims), settings, _default_maps(size, dims))
    mean, std, mean_se, std_se = (a.reshape(out_shape) for a in (s.mean, s.std, s.mean_se, s.std_se))
    return MapEstimate(mean, std, mean_se, std_se, s.samples, settings.seed, time.perf_counter() - start)

"""Per-position moments of a pooled feature map: what borders, stride and padding do.

Without a size, a window op means an interior window of n iid inputs, and
stride and padding change nothing. On a map of side I (I x I for dims=2,
I for dims=1, I^3 for dims=3) border windows hold r < n real inputs:

* max pooling pads with -inf, so a window with r real inputs is the max of
  r iid copies of its input;
* average pooling divides the sum of its r real inputs by n
  (count_include_pad=true: the padding zeros count, mean r m / n, variance
  r v / n^2) or by r (false: an average of r iid copies).

Output positions fall into window kinds. A kind is the shape of a position's
receptive field, one axis at a time: for each window op, which inputs below
each window reads, up to translation and mirroring, and up to swapping axes.
Positions of one kind are identically distributed (the inputs are iid and
the pooling is symmetric), so each kind has one mean and one std.

Exact values, where the last window op sees iid inputs (every earlier window
op has s >= k and p = 0, so its windows neither overlap nor touch padding):
the spec's prefix followed by ``maxpool(n=r)`` or ``avgpool(n=r)`` and the
rest of the spec, or the scaled moments above. Also exact:
avgpool(k1, s1 < k1) | f | avgpool(k2) without padding, f piecewise polynomial
(relu, leaky_relu, abs, ...): the overlapping first averages are jointly
normal, with correlations from their overlaps, so the last average's variance
follows from the certified correlation map K(c) of f (_correlated_windows).
Elsewhere (overlapping earlier
windows correlate the inputs of later ones; a normalize after the last window
uses the interior constants, not the border ones) Monte Carlo over whole
simulated maps gives the values; it also runs as the independent check of the
exact values, position by position. The maps run through the Monte Carlo
driver (estimators/driver.py): chunk j of the maps draws from
``driver.chunk_generator(seed, j)`` and chunks merge in order, so results
have the same bits on any machine and any number of threads.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from . import catalog
from ._lazy import lazy_module
from .convshape import conv_shape
from .errors import MomentcalcError
from .estimators import NotApplicable, closed, quadrature, vectorized
from .ops import dropout as dropout_op
from .ops import pooling
from .result import MIN_SAMPLES, Verdict
from .settings import MAX_SAMPLES, MIN_CUT_SAMPLES, RunSettings
from .spec import Op, Spec

# The sampling code imports numba (0.5 s): exact-only runs of a map (`--method closed`) never need it.
driver = lazy_module("momentcalc.estimators.driver")
moments = lazy_module("momentcalc.estimators.moments")

certified_kernel = lazy_module("momentcalc.estimators.certified_kernel")  # python-flint: correlated windows only

CHUNK_VALUES = 1 << 18  # input values per chunk of simulated maps
DEFAULT_VALUES = 1 << 24  # input values simulated by default: samples = DEFAULT_VALUES / I^dims maps
MIN_DEFAULT_MAPS = 1 << 10
MAX_MAP_VALUES = 1 << 18  # one map at most this many inputs: 512 x 512 peaks at 720 MB (positions, rows, JSON)
MAX_KINDS = 256  # kinds of output position, each an exact computation (a quadrature of up to a second)
MAX_GEOMETRY = 1 << 24  # window reads listed per axis to find the kinds: sum over window ops of outputs x k
_CLASS_NAMES = {
    1: ("interior", "ends"),
    2: ("interior", "edges", "corners"),
    3: ("interior", "faces", "edges", "corners"),
}


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class WindowKind:
    """Output positions whose values are identically distributed, and their moments."""

    label: str  # where they are: 'interior', 'edges', 'corners', 'faces', 'ends', or several joined by ' + '
    real_inputs: int | None  # real (non-padding) inputs of the last window; None without a window op
    positions: tuple[tuple[int, ...], ...]
    mean: float
    std: float
    mean_se: float  # exact: the error bound (0 for closed forms); Monte Carlo: a standard error
    std_se: float
    method: str  # 'closed', 'quadrature', 'montecarlo', or '... + certified K(c)' (correlated windows)
    exact_spec: str | None = None  # what the exact values are the moments of, e.g. 'relu | maxpool(n=4)'
    note: str | None = None  # why there is no exact value, where there is none

    @property
    def count(self) -> int:
        return len(self.positions)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "real_inputs": self.real_inputs,
            "count": self.count,
            "positions": [list(p) for p in self.positions],
            "mean": self.mean,
            "std": self.std,
            "mean_se": self.mean_se,
            "std_se": self.std_se,
            "method": self.method,
            "exact_spec": self.exact_spec,
            "note": self.note,
        }


@dataclass(frozen=True)
class MapEstimate:
    """Monte Carlo over whole maps: per-position moments and their standard errors."""

    mean: np.ndarray
    std: np.ndarray
    mean_se: np.ndarray
    std_se: np.ndarray
    samples: int  # simulated maps
    seed: int
    seconds: float

    def to_dict(self) -> dict:
        return {
            "mean_map": self.mean.tolist(),
            "std_map": self.std.tolist(),
            "mean_se_map": self.mean_se.tolist(),
            "std_se_map": self.std_se.tolist(),
            "samples": self.samples,
            "seed": self.seed,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class MapCheck:
    """Exact value of one kind vs Monte Carlo at each of its positions: the worst z-score."""

    kind: str
    kind_index: int  # into SpatialResult.kinds
    quantity: str  # 'mean' or 'std'
    max_z: float
    worst: tuple[int, ...]
    z: float  # the z asked for, as for one comparison
    limit: float  # what max_z is held to: z corrected for the number of positions (family_z)

    @property
    def ok(self) -> bool:
        return self.max_z <= self.limit

    @property
    def pair(self) -> str:
        return f"{self.kind} ({self.quantity}) at {self.worst}"


@dataclass(frozen=True)
class SpatialResult(Verdict):
    """Moments of every output position of a spec applied to a map of iid N(mu, sigma^2) inputs.

    The maps hold the value of record per position: the exact value of its
    kind where there is one, else the Monte Carlo mean over the positions of
    its kind (with the mean of their standard errors, an upper bound for the
    SE of that average).
    """

    spec: str
    mu: float
    sigma: float
    dims: int
    size: int
    output_size: int
    mean_map: np.ndarray
    std_map: np.ndarray
    mean_se_map: np.ndarray
    std_se_map: np.ndarray
    kinds: tuple[WindowKind, ...]
    montecarlo: MapEstimate | None
    checks: tuple[MapCheck, ...]

    @property
    def input(self) -> dict:
        return {"mu": self.mu, "sigma": self.sigma}

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(sorted({k.method for k in self.kinds}))

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "input": self.input,
            "dims": self.dims,
            "size": self.size,
            "output_size": self.output_size,
            "mean_map": self.mean_map.tolist(),
            "std_map": self.std_map.tolist(),
            "mean_se_map": self.mean_se_map.tolist(),
            "std_se_map": self.std_se_map.tolist(),
            "kinds": [k.to_dict() for k in self.kinds],
            "montecarlo": None if self.montecarlo is None else self.montecarlo.to_dict(),
            "checks": [
                {
                    "kind": c.kind,
                    "kind_index": c.kind_index,
                    "quantity": c.quantity,
                    "max_z": c.max_z,
                    "worst": list(c.worst),
                    "z": c.z,
                    "limit": c.limit,
                    "ok": c.ok,
                }
                for c in self.checks
            ],
            "agree": self.agree,
            "disagreements": self.disagreements,
        }


# --- geometry --------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One window op on the map, per axis: it reads size_in values and gives size_out."""

    depth: int  # its index in the spec
    op: Op
    k: int
    s: int
    p: int
    size_in: int
    size_out: int

    def reads(self, u: int, clip: bool = True) -> list[int]:
        """Indices below that window u reads; with clip, the real ones only (not padding)."""
        start = u * self.s - self.p
        return [t for t in range(start, start + self.k) if not clip or 0 <= t < self.size_in]


def layers_of(spec: Spec, size: int) -> tuple[int, list[Layer]]:
    """(dims, the window ops with their map sizes); MomentcalcError where a window does not fit."""
    dims, layers, width = None, [], size
    for depth, op in enumerate(spec.ops):
        if op.kind != catalog.WINDOW:
            continue
        if op.get("n") is not None:
            raise MomentcalcError(
                f"size= needs window shapes: '{op}' gives only a count n; write it with k=, e.g. {op.name}(k=3)"
            )
        if dims is not None and op.get("dims") != dims:
            raise MomentcalcError(
                f"size= needs every window op of '{spec}' on maps of the same dims, got dims {dims} and "
                f"{op.get('dims')}"
            )
        dims = op.get("dims")
        k, p = op.get("k"), op.get("p")
        s = op.get("s") or k
        try:
            shape = conv_shape(width, k, s, p, pool=True)
        except MomentcalcError as why:
            raise MomentcalcError(
                f"size={size}: '{op}' (stage {depth + 1}) gets a map of side {width}: {why}"
            ) from None
        layers.append(Layer(depth, op, k, s, p, width, shape.output))
        width = shape.output
    return dims or 2, layers


def axis_signature(layers: list[Layer], j: int, clip: bool = True) -> tuple:
    """The receptive field of output index j along one axis, up to translation and mirroring.

    For each window op from the last down: which indices below each window
    reads (its real ones with clip; all k without, as deep inside a map).
    """
    nodes, levels = [j], []
    for layer in reversed(layers):
        reads = {u: layer.reads(u, clip) for u in nodes}
        below = sorted(set().union(*reads.values()))
        levels.append((nodes, reads, below))
        nodes = below

    def encode(sign: int) -> tuple:
        out = []
        for nodes, reads, below in levels:
            top, base = min(sign * u for u in nodes), min(sign * t for t in below)
            out.append(tuple(sorted((sign * u - top, tuple(sorted(sign * t - base for t in reads[u]))) for u in nodes)))
        return tuple(out)

    return min(encode(1), encode(-1))


@dataclass(frozen=True)
class _Group:
    key: tuple
    positions: tuple[tuple[int, ...], ...]
    label: str
    real_inputs: int | None


def group_positions(layers: list[Layer], dims: int, size: int) -> list[_Group]:
    """Output positions grouped by kind: the interior first, then edges, corners (most frequent first among equals)."""
    width = layers[-1].size_out if layers else size
    sig = [axis_signature(layers, j) for j in range(width)]
    border = [sig[j] != axis_signature(layers, j, clip=False) for j in range(width)]
    real = [len(layers[-1].reads(j)) for j in range(width)] if layers else None
    found: dict[tuple, list] = {}
    classes: dict[tuple, set] = {}
    for pos in itertools.product(range(width), repeat=dims):
        key = tuple(sorted(sig[j] for j in pos))
        found.setdefault(key, []).append(pos)
        classes.setdefault(key, set()).add(sum(border[j] for j in pos))
    names = _CLASS_NAMES[dims]
    groups = [
        _Group(
            key,
            tuple(positions),
            " + ".join(names[c] for c in sorted(classes[key])),
            None if real is None else math.prod(real[j] for j in positions[0]),
        )
        for key, positions in found.items()
    ]
    return sorted(groups, key=lambda g: (min(classes[g.key]), -len(g.positions), g.positions[0]))


# --- exact values per kind ---------------------------------------------------------


def _exact(spec: Spec, mu: float, sigma: float) -> tuple[float, float, float, float, str]:
    """(mean, std, mean error, std error, method) by the most exact method; NotApplicable if none."""
    if not spec.ops:
        return mu, sigma, 0.0, 0.0, "closed"
    if len(spec.ops) == 1:
        try:
            m = closed.estimate_moments(spec, mu, sigma)
            if m.std is not None:
                return m.mean, m.std, m.mean_err, m.std_err, "closed"
        except NotApplicable:
            pass
    return (*quadrature.estimate_moments(spec, mu, sigma), "quadrature")


def _exact_for(spec: Spec, layers: list[Layer], r: int | None, mu: float, sigma: float):
    """(mean, std, mean error, std error, method, what) of a kind with r real inputs, or a str saying why none."""
    if not layers:
        return (*_exact(spec, mu, sigma), str(spec))
    if any(layer.s < layer.k or layer.p > 0 for layer in layers[:-1]):
        correlated = _correlated_windows(spec, layers, r, mu, sigma)
        if correlated is not None:
            return correlated
        return "an earlier window op overlaps or pads, so the last one sees correlated or unequal inputs"
    last = layers[-1]
    # Trailing normalize ops are affine maps with the interior constants: apply them to the moments.
    end = len(spec.ops)
    while end > last.depth + 1 and spec.ops[end - 1].kind == catalog.NORMALIZE:
        end -= 1
    prefix, suffix = spec.ops[: last.depth], spec.ops[last.depth + 1 : end]
    if any(op.kind == catalog.NORMALIZE for op in suffix):
        return "a normalize between ops after the last window op: it uses the interior constants"
    n = last.op.window_size
    scaled = last.op.info.reduction == pooling.MEAN and last.op.get("count_include_pad") and r < n
    if scaled and suffix:
        return f"ops after a border average (a sum of {r} over {n}) have no exact method here"
    try:
        kind_spec = Spec(prefix + (Op(last.op.name, (("n", r),)),) + suffix)
        mean, std, mean_err, std_err, method = _exact(kind_spec, mu, sigma)
        what = str(kind_spec)
        if scaled:  # the sum of r real inputs over n, not over r
            mean, std, mean_err, std_err = (v * r / n for v in (mean, std, mean_err, std_err))
            what += f", times {r}/{n}"
        for depth in range(end, len(spec.ops)):
            m0, s0, m0_err, s0_err, _ = _exact(Spec(spec.ops[:depth]), mu, sigma)
            mean, mean_err = (mean - m0) / s0, (mean_err + m0_err) / s0 + abs(mean - m0) * s0_err / s0**2
            std, std_err = std / s0, std_err / s0 + std * s0_err / s0**2
            what += " | normalize (interior constants)"
        return mean, std, mean_err, std_err, method, what
    except NotApplicable as why:
        return str(why)


def _correlated_windows(spec: Spec, layers: list[Layer], r: int | None, mu: float, sigma: float):
    """avgpool(k1, s1 < k1) | f | avgpool(k2), no padding: exact through the correlation map of f.

    The first averages W_u are N(mu, sigma^2 / n1), jointly normal, with correlation the overlap of their windows,
    prod over axes of max(0, k1 - |u - v| s1) / k1; the last window averages f(W_u) over its n2 positions, so
    Var = sum_{u, v} Cov(f(W_u), f(W_v)) / n2^2 with Cov = K(c_uv) - E[f(W)]^2, K certified by ball arithmetic
    (estimators.certified_kernel; f piecewise polynomial). None where the spec is not of this form."""
    if len(layers) != 2 or len(spec.ops) != 3:
        return None
    first, last = layers
    f_op = spec.ops[1]
    if not (
        first.depth == 0
        and last.depth == 2
        and first.op.info.reduction == last.op.info.reduction == pooling.MEAN
        and first.p == 0
        and last.p == 0
        and f_op.kind == catalog.ELEMENTWISE
        and f_op.info.piece_degree is not None
        and r == last.op.window_size
    ):
        return None
    dims = first.op.get("dims")
    n1, n2 = first.op.window_size, last.op.window_size
    s_w = sigma / math.sqrt(n1)
    try:
        mean, std, mean_err, std_err, method = _exact(Spec((f_op,)), mu, s_w)
        offsets = list(itertools.product(range(last.k), repeat=dims))
        counts: dict[float, int] = {}
        for u, v in itertools.product(offsets, repeat=2):
            c = math.prod(max(0, first.k - abs(a - b) * first.s) / first.k for a, b in zip(u, v))
            counts[c] = counts.get(c, 0) + 1
        cov, err = 0.0, 0.0
        for c, count in counts.items():
            if c == 1.0:  # the same position: Var f(W)
                cov += count * std * std
                err += count * 2 * std * std_err
                continue
            k = certified_kernel.certify(f_op, c, mu, s_w)
            cov += count * (k.value - mean * mean)
            # c is the double nearest the overlap fraction (2/3 is not a double): |dK/dc| = s_w^2 |E[f' f']| <=
            # (s_w d)^2 (Price's theorem, |f'| <= d) times half an ulp of c
            slope = (s_w * f_op.info.growth(*f_op.info.args(f_op))[2]) ** 2
            err += count * ((k.hi - k.lo) / 2 + math.ulp(k.value) + 2 * abs(mean) * mean_err + slope * math.ulp(c))
    except NotApplicable as why:
        return str(why)
    var = cov / (n2 * n2)
    if not var > 0:
        return None
    out_std = math.sqrt(var)
    out_std_err = err / (n2 * n2) / (2 * out_std) + 4 * math.ulp(out_std)
    what = f"{spec} (correlated windows: the certified correlation map K(c) of {f_op})"
    return mean, out_std, mean_err, out_std_err, f"{method} + certified K(c)", what


# --- Monte Carlo over whole maps ------------------------------------------------------


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
    # pool_nd, not reference_conv's maxpool2d/avgpool2d: it reduces tap by tap instead of stacking
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


def map_work(layers: list[Layer], dims: int, size: int) -> int:
    """Values one simulated map touches: its inputs, and every tap of every window of each window op."""
    return size**dims + sum((layer.size_out * layer.k) ** dims for layer in layers)


def _default_maps(size: int, dims: int) -> int:
    return max(MIN_DEFAULT_MAPS, DEFAULT_VALUES // size**dims)


def _maps_within_budget(settings: RunSettings, per_map: int, size: int, dims: int) -> RunSettings:
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


# --- putting it together ------------------------------------------------------------


def estimate_map(
    spec: Spec, size: int, mu: float = 0.0, sigma: float = 1.0, settings: RunSettings = RunSettings()
) -> SpatialResult:
    """Per-position mean and std of the spec's output on a map of side `size` of iid N(mu, sigma^2) inputs.

    settings.method: 'auto' or 'all' (exact values per kind where they exist,
    and Monte Carlo over whole maps everywhere, cross-checked per position),
    'montecarlo' (maps only), 'closed' or 'quadrature' (exact values only: an
    error where a kind has none). settings.samples: the number of simulated maps.
    """
    method = settings.method
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise MomentcalcError(f"size must be a whole number >= 1 (the side of the input feature map), got {size!r}")
    if method == "qmc":
        raise MomentcalcError("qmc does not run on feature maps; with size= use auto, montecarlo or quadrature")
    if vectorized.needs_numpy(spec):
        raise MomentcalcError("size= does not take expr(...) specs")
    dims, layers = layers_of(spec, size)
    if size**dims > MAX_MAP_VALUES:
        raise MomentcalcError(
            f"size={size} gives maps of {size**dims:,} values, more than the {MAX_MAP_VALUES:,} allowed; "
            "without size the moments are those of an interior window"
        )
    per_map = map_work(layers, dims, size)
    if method in ("auto", "all", "montecarlo"):
        settings = _maps_within_budget(settings, per_map, size, dims)
    geometry = sum(layer.size_out * layer.k for layer in layers)
    if geometry > MAX_GEOMETRY:
        raise MomentcalcError(
            f"size={size}: finding the kinds of output position of '{spec}' lists {geometry:,} window reads per "
            f"axis, more than the {MAX_GEOMETRY:,} allowed; use a smaller size"
        )
    width = layers[-1].size_out if layers else size
    out_shape = (width,) * dims
    groups = group_positions(layers, dims, size)
    if method != "montecarlo" and len(groups) > MAX_KINDS:
        raise MomentcalcError(
            f"size={size}: '{spec}' has {len(groups)} kinds of output position, each an exact computation, more "
            f"than the {MAX_KINDS} allowed; use --method montecarlo, or a smaller size"
        )

    exact = {}
    if method != "montecarlo":
        for g in groups:
            exact[g.key] = _exact_for(spec, layers, g.real_inputs, mu, sigma)
        missing = [g for g in groups if isinstance(exact[g.key], str)]
        if method in ("closed", "quadrature") and missing:
            raise MomentcalcError(
                f"no exact method for the {missing[0].label} of '{spec}' on size={size}: "
                f"{exact[missing[0].key]}; use montecarlo or auto"
            )
    mc, z = None, settings.z
    if method in ("auto", "all", "montecarlo"):
        mc = simulate(spec, dims, size, mu, sigma, settings, out_shape)

    maps = [np.zeros(out_shape) for _ in range(4)]
    kinds, checks = [], []
    for g in groups:
        found = exact.get(g.key)
        index = tuple(np.array(g.positions).T)
        if isinstance(found, tuple):
            mean, std, mean_err, std_err, how, exact_spec = found
            note = None
            if mc is not None:
                for quantity, value, err, mc_values, mc_se in (
                    ("mean", mean, mean_err, mc.mean[index], mc.mean_se[index]),
                    ("std", std, std_err, mc.std[index], mc.std_se[index]),
                ):
                    check = _check(g, len(kinds), quantity, value, err, mc_values, mc_se, mc.samples, z)
                    if check is not None:
                        checks.append(check)
        else:  # Monte Carlo only: the positions of a kind are identically distributed, so average them
            how, exact_spec, note = "montecarlo", None, found
            mean, std = float(mc.mean[index].mean()), float(mc.std[index].mean())
            mean_err, std_err = float(mc.mean_se[index].mean()), float(mc.std_se[index].mean())
        for target, value in zip(maps, (mean, std, mean_err, std_err)):
            target[index] = value
        kinds.append(
            WindowKind(
                g.label,
                g.real_inputs,
                g.positions,
                float(mean),
                float(std),
                float(mean_err),
                float(std_err),
                how,
                exact_spec,
                note,
            )
        )
    return SpatialResult(str(spec), mu, sigma, dims, size, width, *maps, tuple(kinds), mc, tuple(checks))


def _check(
    group: _Group,
    kind_index: int,
    quantity: str,
    value: float,
    err: float,
    mc_values: np.ndarray,
    mc_se: np.ndarray,
    maps: int,
    z: float,
) -> MapCheck | None:
    """The worst |Monte Carlo - exact| / combined SE over the positions of one kind; None where no position's
    Monte Carlo SE is usable (all its maps gave the same value, or too few maps: see result.informative)."""
    usable = (mc_se > 0.0) & (maps >= MIN_SAMPLES)
    if not usable.any():
        return None
    zs = np.where(usable, np.abs(mc_values - value) / np.sqrt(mc_se**2 + err**2), 0.0)
    worst = int(np.argmax(zs))
    limit = family_z(z, int(usable.sum()))
    return MapCheck(group.label, kind_index, quantity, float(zs[worst]), group.positions[worst], z, limit)


def family_z(z: float, count: int) -> float:
    """The threshold for the largest of count |z|-scores with the false-alarm rate of one |z| > z.

    A 512 x 512 map compares 262,144 positions: held to z = 4.5 each, a few exceed it by chance (6.8e-6 each),
    and a correct map would be called a disagreement. Bonferroni (the rate split evenly over the positions; the
    positions of a map are not independent, which only makes this conservative): 4.5 for one position, 5.6
    for 100, 6.7 for 262,144."""
    if count <= 1:
        return z
    per = math.erfc(z / math.sqrt(2.0)) / count  # P(|Z| > limit) for each position
    return -statistics.NormalDist().inv_cdf(per / 2.0)

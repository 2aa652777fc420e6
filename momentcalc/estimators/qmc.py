"""Randomized quasi-Monte Carlo: scrambled Sobol points through a normal quantile with weighted tails.

Each output needs d standard normals (the product of the window sizes), so
one output is one point of a d-dimensional Sobol sequence mapped to normals:
by ndtri inside [-a, a], by a heavier-tailed quantile beyond, with an
importance weight per output, where an output takes one normal (Tails says why: through plain ndtri each
replica's one point in the outermost cell dominates its error, and the
z-scores came out skewed, mean -0.25, |z| > 3 in 2.8% of runs).
The error comes from REPLICAS independent scramblings seeded from
SeedSequence(seed): the replicas' means are iid, so SE(mean) is their
standard deviation over sqrt(REPLICAS); SE(std) follows from the replicas'
variances by the delta method (each replica's moments are weighted ones).
Dropout masks, if any, are drawn by a plain
generator per replica, which keeps the replicas independent.

Points per replica are powers of two (where Sobol nets are balanced); a run
with ``tol`` doubles them, extending each replica's sequence, until both
standard errors are met (driver.until_within, with doubling as the policy).
Each extension of a replica (or a piece of it, on a large cluster) is a pure
task (``extension``: program, seed, replica, point range -> rows of partial
sums) on the driver's thread pool or its Dask cluster; the rows are added in
sequence order, so the bits are the same wherever they ran.
Where an activation's feature is rarer than the replicas' points (tanh at sigma = 1e6), their spread cannot
see it: unseen.py floors the SEs by what it can move, or declines.
"""

from __future__ import annotations

import math
from functools import cache, partial

import numpy as np
from scipy import special
from scipy.stats import qmc as scipy_qmc  # 0.7 s to import: the engine loads this module only for QMC runs

from ..result import QMC_REPLICAS
from ..settings import RunSettings
from . import NotApplicable, dispatch, driver, mc_kernels, normals, unseen
from .moments import Summary
from .program import Program

REPLICAS = QMC_REPLICAS  # result.py: the crosscheck weighs the SE by t with REPLICAS - 1 dof
DEFAULT_SAMPLES = 1 << 20
MAX_DIMENSION = 1024
_BLOCK = 1 << 16  # points generated at once, to bound memory
_BLOCK_VALUES = 1 << 22  # and at most this many coordinates at once (32 MB a copy), for wide windows


class _Replica:
    """The weighted sums of one scrambled Sobol sequence's outputs so far, merged from its extensions' rows."""

    def __init__(self):
        self.points = 0
        self.shift = math.nan  # the first output: sums are of deviations from it
        self.sw = self.s1 = self.s2 = 0.0  # sums of w, w (y - shift) and w (y - shift)^2

    def add(self, rows: np.ndarray, points: int) -> None:
        """Rows of extension() for the next `points` points, block by block in sequence order."""
        for shift, sw, s1, s2 in rows:
            self.shift = shift
            self.sw, self.s1, self.s2 = self.sw + sw, self.s1 + s1, self.s2 + s2
        self.points += points

    @property
    def moments(self) -> np.ndarray:
        """[n, mean, n * variance] of the outputs, with the weights normalized to sum to one.

        Normalized, they give the same mean and variance whatever the shift, and exact ones for a
        constant output; sum(w) / n itself is 1 only on average (sd 0.004 at 64 points), and
        sum(w (y - s)) / n with s the first output carried that error times s into the estimates
        (heavy-tailed variances: kurtosis 17 for relu at 64 points). The bias of the ratio is of the
        order of the replica's own variance, far below its standard error."""
        n = self.points
        d = self.s1 / self.sw
        return np.array([n, self.shift + d, n * max(self.s2 / self.sw - d * d, 0.0)])


def extension(program: Program, seed: int, index: int, first: int, stop: int, step: int) -> np.ndarray:
    """Points first, ..., stop - 1 of replica `index`: one row (shift, sum w, sum w (y - shift), sum w (y - shift)^2)
    per block of `step` points from `first` (block_points: the caller's, so a worker cuts the same blocks).

    A pure task (it may run on a Dask worker, or twice): the replica's scrambling and dropout stream are seeded
    from (seed, index), the Sobol sequence is fast-forwarded to `first`, the dropout stream past the words the
    points before used, and the shift (the replica's first output) is worked out again. Adding the rows in
    order to the sums gives the same bits as one pass over the whole sequence, however it is cut into
    extensions at block boundaries.
    """
    dim = program.normals_per_output
    sobol, tails = _sobol(seed, index, dim), Tails.for_dimension(dim)
    sums = _sums(program)
    shift = math.nan
    if first > 0:
        z, w = tails.normals(_cells(sobol, 1))
        shift = sums(_masks(seed, index, 0), z, w, shift)[0]
        if first > 1:
            sobol.fast_forward(first - 1)
    masks = _masks(seed, index, first * _mask_words(program))  # dropout masks, advanced in place by the kernel
    rows = []
    for start in range(first, stop, step):
        z, w = tails.normals(_cells(sobol, min(step, stop - start)))
        rows.append(sums(masks, z, w, shift))
        shift = rows[-1][0]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _sums(program: Program):
    """sums(mask_state, points, weights, shift) -> (shift, sum w, sum w (y - shift), sum w (y - shift)^2).

    A program without dropout runs stage by stage over the whole block (_staged); one with dropout by the
    general kernel, specialised to its activation, which draws the masks in its order."""
    p = program
    if not np.any(p.codes == mc_kernels.DROPOUT):
        return partial(_staged, p)
    kernel = dispatch.kernel("points", p.act)
    return lambda mask_state, points, weights, shift: kernel(mask_state, points, weights, shift, *p.kernel_args())


# A window's accumulator after one more input, by reduction code, as mc_kernels.reduce_step computes it.
_STEPS = {mc_kernels.AVG: np.add, mc_kernels.MIN: np.minimum, mc_kernels.MAX: np.maximum}


def _staged(p: Program, mask_state, points: np.ndarray, weights: np.ndarray, shift: float) -> tuple:
    """The general kernel's sums, computed a stage at a time over every point of the block: affine maps and
    window reductions in numpy, each activation by its generated scalar loop (dispatch.SCALAR_VALUES), the sums by
    mc_kernels.weighted_moments. Every output goes through the same operations in the same order as in the
    kernel, so the bits are the same; but nothing here is specialised to an activation, so a first QMC run of
    another pipeline compiles at most that activation's loop (0.1 to 0.3 s), not a kernel of its own (2 to 3 s).
    Per point it takes about the kernel's time (within run-to-run noise on gelu, tanh, relu | maxpool(k=3) and
    softsign | avgpool(k=2) at 2^17 points). Why not one kernel taking the loops by address: called per value
    through a pointer, the QMC kernel took 1.3 to 2.6 times as long."""
    count = points.shape[0]
    xs = p.mu + p.sigma * points  # (count, inputs per output), one output's inputs a row, as the kernel reads them
    xs = _stages(p, 0, xs.reshape(-1)).reshape(count, -1)
    for level, (kind, n) in enumerate(zip(p.win_kind.tolist(), p.win_n.tolist())):
        windows = xs.reshape(-1, n)
        acc = windows[:, 0].copy()
        step = _STEPS.get(kind)
        if step is None:  # program._window_code refuses it first; never computed as another reduction
            raise NotApplicable(f"quasi-Monte Carlo does not know the window reduction code {kind}")
        for j in range(1, n):  # input by input, in the kernel's order (reduce_step): numpy's sum would pair them up
            step(acc, windows[:, j], out=acc)
        if kind == mc_kernels.AVG:
            acc /= n
        xs = _stages(p, level + 1, acc).reshape(count, -1)
    return mc_kernels.weighted_moments(np.ascontiguousarray(xs[:, 0]), weights, shift)


def _stages(p: Program, segment: int, xs: np.ndarray) -> np.ndarray:
    """The program's stages of `segment` (affine maps and activations) on the values xs, in place."""
    for i in range(int(p.seg[segment]), int(p.seg[segment + 1])):
        code, a, b = int(p.codes[i]), float(p.params[i, 0]), float(p.params[i, 1])
        if code == mc_kernels.AFFINE:
            xs *= b  # a + b x: the kernel's one product and one sum
            xs += a
        else:
            scratch = np.empty(xs.size)
            dispatch.SCALAR_VALUES[code](xs, xs.size, a, b, scratch, scratch, np.empty(xs.size, dtype=np.int64))
    return xs


def block_points(dim: int) -> int:
    """Points generated at once, to bound memory."""
    return min(_BLOCK, max(1, _BLOCK_VALUES // dim))


def _sobol(seed: int, index: int, dim: int):
    scramble = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index, 0))))
    return scipy_qmc.Sobol(dim, scramble=True, rng=scramble)


def _cells(sobol, count: int) -> np.ndarray:
    # Sobol points are multiples of 2^-bits, 0 included (ndtri(0) = -inf): take the middle of each cell.
    return sobol.random(count) + 0.5 ** (sobol.bits + 1)


def _masks(seed: int, index: int, skip: int) -> np.ndarray:
    """The replica's dropout stream (an SFC64 state) after `skip` words: the kernel draws one word a mask."""
    bits = np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(index, 1)))
    if skip:
        bits.random_raw(skip, output=False)
    return normals.state_of(bits)


def _mask_words(program: Program) -> int:
    """Dropout masks drawn per output: a dropout in the first segment acts on each of the d inputs, one after
    window level l on each of that level's prod(win_n[l+1:]) outputs."""
    p = program
    per_segment = [int(np.sum(p.codes[p.seg[i] : p.seg[i + 1]] == mc_kernels.DROPOUT)) for i in range(len(p.seg) - 1)]
    applied = [p.normals_per_output] + [int(np.prod(p.win_n[level + 1 :])) for level in range(p.win_n.size)]
    return sum(count * times for count, times in zip(per_segment, applied))


class Tails:
    """Standard normals from uniforms, with heavier tails beyond +-a and importance weights phi / g.

    Why: through the plain quantile (ndtri) an output such as relu(z) is unbounded, with unbounded
    slope, as u -> 1. A scrambled net puts exactly one point of each replica in the last 1/n of
    every coordinate, and that point's value, z beyond ndtri(1 - 1/n), is exponentially distributed
    (Z given Z > t): it dominates the replica's error, so the replicas' means and variances are
    skewed (skewness 1.4 and 1.8 for relu at 4096 points each). With 16 replicas the z-score
    (mean - exact) / (spread / 4) is then biased (mean -0.25 for relu) with a long negative tail:
    when no replica's last point falls deep in the tail, every replica is low and their spread is
    small (seed 327: z = -7.6). More replicas or a t quantile only shrink this as 1 / sqrt(replicas).

    The fix removes the cause: the points come from the density g = phi / c on [-a, a] and
    proportional to the N(0, 2) density beyond (continuous at +-a, c normalizes), and each output
    is weighted by w = prod phi(z_j) / g(z_j): c inside, c exp((a^2 - z^2) / 4) in the tails. Then
    w f, as a function of u, has in the tails a slope of the order of f'(z) (not f'(z) / phi(z)):
    no cell dominates, and the replicas' errors are near normal, and smaller (relu's median SE(mean)
    at 2^16 points: 1.6e-6, against 1.4e-5). Each replica weighs its outputs by w / sum(w) (see _Replica.moments).

    Only in one dimension (a = 2): with d > 1 normals per output the weight is a product over the
    coordinates, which makes an additive output (relu | avgpool) or a max interact across them, and
    Sobol nets integrate interactions far worse: at 2^16 points SE(mean) grew 4x for
    relu | avgpool(k=2) and 1.2x for maxpool(k=3) (2x for maxpool(k=2) at 2^20) for any a up to 4.
    There no coordinate's outermost cell dominates as in one dimension (maxpool(k=3)'s z-scores were
    as a t with 15 degrees of freedom: |z| > 3 in 1.05% and 0.8% of 2000 runs, mean z +0.03 and
    -0.02), so those keep plain ndtri (a = inf: c = 1, no tails, every weight 1).
    """

    def __init__(self, a: float):
        self.a = a
        q = special.ndtr(-a / math.sqrt(2.0))
        self.c = 1.0 - 2.0 * special.ndtr(-a) + 2.0 * math.sqrt(2.0) * math.exp(-a * a / 4.0) * q
        self.k = math.sqrt(2.0) * math.exp(-a * a / 4.0) / self.c  # g = k * N(0, 2) density in the tails
        self.tail = self.k * q  # g's mass beyond a (and below -a)

    @staticmethod
    @cache
    def for_dimension(dim: int) -> Tails:
        return Tails(2.0 if dim == 1 else math.inf)

    def normals(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points u in (0, 1)^d -> (z drawn from g in each coordinate, weight of each row)."""
        a, c, k, t = self.a, self.c, self.k, self.tail
        low, high = u < t, u > 1.0 - t
        z = special.ndtri(special.ndtr(-a) + (u - t) * c)
        z[low] = math.sqrt(2.0) * special.ndtri(u[low] / k)
        z[high] = -math.sqrt(2.0) * special.ndtri((1.0 - u[high]) / k)
        log_w = np.where(low | high, (a * a - z * z) / 4.0, 0.0).sum(axis=1) + u.shape[1] * math.log(c)
        return z, np.exp(log_w)


def dimension(program: Program) -> int:
    d = program.normals_per_output
    if d > MAX_DIMENSION:
        raise NotApplicable(f"qmc needs {d} normals per output; it handles at most {MAX_DIMENSION}: use montecarlo")
    return d


def prepare(program: Program) -> None:
    """On a Dask scheduler, load the points kernel here first (one point), as montecarlo.prepare does: a first
    compile fills numba's cache for workers that share it. Without one, nothing: the run loads its kernel
    itself, and the engine charges that to its kernels."""
    if driver.current_executor() is not None:
        dimension(program)  # a window too wide for qmc declines here
        extension(program, 0, 0, 0, 1, 1)


def summarize(replicas: list[_Replica]) -> Summary:
    moments = np.array([r.moments for r in replicas])
    n, means, variances = moments[:, 0], moments[:, 1], moments[:, 2] / moments[:, 0]
    r = len(replicas)
    std = math.sqrt(variances.mean())
    mean_se = means.std(ddof=1) / math.sqrt(r)
    std_se = variances.std(ddof=1) / math.sqrt(r) / (2.0 * std) if std > 0.0 else 0.0
    return Summary(float(means.mean()), std, float(mean_se), float(std_se), int(n.sum()))


def run(program: Program, settings: RunSettings = RunSettings()) -> Summary:
    """REPLICAS scrambled Sobol sequences of a power-of-two length each, doubled until within settings.tol."""
    dimension(program)
    replicas = [_Replica() for _ in range(REPLICAS)]
    start = settings.samples or (DEFAULT_SAMPLES if settings.tol is None else 1 << 14)
    grow = partial(_grow, program, settings.seed, replicas, settings.progress)
    summary = grow(REPLICAS * _power_of_two(max(1, start // REPLICAS)))
    if settings.tol is None:
        return summary
    rounds = [summary]

    def double(_wanted: int) -> Summary:  # powers of two per replica, where Sobol nets are balanced
        rounds.append(grow(2 * rounds[-1].samples))
        return rounds[-1]

    need = lambda _: points_for(rounds, settings.tol)  # noqa: E731
    return driver.until_within(summary, settings.tol, need, double, settings.max_samples, "qmc points")


FIRST_ROUND_RATE = 3.0  # before a second round: SE falling as n^-3, faster than any run here has shown
RATE_MARGIN = 0.75  # about 2 sd of a rate measured over one doubling from 16 replicas' SEs


def points_for(rounds: list[Summary], tol: float) -> int:
    """Points that would bring both SEs to tol, if they keep falling as fast as the rounds so far show (or faster).

    So an unreachable tol is refused after a round or two, not after hours of doubling up to the limit. The
    prediction is optimistic on purpose (the rate seen plus a margin for the noise in it): a tol it refuses
    is out of reach; one it lets through may still be refused later, when the rounds show more.
    """
    first, last = rounds[0], rounds[-1]
    se, se_first = max(last.mean_se, last.std_se), max(first.mean_se, first.std_se)
    if se <= 0.0:
        return 2 * last.samples
    doublings = math.log2(last.samples / first.samples)
    if doublings < 1:
        rate = FIRST_ROUND_RATE
    else:
        seen = math.log2(se_first / se) / doublings if se_first > se > 0 else 0.0
        rate = max(seen, 0.5) + RATE_MARGIN / doublings
    log2_points = math.log2(last.samples) + math.log2(se / tol) / rate
    return max(2 * last.samples, 2 ** min(math.ceil(log2_points), 100))


def _grow(program: Program, seed: int, replicas: list[_Replica], progress, points: int) -> Summary:
    """Extend every replica to points / REPLICAS points, as pure tasks (extension) on the driver's pool or a Dask
    cluster, merged replica by replica in sequence order; their summary."""
    have, want = replicas[0].points, points // REPLICAS
    step = block_points(program.normals_per_output)
    pieces = [(i, lo, hi) for i in range(len(replicas)) for lo, hi in _cuts(have, want, step)]
    tasks = [partial(extension, program, seed, i, lo, hi, step) for i, lo, hi in pieces]
    done = [REPLICAS * have]

    def finished(task: int) -> None:  # progress as each task finishes, in points of all replicas
        done[0] += pieces[task][2] - pieces[task][1]
        driver.report(progress, done[0], points)

    results = driver.anywhere_in_order(tasks, finished)
    try:
        for (i, lo, hi), rows in zip(pieces, results):
            replicas[i].add(rows, hi - lo)
    except BaseException:  # Ctrl-C above all: a cluster's queued tasks are dropped, as the driver's are
        if hasattr(results, "cancel"):
            results.cancel()
        raise
    return unseen.floored(summarize(replicas), program, points // REPLICAS)


def _cuts(have: int, want: int, step: int) -> list[tuple[int, int]]:
    """A replica's points have, ..., want - 1 as pieces for as many tasks as keep the slots busy (one a replica on
    a few threads; more on a large cluster), cut at block boundaries from `have` so the blocks and bits do not
    change."""
    blocks = math.ceil((want - have) / step)
    pieces = max(1, min(blocks, math.ceil(driver.slots() * driver.TASKS_PER_THREAD / REPLICAS)))
    bounds = [have + step * (blocks * k // pieces) for k in range(pieces)] + [want]
    return list(zip(bounds[:-1], bounds[1:]))


def _power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))

"""Backward variance maps: how much gradient variance reaches each input position.

For one 2-D layer on an I x I input and an upstream gradient of iid N(0, 1)
entries, the map gives Var[dL/dx] at every input position. The maps are exact
(counting arguments) and can be cross-checked by simulation with the numpy
input gradients in ``input_grads``.

Exact maps, per layer:

- ``conv(k, s, p, cin, cout)`` with NormProp row-normalized random weights
  (each output filter has unit l2 norm over its cin*k*k fan-in, so by symmetry
  E[w^2] = 1/(cin*k*k) per tap): the input gradient is a sum of g * w terms,
  one per (output channel, output position, tap) that reads the position, and
  the cross terms vanish because the g's are independent with mean zero. So
  Var = cout * (number of (output position, tap) pairs touching it) / (cin*k*k).
- ``maxpool(k, s, p)`` (and ``minpool``): padding is -inf (+inf), so a window's argmax (argmin) is uniform over
  its m real inputs (m = k*k away from the border). A position gets
  sum over the windows covering it of 1/m.
- ``avgpool(k, s, p, count_include_pad)``: a window with divisor n passes
  g/n to each input, so a position gets sum over covering windows of 1/n^2,
  where n = k*k, or the window's number of real inputs when
  count_include_pad is false.

Every window is a product of one window per axis, and each of these sums
factors into (per-row sum) * (per-column sum), so the map is an outer product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import catalog, spec
from . import input_grads as ref
from ._lazy import lazy_module
from .convshape import conv_shape
from .errors import MomentcalcError
from .ops import pooling
from .result import record_dict
from .settings import BACKWARD_SIZE_MAX, BACKWARD_TRIAL_MAX, BACKWARD_WORK_MAX, Progress, check_seed

integrate = lazy_module("scipy.integrate")  # grad_sq_at_max only
special = lazy_module("scipy.special")

_MIN_VALUE = {"k": 1, "s": 1, "p": 0, "cin": 1, "cout": 1}
_SELECTS_ONE = (pooling.MAX, pooling.MIN)  # the gradient goes to the one input the window picked
_AVERAGES = (pooling.MEAN,)  # the gradient is shared by every input of the window
# The reductions whose gradient routing this module knows; a pooling layer of any other is refused.
_ROUTED = _SELECTS_ONE + _AVERAGES


@dataclass(frozen=True)
class Layer:
    """One conv or pooling layer. s defaults to 1 for conv and to k for pools."""

    kind: str
    k: int
    s: int
    p: int = 0
    cin: int = 1
    cout: int = 1
    count_include_pad: bool = True

    def __post_init__(self) -> None:
        if self.kind != "conv" and self.reduction not in _ROUTED:
            pools = [op.name for op in catalog.all_ops() if op.kind == catalog.WINDOW and op.reduction in _ROUTED]
            accepted = ", ".join(["conv", *pools])
            what = "unknown layer" if self.reduction is None else "backward does not know how a window of"
            tail = "" if self.reduction is None else f" (reduction {self.reduction!r}) routes its gradient"
            raise MomentcalcError(f"{what} {self.kind!r}{tail}; accepted: {accepted}")
        for key, lowest in _MIN_VALUE.items():
            if getattr(self, key) < lowest:
                raise MomentcalcError(f"{key} must be an integer >= {lowest}, got {getattr(self, key)}")

    @property
    def reduction(self) -> str | None:
        """How a pooling layer combines its window (ops.pooling), None for conv."""
        info = catalog.lookup(self.kind)
        return info.reduction if info is not None and info.kind == catalog.WINDOW else None

    @property
    def is_pool(self) -> bool:
        return self.kind != "conv"

    def __str__(self) -> str:
        parts = [f"k={self.k}", f"s={self.s}", f"p={self.p}"]
        if self.kind == "conv":
            parts += [f"cin={self.cin}", f"cout={self.cout}"]
        if self.reduction == pooling.MEAN and not self.count_include_pad:
            parts.append("count_include_pad=false")
        return f"{self.kind}({','.join(parts)})"


def parse_layer(text: str) -> Layer:
    """A layer such as ``conv(k=3,s=2,p=1,cin=1,cout=1)`` or ``maxpool(k=3,s=2)``, by the spec parser."""
    op = spec.parse_layer(text)
    if op.kind == catalog.WINDOW and (op.get("n") is not None or op.get("dims") != 2):
        raise MomentcalcError(f"backward takes 2-D windows given by k=, e.g. {op.name}(k=3,s=2), not {text!r}")
    if op.kind == catalog.WINDOW:
        return Layer(
            op.name,
            op.get("k"),
            op.get("s") or op.get("k"),
            op.get("p"),
            count_include_pad=op.get("count_include_pad", True),
        )
    return Layer("conv", op.get("k"), op.get("s"), op.get("p"), op.get("cin"), op.get("cout"))


def _as_layer(layer: Layer | str) -> Layer:
    return parse_layer(layer) if isinstance(layer, str) else layer


def output_size(layer: Layer, size: int) -> int:
    """Output side of the layer on a size x size input; raises for impossible shapes."""
    return conv_shape(size, layer.k, layer.s, layer.p, pool=layer.is_pool).output


def _axis_weights(layer: Layer, size: int) -> np.ndarray:
    """Per-axis factor of the exact map: its outer product with itself is the map.

    A 2-D window is a row window times a column window, with m = m_row * m_col
    real inputs, so each window's share splits into a row and a column factor:
    conv 1 * 1 (scaled later), maxpool 1/m = (1/m_row)(1/m_col), avgpool
    1/(k*k)^2 = (1/k^2)(1/k^2), or without padding counted 1/m^2 = (1/m_row^2)(1/m_col^2).
    """
    weights = np.zeros(size)
    for o in range(output_size(layer, size)):
        start = o * layer.s - layer.p
        real = [u for u in range(start, start + layer.k) if 0 <= u < size]
        if layer.kind == "conv":
            share = 1.0
        elif layer.reduction in _SELECTS_ONE:
            share = 1.0 / len(real)
        elif layer.reduction not in _AVERAGES:  # Layer refuses it first: no reduction is taken for an average
            raise MomentcalcError(f"backward does not know how {layer.kind!r} routes its gradient")
        elif layer.count_include_pad:
            share = 1.0 / layer.k**2
        else:
            share = 1.0 / len(real) ** 2
        weights[real] += share
    return weights


def exact_map(layer: Layer | str, size: int) -> np.ndarray:
    """Exact size x size map of Var[input gradient] for iid N(0, 1) upstream gradient."""
    layer = _as_layer(layer)
    axis = _axis_weights(layer, size)
    scale = layer.cout / (layer.cin * layer.k * layer.k) if layer.kind == "conv" else 1.0
    return scale * np.outer(axis, axis)


@dataclass(frozen=True)
class BackwardMap:
    """An exact backward variance map and its summary.

    ``min`` and ``ratio`` (= max/min) are over the positions that receive any
    gradient; ``unreached`` counts the ones that receive none. ``ratio`` and
    ``backward_constant`` are None when no position receives gradient.
    """

    layer: str
    size: int
    output_size: int
    map: list[list[float]]
    min: float
    max: float
    mean: float
    ratio: float | None
    unreached: int
    backward_constant: float | None
    simulation: SimulationCheck | None = None

    def to_dict(self) -> dict:
        """The JSON form; ``simulation`` is None when none was run."""
        return record_dict(self)


def backward_map(
    layer: Layer | str, size: int, trials: int = 0, seed: int = 0, progress: Progress | None = None
) -> BackwardMap:
    """Exact map of ``layer`` on a size x size input, with its summary numbers.

    The backward constant 1/sqrt(mean) is the factor that brings the average
    gradient variance back to 1. With ``trials`` > 0 the map is also checked
    by simulation (see ``check_by_simulation``).
    """
    layer = _as_layer(layer)
    if size < 1:
        raise MomentcalcError(f"size must be >= 1, got {size}")
    if trials < 0:
        raise MomentcalcError(f"trials must be >= 0 (0 skips the simulation), got {trials}")
    check_seed(seed)
    check_cost(layer, size, trials)
    var = exact_map(layer, size)
    reached = var[var > 0]
    mean = float(var.mean())
    low = float(reached.min()) if reached.size else 0.0
    return BackwardMap(
        layer=str(layer),
        size=size,
        output_size=output_size(layer, size),
        map=var.tolist(),
        min=low,
        max=float(var.max()),
        mean=mean,
        ratio=float(var.max()) / low if reached.size else None,
        unreached=int(var.size - reached.size),
        backward_constant=1.0 / math.sqrt(mean) if mean > 0 else None,
        simulation=check_by_simulation(layer, size, trials, seed, progress=progress) if trials > 0 else None,
    )


def same_values_size(layer: Layer, size: int) -> int:
    """The least side >= 2 (k + p + s) that has size's remainder mod s: its map holds the same distinct values.

    An axis weight depends only on the windows over that position: within k + p of the start they are
    clipped; beyond, the pattern repeats every s positions until the end, where (size + 2p - k) mod s
    decides how the last windows fall. So a side that keeps that remainder, with room for both borders
    and a period, shows every value (and so the same min, max and ratio), if not their counts or mean.
    """
    low = 2 * (layer.k + layer.p + layer.s)
    return low + (size - low) % layer.s


def trial_values(layer: Layer, size: int) -> int:
    """Values one simulated trial touches: every tap of every channel over the padded input."""
    return max(layer.cin, layer.cout) * (size + 2 * layer.p) ** 2 * layer.k**2


def _bytes(count: int) -> str:
    unit = max(u for u in range(5) if count >= 1024**u or u == 0)
    return f"{count / 1024**unit:.3g} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[unit]}"


def check_cost(layer: Layer, size: int, trials: int) -> None:
    """Refuse, before any work, a map or a simulation past the limits of settings (one line: the limit, the way)."""
    if size > BACKWARD_SIZE_MAX:
        cells = size * size
        raise MomentcalcError(
            f"size={size} gives a {size}x{size} map ({cells:.2g} values, {_bytes(cells * 8)} as float64), "
            f"more than the {BACKWARD_SIZE_MAX}x{BACKWARD_SIZE_MAX} allowed; --size "
            f"{min(same_values_size(layer, size), BACKWARD_SIZE_MAX)} gives the same values, min, max and ratio"
        )
    if trials == 0:
        return
    per_trial = trial_values(layer, size)
    if per_trial > BACKWARD_TRIAL_MAX:
        raise MomentcalcError(
            f"one simulated trial of {layer} on size {size} holds {per_trial:.2g} values, more than the "
            f"{BACKWARD_TRIAL_MAX:.2g} allowed; the map itself is exact: use --trials 0, or a smaller --size"
        )
    if trials * per_trial > BACKWARD_WORK_MAX:
        raise MomentcalcError(
            f"trials={trials} of {per_trial} values each is {trials * per_trial:.2g} values, more than the "
            f"{BACKWARD_WORK_MAX:.2g} one check may touch; the map itself is exact and the simulation only "
            f"checks it: use --trials {BACKWARD_WORK_MAX // per_trial} or fewer (0 skips it)"
        )


@dataclass(frozen=True)
class Simulation:
    """Monte Carlo estimate of the map: per-position mean and standard error."""

    mean: np.ndarray
    se: np.ndarray
    trials: int
    adjoint_max_diff: float | None  # conv only: largest |scatter - rot180| over all trials


@dataclass(frozen=True)
class SimulationCheck:
    """How the simulated map compares with the exact one."""

    trials: int
    seed: int
    z: float
    max_abs_z: float
    worst_position: tuple[int, int]
    adjoint_max_diff: float | None
    passed: bool

    def to_dict(self) -> dict:
        return record_dict(self)


def simulate_map(
    layer: Layer | str, size: int, trials: int, seed: int = 0, progress: Progress | None = None
) -> Simulation:
    """Estimate the map from ``trials`` independent draws (numpy SeedSequence ``seed``).

    conv: fresh iid normal weights, row-normalized, and an iid N(0, 1) upstream
    gradient per trial; the input gradient is computed both as the adjoint
    (scatter) and as the dilated, fully padded correlation with the rotated
    kernel, and the squared gradient is averaged over input channels.
    maxpool: iid N(0, 1) inputs and upstream gradient. avgpool: upstream only.
    """
    layer = _as_layer(layer)
    if trials < 2:
        raise MomentcalcError(f"trials must be >= 2 to estimate a standard error, got {trials}")
    check_seed(seed)
    o = output_size(layer, size)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    per_trial = max(layer.cin, layer.cout) * (size + 2 * layer.p) ** 2 * layer.k**2
    chunk = max(1, min(trials, 2_000_000 // per_trial))
    total, total_sq, worst_diff, done = 0.0, 0.0, 0.0, 0
    while done < trials:
        batch = min(chunk, trials - done)
        y, diff = _simulate_chunk(layer, size, o, batch, rng)
        total, total_sq = total + y.sum(axis=0), total_sq + (y * y).sum(axis=0)
        worst_diff, done = max(worst_diff, diff), done + batch
        if progress is not None:
            progress(done, trials)
    mean = total / trials
    var = np.maximum(total_sq / trials - mean * mean, 0.0) * trials / (trials - 1)
    return Simulation(mean, np.sqrt(var / trials), trials, worst_diff if layer.kind == "conv" else None)


def _simulate_chunk(layer: Layer, size: int, o: int, batch: int, rng: np.random.Generator):
    """Squared input gradients of ``batch`` trials, (batch, size, size), and the conv path gap."""
    g_shape = (batch, layer.cout, o, o) if layer.kind == "conv" else (batch, o, o)
    if layer.kind == "conv":
        w = rng.standard_normal((batch, layer.cout, layer.cin, layer.k, layer.k))
        w /= np.sqrt((w * w).sum(axis=(-3, -2, -1), keepdims=True))
        g = rng.standard_normal(g_shape)
        scatter = ref.conv2d_input_grad_scatter(g, w, size, layer.s, layer.p)
        rotated = ref.conv2d_input_grad_rot180(g, w, size, layer.s, layer.p)
        return (scatter * scatter).mean(axis=1), float(np.abs(scatter - rotated).max())
    if layer.reduction in _SELECTS_ONE:
        # The min's window picks the argmax of -x: the same routing of the gradient.
        sign = 1.0 if layer.reduction == pooling.MAX else -1.0
        x = sign * rng.standard_normal((batch, size, size))
        grad = ref.maxpool2d_input_grad(x, rng.standard_normal(g_shape), layer.k, layer.s, layer.p)
    elif layer.reduction in _AVERAGES:
        g = rng.standard_normal(g_shape)
        grad = ref.avgpool2d_input_grad(g, size, layer.k, layer.s, layer.p, layer.count_include_pad)
    else:  # Layer refuses it first: no simulation shares another reduction's routing
        raise MomentcalcError(f"backward does not know how {layer.kind!r} routes its gradient")
    return grad * grad, 0.0


def check_by_simulation(
    layer: Layer | str,
    size: int,
    trials: int,
    seed: int = 0,
    z: float = 4.5,
    adjoint_tol: float = 1e-12,
    progress: Progress | None = None,
) -> SimulationCheck:
    """Compare the exact map with a simulation: every position within z standard errors.

    Positions that get no gradient must simulate to exactly zero, and for conv
    the two gradient paths must agree to ``adjoint_tol`` on every trial. The
    standard errors are guarded as in ``_guarded_se``.
    """
    layer = _as_layer(layer)
    exact = exact_map(layer, size)
    sim = simulate_map(layer, size, trials, seed, progress)
    se = _guarded_se(exact, sim.se)
    gap = np.abs(sim.mean - exact)
    zs = np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.where(gap > 0, np.inf, 0.0))
    worst = np.unravel_index(int(np.argmax(zs)), zs.shape)
    paths_agree = sim.adjoint_max_diff is None or sim.adjoint_max_diff <= adjoint_tol
    return SimulationCheck(
        trials=trials,
        seed=seed,
        z=z,
        max_abs_z=float(zs.max()),
        worst_position=(int(worst[0]), int(worst[1])),
        adjoint_max_diff=sim.adjoint_max_diff,
        passed=bool(zs.max() <= z and paths_agree),
    )


def _guarded_se(exact: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Each position's SE, or the RMS SE of the positions with the same exact value if larger.

    A squared gradient is heavy-tailed (a chi-square, often times a rare
    argmax indicator). A sample that happened to miss its rare large values
    has a low mean and, at the same time, a low sample SE, so the plain t
    statistic has a far heavier lower tail than a normal one. The SE pooled
    over positions with the same exact variance does not shrink with one
    position's luck, and taking the larger keeps the test conservative.
    """
    keys = np.round(exact, 12)
    guarded = se.copy()
    for key in np.unique(keys):
        members = keys == key
        pooled = np.sqrt(np.mean(se[members] ** 2))
        guarded[members] = np.maximum(se[members], pooled)
    return guarded


def grad_sq_at_max(op: spec.Op, m: int) -> float:
    """E[f'(X_1)^2; X_1 the largest of m iid N(0, 1)] = integral of f'(x)^2 phi(x) Phi(x)^(m - 1) (f monotone).

    What a max-pool of m inputs right after a monotone f passes back: the gradient reaches only each window's
    largest input, where f' is not a typical f' (the backward constant E[f'(X)^2] averages over all inputs).
    """
    a, b = op.info.args(op)
    cuts = sorted({-12.0, 12.0, *(c for c in op.info.kinks(a, b) if -12.0 < c < 12.0)})
    integrand = lambda x: op.info.df(x, a, b) ** 2 * special.ndtr(x) ** (m - 1) * math.exp(-x * x / 2)  # noqa: E731
    total = sum(integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-12)[0] for lo, hi in zip(cuts, cuts[1:]))
    return total / math.sqrt(2 * math.pi)
